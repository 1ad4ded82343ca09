"""Accounts (tenants), users, memberships with roles, and dashboard sessions."""
