"""The dashboard: server-rendered pages for people, on top of the domain services."""
