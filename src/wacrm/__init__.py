"""wacrm: a self-hosted WhatsApp CRM backend."""

__version__ = "0.1.0"
