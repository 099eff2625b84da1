"""The Anthropic Messages API provider."""

from .catalog import CLAUDE_MODELS, ClaudeTraits, traits_from_config
from .provider import AnthropicProvider, AnthropicSettings

__all__ = ["CLAUDE_MODELS", "AnthropicProvider", "AnthropicSettings", "ClaudeTraits", "traits_from_config"]
