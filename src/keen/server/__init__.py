"""The HTTP shell of keen: a FastAPI app built by `create_app`, thin over the services."""

from keen.server.app import create_app

__all__ = ["create_app"]
