"""Conversations and their messages: one conversation per contact per account."""
