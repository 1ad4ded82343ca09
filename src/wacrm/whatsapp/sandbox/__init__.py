"""A built-in simulator of the WhatsApp Cloud API: sends, templates, windows, signed webhooks."""

from wacrm.whatsapp.sandbox.app import PREFIX, create_sandbox_app, create_standalone_app

__all__ = ["PREFIX", "create_sandbox_app", "create_standalone_app"]
