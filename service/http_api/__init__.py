"""The HTTP edge: OpenAI JSON and SSE over the core."""

from .app import HttpSettings, create_app

__all__ = ["HttpSettings", "create_app"]
