"""Provider kinds, and building the providers and the model catalog from the settings.

Part of the composition root: the only place besides ``gateway.py`` that knows
which provider packages exist. A new upstream kind is a provider package plus
one entry in ``KINDS``; the core and the edges do not change.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from ..core import ChatProvider, ChatService, ModelCatalog, ModelInfo
from ..core.errors import GatewayError
from ..core.models import Route, TraitsParser
from ..providers import anthropic
from . import platforms
from .config import DEFAULT_UPSTREAM, ConfigError, Settings, UpstreamConfig

log = logging.getLogger("chatgate")

# One Models API entry, merged over the built-in entry it describes (None: a model the table lacks).
FromUpstream = Callable[[Mapping[str, Any], ModelInfo | None, str], ModelInfo | None]
Listing = Sequence[Mapping[str, Any]]


@dataclass(frozen=True, slots=True)
class ProviderKind:
    """What the composition root needs to know of one kind of upstream API."""

    default_models: Sequence[ModelInfo]  # served by the default upstream of this kind
    parse_traits: TraitsParser
    create: Callable[[UpstreamConfig], ChatProvider]
    from_upstream: FromUpstream | None = None  # reads the kind's Models API entries, if it has one
    # The id a model has on an upstream of this kind, from its Anthropic id (kept if already the kind's).
    model_id: Callable[[str, UpstreamConfig], str] = lambda model, config: model
    # What a token costs on an upstream of this kind against the list prices, unless configured.
    price_factor: Callable[[UpstreamConfig], float] = lambda config: 1.0


KINDS: Mapping[str, ProviderKind] = {
    "anthropic": ProviderKind(
        anthropic.CLAUDE_MODELS, anthropic.traits_from_config, platforms.create_anthropic, anthropic.model_from_upstream
    ),
    "bedrock": ProviderKind(
        (),
        anthropic.traits_from_config,
        platforms.create_bedrock,
        None,
        platforms.bedrock_model_id,
        platforms.bedrock_factor,
    ),
    "vertex": ProviderKind(
        (),
        anthropic.traits_from_config,
        platforms.create_vertex,
        None,
        platforms.vertex_model_id,
        platforms.vertex_factor,
    ),
}


def build_catalog(settings: Settings, listed: Listing = ()) -> ModelCatalog:
    """The default upstream's built-in models, updated from its Models API (``listed``),
    then overridden and extended by `[[models]]`, which always has the last word.

    Raises ConfigError with a one-line message naming the bad entry.
    """
    configs = settings.upstream_configs()
    parsers = {c.name: KINDS[c.kind].parse_traits for c in configs}
    default_kind = KINDS[next(c.kind for c in configs if c.name == DEFAULT_UPSTREAM)]
    defaults: Sequence[ModelInfo] = default_kind.default_models
    if listed and default_kind.from_upstream is not None:
        pinned = {str(e.get("id")) for e in settings.models if isinstance(e, Mapping) and e.get("pinned") is True}
        defaults = merge_listed(defaults, listed, default_kind.from_upstream, DEFAULT_UPSTREAM, pinned)
    try:
        catalog = ModelCatalog.from_config(
            defaults, settings.models, parsers, replace_defaults=settings.replace_default_models
        )
        return ModelCatalog(placed(m, {c.name: c for c in configs}, settings.routes) for m in catalog)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def placed(model: ModelInfo, configs: Mapping[str, UpstreamConfig], default_routes: Sequence[str]) -> ModelInfo:
    """The model on its routes, in order: its own `routes`, else the catalog's (for a model of the
    default upstream), else its one `provider`. Each route gets the id the model has on that upstream
    and the upstream's price factor, unless the route names its own."""
    if model.routes:
        routes = model.routes
    elif default_routes and model.provider == DEFAULT_UPSTREAM:
        routes = tuple(Route(name, "") for name in default_routes)
    else:
        routes = (Route(model.provider, model.upstream_id),)
    resolved = []
    for route in routes:
        config = configs.get(route.upstream)
        if config is None:
            raise ValueError(
                f"model {model.id!r} is routed to {route.upstream!r}, which is no configured upstream "
                f"(known: {sorted(configs)})"
            )
        kind = KINDS[config.kind]
        upstream_id = route.upstream_id or kind.model_id(model.upstream_id, config)
        factor = route.price_factor or config.price_factor or kind.price_factor(config)
        resolved.append(Route(route.upstream, upstream_id, factor))
    first, *rest = resolved
    return replace(
        model,
        provider=first.upstream,
        upstream_id=first.upstream_id,
        price_factor=first.price_factor,
        routes=tuple(rest),
    )


def merge_listed(
    defaults: Sequence[ModelInfo], listed: Listing, from_upstream: FromUpstream, provider: str, pinned: set[str]
) -> list[ModelInfo]:
    """Each listed model updates the entry it names (by upstream id, id or alias) or is added.

    The upstream's word wins over the built-in table: a model it lists is served as asked, even
    one the table calls retired (a private deployment or a cloud route may retire later)."""
    models = list(defaults)
    index: dict[str, int] = {}
    for i, model in enumerate(models):
        for name in (model.upstream_id, model.id, *model.aliases):
            index.setdefault(name, i)
    for entry in listed:
        listed_id = entry.get("id")
        at = index.get(listed_id) if isinstance(listed_id, str) else None
        base = models[at] if at is not None else None
        if base is not None and (base.pinned or base.id in pinned or base.provider != provider):
            continue
        merged = from_upstream(entry, base, provider)
        if merged is None:
            continue
        merged = replace(merged, listed=True, retired=None, table_retired=merged.retired)
        if at is None:
            index[merged.id] = len(models)
            models.append(merged)
        else:
            models[at] = merged
    return models


def build_providers(configs: Sequence[UpstreamConfig]) -> dict[str, ChatProvider]:
    """One provider per configured upstream (the default one only when it has a key: a deployment
    that routes every model to a cloud needs no Anthropic key). Raises ConfigError."""
    return {c.name: KINDS[c.kind].create(c) for c in configs if c.kind != "anthropic" or c.api_keys}


class CatalogRefresher:
    """Keeps the catalog current from the default upstream's Models API: at start, then every
    ``interval`` seconds. While the upstream cannot be read, the catalog in force stays (the
    built-in table at first) and one warning says so until a read succeeds again."""

    def __init__(
        self, settings: Settings, chat: ChatService, listing: Callable[[], Awaitable[list[dict[str, Any]]]] | None
    ) -> None:
        self.settings, self.chat, self.listing = settings, chat, listing
        self.interval = settings.models_refresh_interval
        self._failing = False
        self._refreshed = False
        self._task: asyncio.Task[None] | None = None
        self._first: asyncio.Future[None] | None = None

    async def refresh(self) -> bool:
        """One read; True when the catalog was rebuilt from it."""
        assert self.listing is not None
        try:
            listed = await self.listing()
            catalog = build_catalog(self.settings, listed)
        except (GatewayError, ConfigError) as exc:
            if not self._failing:
                log.warning(
                    "the upstream's Models API could not be read (%s); serving the %s model table",
                    getattr(exc, "code", None) or exc,
                    "current" if self._refreshed else "built-in",
                )
            self._failing = True
            return False
        if self._failing:
            log.info("the upstream's Models API can be read again")
        self._failing = False
        self._refreshed = True
        added = {m.id for m in catalog} - {m.id for m in self.chat.catalog}
        self.chat.catalog = catalog
        log.info(
            "model catalog refreshed from the upstream: %d models%s",
            len(catalog),
            f", new: {sorted(added)}" if added else "",
        )
        return True

    async def start(self, wait: float = 2.0) -> None:
        """Starts refreshing; waits up to ``wait`` seconds for the first read, so a model the
        upstream offers is servable from the first request whenever the upstream answers quickly."""
        if self.listing is None or self.interval <= 0:
            return
        self._task = asyncio.create_task(self._run())
        self._first = first = asyncio.get_running_loop().create_future()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(first), wait)

    async def _run(self) -> None:
        while True:
            await self.refresh()
            if self._first is not None and not self._first.done():
                self._first.set_result(None)
            await asyncio.sleep(self.interval)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
