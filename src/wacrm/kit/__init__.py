"""Shared machinery used by every domain package."""
