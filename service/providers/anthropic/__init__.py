"""The Anthropic Messages API provider."""

from .http import Timeouts
from .provider import AnthropicProvider, AnthropicSettings

__all__ = ["AnthropicProvider", "AnthropicSettings", "Timeouts"]
