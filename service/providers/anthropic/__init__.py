"""The Anthropic Messages API provider."""

from .provider import AnthropicProvider, AnthropicSettings, build_client

__all__ = ["AnthropicProvider", "AnthropicSettings", "build_client"]
