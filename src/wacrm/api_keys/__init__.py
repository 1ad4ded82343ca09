"""API keys: format, storage, the Bearer authenticator and the session API that manages them."""
