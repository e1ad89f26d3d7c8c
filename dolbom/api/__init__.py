"""The HTTP API (FastAPI): registry, alerts, resident views, reports; access and audit."""
