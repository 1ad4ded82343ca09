"""Operating the service: request ids, JSON logs with secrets redacted, Prometheus metrics."""
