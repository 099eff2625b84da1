"""The model catalog: which Claude models are served, under which names, with what limits."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any, Literal

from chatgate.v1 import chat_pb2

from .errors import ModelNotFound

ThinkingStyle = Literal["none", "budget", "adaptive"]
EFFORTS = ("minimal", "low", "medium", "high")

# Thinking budgets per OpenAI reasoning effort. Anthropic's minimum budget is
# 1024 tokens; the rest double so each step is a clear change in cost.
DEFAULT_REASONING_BUDGETS: Mapping[str, int] = {"minimal": 1024, "low": 2048, "medium": 8192, "high": 16384}


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """One served model and what the gateway must know to call it well."""

    id: str
    upstream_id: str
    display_name: str
    max_output_tokens: int
    context_window: int = 200_000
    aliases: tuple[str, ...] = ()
    created: int = 0
    thinking: ThinkingStyle = "budget"
    structured_output: bool = False
    # Newer models reject `temperature` and `top_p` in the same request.
    sampling_exclusive: bool = False
    retired: date | None = None
    reasoning_budgets: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_REASONING_BUDGETS))

    def to_proto(self) -> chat_pb2.Model:
        return chat_pb2.Model(
            id=self.id,
            created=self.created,
            owned_by="anthropic",
            display_name=self.display_name,
            aliases=self.aliases,
            max_output_tokens=self.max_output_tokens,
            context_window=self.context_window,
        )


def _model(id: str, upstream: str, name: str, out: int, ctx: int, created: str, **extra: Any) -> ModelInfo:
    stamp = int(date.fromisoformat(created).strftime("%s")) if created else 0
    return ModelInfo(id, upstream, name, out, ctx, created=stamp, **extra)


# Limits come from Anthropic's model overview pages. Entries whose Anthropic id
# is a snapshot keep it as an alias, so clients can send either name.
DEFAULT_MODELS: tuple[ModelInfo, ...] = (
    _model(
        "claude-opus-5",
        "claude-opus-5",
        "Claude Opus 5",
        128_000,
        1_000_000,
        "2026-07-24",
        thinking="adaptive",
        structured_output=True,
        sampling_exclusive=True,
    ),
    _model(
        "claude-opus-4-7",
        "claude-opus-4-7",
        "Claude Opus 4.7",
        128_000,
        1_000_000,
        "2026-04-16",
        thinking="adaptive",
        structured_output=True,
        sampling_exclusive=True,
    ),
    _model(
        "claude-opus-4-6",
        "claude-opus-4-6",
        "Claude Opus 4.6",
        128_000,
        1_000_000,
        "2026-02-05",
        thinking="adaptive",
        structured_output=True,
    ),
    _model(
        "claude-sonnet-4-6",
        "claude-sonnet-4-6",
        "Claude Sonnet 4.6",
        64_000,
        1_000_000,
        "2026-02-17",
        thinking="adaptive",
        structured_output=True,
    ),
    _model(
        "claude-opus-4-5",
        "claude-opus-4-5-20251101",
        "Claude Opus 4.5",
        64_000,
        200_000,
        "2025-11-24",
        aliases=("claude-opus-4-5-20251101",),
        structured_output=True,
    ),
    _model(
        "claude-sonnet-4-5",
        "claude-sonnet-4-5-20250929",
        "Claude Sonnet 4.5",
        64_000,
        200_000,
        "2025-09-29",
        aliases=("claude-sonnet-4-5-20250929",),
        structured_output=True,
    ),
    _model(
        "claude-haiku-4-5",
        "claude-haiku-4-5-20251001",
        "Claude Haiku 4.5",
        64_000,
        200_000,
        "2025-10-15",
        aliases=("claude-haiku-4-5-20251001",),
        structured_output=True,
    ),
    _model(
        "claude-opus-4-1",
        "claude-opus-4-1-20250805",
        "Claude Opus 4.1",
        32_000,
        200_000,
        "2025-08-05",
        aliases=("claude-opus-4-1-20250805",),
        structured_output=True,
    ),
    _model(
        "claude-sonnet-4-20250514",
        "claude-sonnet-4-20250514",
        "Claude Sonnet 4",
        64_000,
        200_000,
        "2025-05-22",
        aliases=("claude-sonnet-4-0",),
        retired=date(2026, 6, 15),
    ),
    _model(
        "claude-opus-4-20250514",
        "claude-opus-4-20250514",
        "Claude Opus 4",
        32_000,
        200_000,
        "2025-05-22",
        aliases=("claude-opus-4-0",),
        retired=date(2026, 6, 15),
    ),
    _model(
        "claude-3.5-sonnet",
        "claude-3-5-sonnet-20241022",
        "Claude Sonnet 3.5",
        8_192,
        200_000,
        "2024-10-22",
        aliases=("claude-3-5-sonnet-20241022", "claude-3-5-sonnet-latest"),
        thinking="none",
        retired=date(2025, 10, 22),
    ),
    _model(
        "claude-3.5-haiku",
        "claude-3-5-haiku-20241022",
        "Claude Haiku 3.5",
        8_192,
        200_000,
        "2024-10-22",
        aliases=("claude-3-5-haiku-20241022", "claude-3-5-haiku-latest"),
        thinking="none",
    ),
)


class ModelCatalog:
    """Resolves a requested model name (id or alias) to its catalog entry."""

    def __init__(self, models: Iterable[ModelInfo]) -> None:
        self._models = tuple(models)
        self._by_name: dict[str, ModelInfo] = {}
        for model in self._models:
            for name in (model.id, *model.aliases):
                if name in self._by_name:
                    raise ValueError(f"model name {name!r} is defined twice in the catalog")
                self._by_name[name] = model

    def __iter__(self) -> Any:
        return iter(self._models)

    def __len__(self) -> int:
        return len(self._models)

    def resolve(self, name: str) -> ModelInfo:
        model = self._by_name.get(name)
        if model is None:
            raise ModelNotFound(
                f"The model `{name}` does not exist or you do not have access to it. "
                "GET /v1/models lists the models this gateway serves.",
                param="model",
            )
        return model

    @classmethod
    def default(cls) -> ModelCatalog:
        return cls(DEFAULT_MODELS)

    @classmethod
    def from_config(cls, entries: Iterable[Mapping[str, Any]], *, replace_defaults: bool) -> ModelCatalog:
        """Builds a catalog from `[[models]]` tables; entries override defaults by id."""
        models = {} if replace_defaults else {m.id: m for m in DEFAULT_MODELS}
        for entry in entries:
            model = model_from_config(entry, models.get(str(entry.get("id", ""))))
            models[model.id] = model
        return cls(models.values())


def model_from_config(entry: Mapping[str, Any], base: ModelInfo | None) -> ModelInfo:
    """One `[[models]]` table; keys absent from an override keep the default's value."""
    known = set(ModelInfo.__dataclass_fields__)
    unknown = set(entry) - known
    if unknown:
        raise ValueError(f"unknown keys in [[models]] entry: {sorted(unknown)}")
    values = dict(entry)
    if "aliases" in values:
        values["aliases"] = tuple(values["aliases"])
    if "retired" in values and isinstance(values["retired"], str):
        values["retired"] = date.fromisoformat(values["retired"])
    if "reasoning_budgets" in values:
        values["reasoning_budgets"] = {**DEFAULT_REASONING_BUDGETS, **values["reasoning_budgets"]}
    if base is not None:
        return replace(base, **values)
    for required in ("id", "max_output_tokens"):
        if required not in values:
            raise ValueError(f"[[models]] entry needs `{required}`: {dict(entry)}")
    values.setdefault("upstream_id", values["id"])
    values.setdefault("display_name", values["id"])
    return ModelInfo(**values)
