"""The model catalog: which models are served, under which names, by which provider, with what limits.

Only what every provider shares lives here. What a provider kind alone needs
to call a model well (Claude's thinking styles and sampling rules, say) is its
``traits``: an object the core carries but never reads, defined and parsed by
that provider's package.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from typing import Any

from chatgate.v1 import chat_pb2

from .errors import ModelNotFound

# Reads a provider kind's own keys of a `[[models]]` entry; ``base`` is the traits
# being overridden (None for a new entry). Raises ValueError naming the bad key.
TraitsParser = Callable[[Mapping[str, Any], object], object]


@dataclass(frozen=True, slots=True)
class Prices:
    """US dollars per million tokens, each kind priced on its own."""

    input: float
    output: float
    cache_read: float
    cache_write_5m: float
    cache_write_1h: float

    def scaled(self, factor: float) -> Prices:
        return Prices(
            self.input * factor,
            self.output * factor,
            self.cache_read * factor,
            self.cache_write_5m * factor,
            self.cache_write_1h * factor,
        )

    def cost(self, usage: chat_pb2.Usage) -> float:
        details = usage.prompt_tokens_details
        written = details.cache_creation_tokens
        hour = details.cache_write_1h_tokens
        five = written - hour  # writes without a split are priced as 5-minute ones
        uncached = usage.prompt_tokens - details.cached_tokens - written
        total = (
            uncached * self.input
            + usage.completion_tokens * self.output
            + details.cached_tokens * self.cache_read
            + five * self.cache_write_5m
            + hour * self.cache_write_1h
        )
        return total / 1_000_000


@dataclass(frozen=True, slots=True)
class Route:
    """One more way to reach a model: another configured upstream (`[upstreams.NAME]`), the id
    the model has there, and what that route costs against the model's list prices (a regional
    cloud endpoint costs more)."""

    upstream: str
    upstream_id: str  # empty until the composition root fills in the upstream's own id
    price_factor: float = 0.0  # 0 until the composition root fills in the upstream's factor


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """One served model and what every provider must know to call it."""

    id: str
    upstream_id: str
    display_name: str
    max_output_tokens: int
    context_window: int = 200_000
    aliases: tuple[str, ...] = ()
    created: int = 0
    retired: date | None = None
    # The model (id or alias) that serves requests for this one once it is retired;
    # empty: the newest current model of the same family (see ``ModelCatalog``).
    successor: str = ""
    # Upstream refreshes leave a pinned entry as the built-in table and config say.
    pinned: bool = False
    # Where the entry's facts come from: built-in, upstream (its Models API) or config.
    source: str = "built-in"
    # The upstream's Models API lists it: served as asked, whatever the built-in table says.
    listed: bool = False
    # The built-in table's retirement date of a model the upstream still lists: should the upstream
    # answer 404 for it after all, it is retired then, and its successor (a listed one) answers.
    table_retired: date | None = None
    # The configured upstream (`[upstreams.NAME]`) whose provider serves this model.
    provider: str = "anthropic"
    owned_by: str = ""
    # Models (ids or aliases) to try, in order, when this one's upstream is in trouble.
    fallback: tuple[str, ...] = ()
    # What a token costs, for the ledger and spend budgets; None: not priced (cost 0).
    prices: Prices | None = None
    traits: object = None
    # The routes tried after this one (`provider`, `upstream_id`), in order, before the first byte.
    routes: tuple[Route, ...] = ()
    # What this route costs against ``prices`` (the list prices): 1.1 for a regional endpoint, say.
    price_factor: float = 1.0

    @property
    def route_prices(self) -> Prices | None:
        """What a token costs on this model's route (the list prices times the route's factor)."""
        if self.prices is None or self.price_factor == 1.0:
            return self.prices
        return self.prices.scaled(self.price_factor)

    def on_routes(self) -> tuple[ModelInfo, ...]:
        """The model on each of its routes, in order: itself, then one entry per further route."""
        if not self.routes:
            return (self,)
        return (
            self,
            *(
                replace(self, provider=r.upstream, upstream_id=r.upstream_id, price_factor=r.price_factor, routes=())
                for r in self.routes
            ),
        )

    def is_retired(self, today: date | None = None) -> bool:
        return self.retired is not None and self.retired <= (today or datetime.now(UTC).date())

    @property
    def family(self) -> str:
        """The model line, for choosing a successor: the first word of the id after the vendor's
        (``claude-3.5-sonnet`` and ``claude-sonnet-4-6`` are both ``sonnet``)."""
        words = [w for w in self.id.replace(".", "-").split("-") if w.isalpha()]
        return words[1] if len(words) > 1 else (words[0] if words else self.id)

    @property
    def names(self) -> tuple[str, ...]:
        """Every name the model is served under: its id, then its aliases (dated ids among them)."""
        return (self.id, *self.aliases)

    def to_proto(self, name: str = "") -> chat_pb2.Model:
        """The public description, under ``name`` (one of ``names``; the id when empty), its
        other names as aliases: a client that asked for a dated id gets that id back."""
        name = name or self.id
        out = chat_pb2.Model(
            id=name,
            created=self.created,
            owned_by=self.owned_by,
            display_name=self.display_name,
            aliases=[n for n in self.names if n != name],
            max_output_tokens=self.max_output_tokens,
            context_window=self.context_window,
            retired=self.retired.isoformat() if self.retired is not None else "",
            successor=self.successor,
            source=self.source,
        )
        describe = getattr(self.traits, "describe", None)  # the provider's own facts, if it offers them
        if describe is not None:
            describe(out)
        return out


def release_time(day: str) -> int:
    """Unix seconds at midnight UTC of an ISO date (independent of the local time zone)."""
    return int(datetime.combine(date.fromisoformat(day), datetime.min.time(), UTC).timestamp()) if day else 0


class ModelCatalog:
    """Resolves a requested model name (id or alias) to its catalog entry."""

    def __init__(self, models: Iterable[ModelInfo]) -> None:
        models = tuple(models)
        names: set[str] = set()
        for model in models:
            for name in (model.id, *model.aliases):
                if name in names:
                    raise ValueError(f"model name {name!r} is defined twice in the catalog")
                names.add(name)
        self._models = tuple(with_successor(m, models) for m in models)
        self._by_name = {name: m for m in self._models for name in (m.id, *m.aliases)}
        # Each routed model on its routes, made once per catalog rather than once per request.
        self._on_routes = {m.id: m.on_routes() for m in self._models if m.routes}
        for model in self._models:
            for name in model.fallback:
                if name not in self._by_name:
                    raise ValueError(f"model {model.id!r} falls back to {name!r}, which is not in the catalog")
            if model.successor and model.successor not in self._by_name:
                raise ValueError(f"model {model.id!r} names the successor {model.successor!r}, not in the catalog")

    def __iter__(self) -> Any:
        return iter(self._models)

    def __len__(self) -> int:
        return len(self._models)

    def resolve(self, name: str) -> ModelInfo:
        model = self._by_name.get(name)
        if model is None:
            shown = name if len(name) <= 80 else name[:77] + "..."  # never echo a huge input back
            raise ModelNotFound(
                f"The model `{shown}` does not exist or you do not have access to it. "
                "GET /v1/models lists the models this gateway serves.",
                param="model",
            )
        return model

    def on_routes(self, model: ModelInfo) -> tuple[ModelInfo, ...]:
        """``model.on_routes()``, from this catalog's cache when the model is this catalog's own."""
        cached = self._on_routes.get(model.id)
        return cached if cached is not None and cached[0] is model else model.on_routes()

    def find(self, name: str) -> ModelInfo | None:
        """The entry for an id or alias, or None (no error: for bookkeeping, not for requests)."""
        return self._by_name.get(name)

    def stand_in(self, model: ModelInfo) -> ModelInfo | None:
        """For a listed model the table calls retired: the model that serves it if the upstream
        answers 404 for it after all (None for any other model)."""
        return self.successor_of(model) if model.listed and model.table_retired is not None else None

    def successor_of(self, model: ModelInfo) -> ModelInfo | None:
        """The entry that serves a retired model, following successors that are themselves retired."""
        seen = {model.id}
        while model.successor:
            model = self._by_name[model.successor]
            if not model.is_retired() or model.id in seen:
                return model
            seen.add(model.id)
        return None

    @classmethod
    def from_config(
        cls,
        defaults: Iterable[ModelInfo],
        entries: Iterable[Mapping[str, Any]],
        traits: Mapping[str, TraitsParser],
        *,
        replace_defaults: bool = False,
    ) -> ModelCatalog:
        """Builds a catalog from `[[models]]` tables; entries override ``defaults`` by id.

        ``traits`` maps each configured provider name to the parser of its own keys.
        """
        models = {} if replace_defaults else {m.id: m for m in defaults}
        for k, entry in enumerate(entries):
            name = str(entry.get("id", "")) if isinstance(entry, Mapping) else ""
            if isinstance(entry, Mapping) and entry.get("hidden") is True:
                models.pop(name, None)  # neither listed nor served, whatever the upstream says
                continue
            model = model_from_config(entry, models.get(name), traits, where=f"models[{k}]")
            models[model.id] = model
        return cls(models.values())


def with_successor(model: ModelInfo, models: Sequence[ModelInfo]) -> ModelInfo:
    """A retired model without a configured successor gets the newest current model of its
    family from the same upstream (none when the family has no current model). Once that
    upstream's Models API has been read, only a model it lists can be the successor: the
    built-in table must never send requests to a model the upstream does not offer."""
    if (model.retired is None and model.table_retired is None) or model.successor:
        return model
    peers = [m for m in models if m.provider == model.provider and m.id != model.id]
    listing = any(m.listed for m in peers)
    current = [m for m in peers if m.family == model.family and m.retired is None and (m.listed or not listing)]
    if not current:
        return model
    return replace(model, successor=max(current, key=lambda m: m.created).id)


GENERIC_KEYS = {
    "id": str,
    "upstream_id": str,
    "display_name": str,
    "max_output_tokens": int,
    "context_window": int,
    "aliases": list,
    "created": str,
    "retired": str,
    "provider": str,
    "owned_by": str,
    "fallback": list,
    "successor": str,
    "pinned": bool,
    "hidden": bool,
    "price": dict,
    "routes": list,
}


EXPECTED = {
    str: "a string",
    int: "a positive integer",
    list: "a list of strings",
    bool: "true or false",
    dict: "a table of prices (input, output, cache_read, cache_write_5m, cache_write_1h)",
}
PRICE_KEYS = ("input", "output", "cache_read", "cache_write_5m", "cache_write_1h")


def model_from_config(
    entry: Mapping[str, Any], base: ModelInfo | None, traits: Mapping[str, TraitsParser], *, where: str
) -> ModelInfo:
    """One `[[models]]` table; keys absent from an override keep the default's value.

    Raises ValueError with a one-line message naming the entry and the key.
    """
    if not isinstance(entry, Mapping):
        raise ValueError(f"{where} must be a table")
    generic = {k: v for k, v in entry.items() if k in GENERIC_KEYS}
    for key, value in generic.items():
        kind = GENERIC_KEYS[key]
        wrong_bool = isinstance(value, bool) != (kind is bool)
        if not isinstance(value, kind) or wrong_bool or (isinstance(value, int) and kind is int and value < 1):
            expected = EXPECTED[kind]
            raise ValueError(f"{where}.{key} must be {expected}, not {value!r}")
    values: dict[str, Any] = {k: v for k, v in generic.items() if k != "hidden"}
    values["source"] = "config"
    if "aliases" in values:
        if not all(isinstance(a, str) and a for a in values["aliases"]):
            raise ValueError(f"{where}.aliases must be a list of non-empty strings")
        values["aliases"] = tuple(values["aliases"])
    if "fallback" in values:
        if not all(isinstance(a, str) and a for a in values["fallback"]):
            raise ValueError(f"{where}.fallback must be a list of model names")
        values["fallback"] = tuple(values["fallback"])
    if "price" in values:
        values["prices"] = prices_from_config(values.pop("price"), base.prices if base else None, where)
    if "routes" in values:
        routes = routes_from_config(values.pop("routes"), where)
        values["provider"] = routes[0].upstream
        # All of them, the first too, each with its own id if given: the composition root places them
        # (``upstream_id`` stays the model's Anthropic id, which the other routes' ids derive from).
        values["routes"] = routes
    for key, convert in (("retired", date.fromisoformat), ("created", release_time)):
        if key in values:
            try:
                values[key] = convert(values[key])
            except ValueError:
                raise ValueError(f"{where}.{key} must be a date like 2026-01-31, not {entry[key]!r}") from None
    if base is None:
        for required in ("id", "max_output_tokens"):
            if required not in values:
                raise ValueError(f"{where} needs `{required}` (a new model, not an override of a default one)")
        values.setdefault("upstream_id", values["id"])
        values.setdefault("display_name", values["id"])
        model = ModelInfo(**values)
    else:
        model = replace(base, **values)
    parser = traits.get(model.provider)
    if parser is None:
        raise ValueError(f"{where}.provider names no configured upstream: {model.provider!r} (known: {sorted(traits)})")
    own = {k: v for k, v in entry.items() if k not in GENERIC_KEYS}
    keep = base.traits if base is not None and base.provider == model.provider else None
    try:
        return replace(model, traits=parser(own, keep))
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None


ROUTE_KEYS = ("upstream", "model", "price_factor")


def routes_from_config(items: list[Any], where: str) -> tuple[Route, ...]:
    """`routes = ["anthropic", {upstream = "bedrock", model = "...", price_factor = 1.1}]`: the
    upstreams that serve the model, in order. A route without `model` uses the id the upstream's
    kind gives the model; one without `price_factor`, the upstream's."""
    routes = []
    for i, item in enumerate(items):
        at = f"{where}.routes[{i}]"
        table = {"upstream": item} if isinstance(item, str) else item
        if not isinstance(table, Mapping) or not isinstance(table.get("upstream"), str) or not table["upstream"]:
            raise ValueError(f"{at} must be an upstream name or a table with `upstream`")
        unknown = [k for k in table if k not in ROUTE_KEYS]
        if unknown:
            raise ValueError(f"{at}: unknown key `{unknown[0]}` (known: {', '.join(ROUTE_KEYS)})")
        model = table.get("model", "")
        factor = table.get("price_factor", 0.0)
        if not isinstance(model, str):
            raise ValueError(f"{at}.model must be a string")
        if isinstance(factor, bool) or not isinstance(factor, int | float) or factor < 0:
            raise ValueError(f"{at}.price_factor must be a positive number")
        routes.append(Route(table["upstream"], model, float(factor)))
    if not routes:
        raise ValueError(f"{where}.routes must name at least one upstream")
    return tuple(routes)


def prices_from_config(table: Mapping[str, Any], base: Prices | None, where: str) -> Prices:
    """`price = {input = 3, output = 15, ...}`, USD per million tokens. A model that has prices may
    change some: a new `input` moves the cache prices it does not set by the same ratio. A model
    without prices needs all five."""
    for key, value in table.items():
        if key not in PRICE_KEYS or isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise ValueError(f"{where}.price.{key} must be one of {', '.join(PRICE_KEYS)} with a non-negative number")
    if base is None:
        missing = [k for k in PRICE_KEYS if k not in table]
        if missing:
            raise ValueError(f"{where}.price needs {', '.join(missing)} too (USD per million tokens)")
        return Prices(**{k: float(table[k]) for k in PRICE_KEYS})
    values = {k: getattr(base, k) for k in PRICE_KEYS}
    if "input" in table and base.input:
        ratio = float(table["input"]) / base.input
        for key in ("cache_read", "cache_write_5m", "cache_write_1h"):
            values[key] = getattr(base, key) * ratio
    values.update({k: float(v) for k, v in table.items()})
    return Prices(**values)
