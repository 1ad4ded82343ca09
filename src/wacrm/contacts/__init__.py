"""Contacts: one per normalised phone number per account."""
