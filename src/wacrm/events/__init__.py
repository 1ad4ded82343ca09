"""Domain events: the outbox that outbound webhooks deliver from."""
