"""The account's audit log: who changed its keys (and later team and settings), when, from where."""
