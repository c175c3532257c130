"""Integrations with other libraries: FastAPI, OpenTelemetry and Prometheus."""
