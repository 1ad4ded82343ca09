"""Outbound messages: sending through the Cloud API, retries, and reading one message."""
