"""WhatsApp numbers (channels) of an account: Meta numbers and sandbox numbers."""
