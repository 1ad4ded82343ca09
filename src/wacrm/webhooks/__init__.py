"""Outbound webhooks: registration, URL safety and delivery."""
