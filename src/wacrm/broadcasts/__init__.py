"""Broadcasts: one approved template sent to up to 10,000 numbers, drained by workers."""
