"""The HTTP API: :func:`cloud.api.app.create_app` builds it; routes stay thin over services."""
