"""The HTTP edge: API dialects (surfaces) over one shared request lifecycle and the core."""

from .app import create_admin_app, create_app
from .lifecycle import HttpSettings

__all__ = ["HttpSettings", "create_admin_app", "create_app"]
