"""The job runner: drains due work (inbound payloads, send retries, deliveries) in a loop."""
