"""WhatsApp: the Cloud API client, the inbound webhook, and the sandbox that stands in for Meta."""
