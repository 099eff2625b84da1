"""Provider kinds, and building the providers and the model catalog from the settings.

Part of the composition root: the only place besides ``gateway.py`` that knows
which provider packages exist. A new upstream kind is a provider package plus
one entry in ``KINDS``; the core and the edges do not change.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from . import observability
from .config import DEFAULT_UPSTREAM, ConfigError, Settings, UpstreamConfig
from .core import ChatProvider, ModelCatalog, ModelInfo
from .core.models import TraitsParser
from .providers import anthropic
from .upstream import Timeouts
from .upstream.keys import BreakerSettings


@dataclass(frozen=True, slots=True)
class ProviderKind:
    """What the composition root needs to know of one kind of upstream API."""

    default_models: Sequence[ModelInfo]  # served by the default upstream of this kind
    parse_traits: TraitsParser
    create: Callable[[UpstreamConfig], ChatProvider]


def create_anthropic(config: UpstreamConfig) -> ChatProvider:
    return anthropic.AnthropicProvider(
        anthropic.AnthropicSettings(
            name=config.name,
            base_url=config.base_url,
            api_keys=config.api_keys,
            timeouts=Timeouts(connect=config.connect_timeout, read=config.read_timeout, pool=config.pool_timeout),
            first_byte_timeout=config.first_byte_timeout,
            breaker=BreakerSettings(failures=config.breaker_failures, cooldown=config.breaker_cooldown),
            max_connections=config.max_connections,
            client="httpx" if config.client == "httpx" else "aiohttp",
            trust_env=config.trust_env,
        ),
        on_key_event=observability.key_event,
    )


KINDS: Mapping[str, ProviderKind] = {
    "anthropic": ProviderKind(anthropic.CLAUDE_MODELS, anthropic.traits_from_config, create_anthropic),
}


def build_catalog(settings: Settings) -> ModelCatalog:
    """The default upstream's built-in models, overridden and extended by `[[models]]`.

    Raises ConfigError with a one-line message naming the bad entry.
    """
    configs = settings.upstream_configs()
    parsers = {c.name: KINDS[c.kind].parse_traits for c in configs}
    default_kind = KINDS[next(c.kind for c in configs if c.name == DEFAULT_UPSTREAM)]
    try:
        return ModelCatalog.from_config(
            default_kind.default_models, settings.models, parsers, replace_defaults=settings.replace_default_models
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def build_providers(configs: Sequence[UpstreamConfig]) -> dict[str, ChatProvider]:
    return {config.name: KINDS[config.kind].create(config) for config in configs}
