"""The Anthropic Messages API provider."""

from .catalog import CLAUDE_MODELS, ClaudeTraits, model_from_upstream, traits_from_config
from .provider import AnthropicProvider, AnthropicSettings

__all__ = [
    "CLAUDE_MODELS",
    "AnthropicProvider",
    "AnthropicSettings",
    "ClaudeTraits",
    "model_from_upstream",
    "traits_from_config",
]
