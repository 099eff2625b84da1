"""Claude's models: the built-in table, what only this provider needs to know about each one,
and how the upstream's Models API entries become catalog entries.

The built-in table is the fallback: the gateway refreshes it from ``GET /v1/models``
(limits and the capabilities tree) and config overrides both. Facts the Models API
does not give (which models reject sampling parameters, which hide thinking text
by default, which offer fast mode) come from this table, and for models it does not
know, from the rule Anthropic's models have followed since Opus 4.7: a model that
only accepts adaptive thinking also rejects sampling parameters and hides thinking
text unless asked.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from typing import Any, Literal, get_args

from chatgate.v1 import chat_pb2
from service.core.models import ModelInfo, Prices, release_time

ThinkingStyle = Literal["none", "budget", "adaptive", "adaptive_only", "always"]
Sampling = Literal["any", "exclusive", "none"]
Display = Literal["summarized", "omitted"]
# OpenAI's reasoning efforts that map to a thinking budget (`none` turns thinking off).
EFFORTS = ("minimal", "low", "medium", "high", "xhigh", "max")
# Anthropic's effort levels (`output_config.effort`), lowest first.
UPSTREAM_EFFORTS = ("low", "medium", "high", "xhigh", "max")

# Thinking budgets per OpenAI reasoning effort, for models that take budgets.
# Anthropic's minimum budget is 1024 tokens; the rest double so each step is a
# clear change in cost. A budget at or above a model's output limit is lowered.
DEFAULT_REASONING_BUDGETS: Mapping[str, int] = {
    "minimal": 1024,
    "low": 2048,
    "medium": 8192,
    "high": 16384,
    "xhigh": 32768,
    "max": 65536,
}
MODEL_THINKING = {
    "none": chat_pb2.MODEL_THINKING_NONE,
    "budget": chat_pb2.MODEL_THINKING_BUDGET,
    "adaptive": chat_pb2.MODEL_THINKING_ADAPTIVE,
    "adaptive_only": chat_pb2.MODEL_THINKING_ADAPTIVE_ONLY,
    "always": chat_pb2.MODEL_THINKING_ALWAYS,
}


@dataclass(frozen=True, slots=True)
class ClaudeTraits:
    """A Claude model's capabilities, as far as the request mapping needs them."""

    thinking: ThinkingStyle = "budget"
    structured_output: bool = False
    # `any`: temperature, top_p and top_k are sent; `exclusive`: only one of
    # temperature and top_p (Claude 4.1 to 4.6); `none`: the model rejects all three.
    sampling: Sampling = "any"
    # Anthropic effort levels the model accepts on adaptive thinking.
    efforts: tuple[str, ...] = ("low", "medium", "high")
    # What the model returns for thinking when the request does not say.
    display: Display = "summarized"
    fast_mode: bool = False
    # `tool_choice` any / a named tool accepted (Opus 5.5, Fable 5.1 and later refuse forced tool use).
    forced_tools: bool = True
    # Thinking blocks verify only under the account that produced them (Haiku 5.5): a key pool
    # spanning accounts must send a conversation with thinking to the account that made it.
    account_bound: bool = False
    reasoning_budgets: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_REASONING_BUDGETS))

    def describe(self, out: chat_pb2.Model) -> None:
        """Fills the parts of the public model description that these traits decide."""
        out.thinking = MODEL_THINKING[self.thinking]
        if self.thinking != "none":
            out.efforts.extend(self.efforts if self.thinking != "budget" else ())
        out.sampling = self.sampling != "none"
        out.structured_output = self.structured_output
        out.fast_mode = self.fast_mode


DEFAULT_TRAITS = ClaudeTraits()
TRAIT_KEYS = (
    "thinking",
    "structured_output",
    "sampling",
    "efforts",
    "display",
    "fast_mode",
    "forced_tools",
    "account_bound",
    "reasoning_budgets",
)


def traits_of(model: ModelInfo) -> ClaudeTraits:
    """The model's Claude traits; a model configured without any gets the defaults."""
    traits = model.traits
    return traits if isinstance(traits, ClaudeTraits) else DEFAULT_TRAITS


def traits_from_config(entry: Mapping[str, Any], base: object) -> ClaudeTraits:
    """The Claude keys of a `[[models]]` entry. Raises ValueError naming a bad key or value."""
    traits = base if isinstance(base, ClaudeTraits) else DEFAULT_TRAITS
    values: dict[str, Any] = {}
    for key, value in entry.items():
        if key in ("thinking", "sampling", "display"):
            allowed = get_args({"thinking": ThinkingStyle, "sampling": Sampling, "display": Display}[key])
            if value not in allowed:
                raise ValueError(f"{key} must be one of {list(allowed)}, not {value!r}")
            values[key] = value
        elif key == "sampling_exclusive":  # the older spelling of sampling = "exclusive"
            values["sampling"] = "exclusive" if _flag(key, value) else "any"
        elif key in ("structured_output", "fast_mode", "forced_tools", "account_bound"):
            values[key] = _flag(key, value)
        elif key == "efforts":
            if not isinstance(value, list) or not all(v in UPSTREAM_EFFORTS for v in value):
                raise ValueError(f"efforts must be a list of {list(UPSTREAM_EFFORTS)}, not {value!r}")
            values[key] = tuple(e for e in UPSTREAM_EFFORTS if e in value)
        elif key == "reasoning_budgets":
            values[key] = {**traits.reasoning_budgets, **_budgets(value)}
        else:
            raise ValueError(
                f"unknown key `{key}` (model keys: id, upstream_id, display_name, max_output_tokens, context_window, "
                "aliases, created, retired, successor, hidden, pinned, provider, owned_by, fallback, "
                f"and for Claude {', '.join(TRAIT_KEYS)})"
            )
    return replace(traits, **values)


def _flag(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{key} must be true or false, not {value!r}")
    return value


def _budgets(value: Any) -> dict[str, int]:
    if not isinstance(value, Mapping):
        raise ValueError("reasoning_budgets must be a table of effort = tokens")
    for effort, tokens in value.items():
        if effort not in EFFORTS or not isinstance(tokens, int) or isinstance(tokens, bool) or tokens < 1024:
            raise ValueError(
                f"reasoning_budgets.{effort} must be an effort ({', '.join(EFFORTS)}) "
                f"with at least 1024 tokens, not {tokens!r}"
            )
    return dict(value)


# --- the upstream's Models API ----------------------------------------------------


def _supported(tree: Any, *path: str) -> bool:
    """``tree[path...]["supported"]``, False wherever the tree is missing or malformed."""
    node = tree
    for key in path:
        node = node.get(key) if isinstance(node, Mapping) else None
    return isinstance(node, Mapping) and node.get("supported") is True


def traits_from_capabilities(capabilities: Any, base: ClaudeTraits | None) -> ClaudeTraits:
    """Traits from a Models API capabilities tree; ``base`` (the built-in entry, if any)
    supplies what the tree does not say."""
    adaptive = _supported(capabilities, "thinking", "types", "adaptive")
    enabled = _supported(capabilities, "thinking", "types", "enabled")
    if not _supported(capabilities, "thinking"):
        style: ThinkingStyle = "none"
    elif adaptive and enabled:
        style = "adaptive"
    elif adaptive:
        style = "always" if base is not None and base.thinking == "always" else "adaptive_only"
    else:
        style = "budget"
    efforts = tuple(e for e in UPSTREAM_EFFORTS if _supported(capabilities, "effort", e))
    if base is None:  # a model the table does not know: the rules since Opus 4.7 (and Opus 5.5)
        newest = style in ("adaptive_only", "always")
        base = ClaudeTraits(
            sampling="none" if newest else "exclusive",
            display="omitted" if newest else "summarized",
            forced_tools=style != "always",  # a model that always thinks cannot be forced to call a tool
        )
    return replace(
        base,
        thinking=style,
        structured_output=_supported(capabilities, "structured_outputs"),
        efforts=efforts if _supported(capabilities, "effort") else (),
    )


def model_from_upstream(entry: Mapping[str, Any], base: ModelInfo | None, provider: str) -> ModelInfo | None:
    """A catalog entry from one Models API entry, merged over the built-in entry ``base``.

    Returns None for an entry without an id or limits (nothing safe to serve it with).
    """
    upstream_id = entry.get("id")
    max_tokens = entry.get("max_tokens")
    if not isinstance(upstream_id, str) or not upstream_id or not isinstance(max_tokens, int) or max_tokens < 1:
        return None
    context = entry.get("max_input_tokens")
    traits = traits_from_capabilities(entry.get("capabilities"), traits_of(base) if base is not None else None)
    values: dict[str, Any] = {"max_output_tokens": max_tokens, "traits": traits, "source": "upstream"}
    if isinstance(context, int) and context > 0:
        values["context_window"] = context
    if base is not None:
        return replace(base, **values)
    name = entry.get("display_name")
    return ModelInfo(
        upstream_id,
        upstream_id,
        name if isinstance(name, str) and name else upstream_id,
        created=_created(entry.get("created_at")),
        provider=provider,
        owned_by="anthropic",
        **values,
    )


def _created(value: Any) -> int:
    if not isinstance(value, str):
        return 0
    try:
        return int(datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC).timestamp())
    except ValueError:
        return 0


# --- the built-in table -------------------------------------------------------------


def _model(id: str, upstream: str, name: str, out: int, ctx: int, created: str, **extra: Any) -> ModelInfo:
    aliases = extra.pop("aliases", ())
    retired = extra.pop("retired", None)
    successor = extra.pop("successor", "")
    return ModelInfo(
        id,
        upstream,
        name,
        out,
        ctx,
        aliases=aliases,
        created=release_time(created),
        retired=retired,
        successor=successor,
        owned_by="anthropic",
        prices=anthropic_prices(*PRICES[id]),
        traits=ClaudeTraits(**extra),
    )


# USD per million input and output tokens (Anthropic's pricing page, November 2026); cache reads
# and writes follow from input (`anthropic_prices`). Config overrides any of them (`price`).
PRICES: dict[str, tuple[float, float]] = {
    "claude-fable-5-2": (8, 40),
    "claude-opus-5-5": (4, 20),
    "claude-sonnet-5-5": (2, 10),
    "claude-haiku-5-5": (0.1, 0.5),  # prompts up to 100k tokens; longer ones cost 5x (not modelled)
    "claude-fable-5-1": (10, 50),
    "claude-fable-5": (10, 50),
    "claude-opus-5": (5, 25),
    "claude-sonnet-5": (2, 10),
    "claude-opus-4-8": (5, 25),
    "claude-opus-4-7": (5, 25),
    "claude-opus-4-6": (5, 25),
    "claude-opus-4-5": (5, 25),
    "claude-sonnet-4-6": (3, 15),
    "claude-sonnet-4-5": (3, 15),
    "claude-haiku-4-5": (1, 5),
    "claude-opus-4-1": (15, 75),
    "claude-sonnet-4-20250514": (3, 15),
    "claude-opus-4-20250514": (15, 75),
    "claude-3.5-sonnet": (3, 15),
    "claude-3.5-haiku": (0.8, 4),
}


def anthropic_prices(input: float, output: float) -> Prices:
    """Anthropic's pricing rule: cache reads cost a tenth of input; 5-minute writes 1.25x, 1-hour writes 2x."""
    return Prices(input, output, input * 0.1, input * 1.25, input * 2)


NEWEST = {"sampling": "none", "display": "omitted", "structured_output": True}
ALL_EFFORTS = ("low", "medium", "high", "xhigh", "max")
# Thinking always on, and so no forced tool use (Opus 5.5 and Fable 5.1 on).
ALWAYS = {"thinking": "always", "forced_tools": False, "efforts": ALL_EFFORTS, **NEWEST}

# Limits come from Anthropic's model overview pages (December 2026). Entries whose
# Anthropic id is a snapshot keep it as an alias, so clients can send either name.
# Retired models stay listed so their names keep working: requests go to the
# successor (the newest current model of the same family unless one is named).
CLAUDE_MODELS: tuple[ModelInfo, ...] = (
    _model("claude-fable-5-2", "claude-fable-5-2", "Claude Fable 5.2", 128_000, 1_000_000, "2026-11-09", **ALWAYS),
    _model("claude-opus-5-5", "claude-opus-5-5", "Claude Opus 5.5", 128_000, 1_000_000, "2026-09-24", **ALWAYS),
    _model(
        "claude-sonnet-5-5",
        "claude-sonnet-5-5",
        "Claude Sonnet 5.5",
        128_000,
        1_000_000,
        "2026-10-21",
        thinking="adaptive_only",
        efforts=ALL_EFFORTS,
        **NEWEST,
    ),
    _model(
        "claude-haiku-5-5",
        "claude-haiku-5-5",
        "Claude Haiku 5.5",
        128_000,
        1_000_000,
        "2026-10-07",
        thinking="adaptive_only",
        efforts=ALL_EFFORTS,
        account_bound=True,
        **NEWEST,
    ),
    _model("claude-fable-5-1", "claude-fable-5-1", "Claude Fable 5.1", 128_000, 1_000_000, "2026-09-24", **ALWAYS),
    _model(
        "claude-fable-5",
        "claude-fable-5",
        "Claude Fable 5",
        128_000,
        1_000_000,
        "2026-06-09",
        thinking="always",
        efforts=ALL_EFFORTS,
        **NEWEST,
    ),
    _model(
        "claude-opus-5",
        "claude-opus-5",
        "Claude Opus 5",
        128_000,
        1_000_000,
        "2026-07-24",
        thinking="adaptive_only",
        efforts=ALL_EFFORTS,
        fast_mode=True,
        **NEWEST,
    ),
    _model(
        "claude-sonnet-5",
        "claude-sonnet-5",
        "Claude Sonnet 5",
        128_000,
        1_000_000,
        "2026-06-30",
        thinking="adaptive_only",
        efforts=("low", "medium", "high", "max"),
        **NEWEST,
    ),
    _model(
        "claude-opus-4-8",
        "claude-opus-4-8",
        "Claude Opus 4.8",
        128_000,
        1_000_000,
        "2026-05-28",
        thinking="adaptive_only",
        efforts=ALL_EFFORTS,
        fast_mode=True,
        **NEWEST,
    ),
    _model(
        "claude-opus-4-7",
        "claude-opus-4-7",
        "Claude Opus 4.7",
        128_000,
        1_000_000,
        "2026-04-16",
        thinking="adaptive_only",
        efforts=ALL_EFFORTS,
        fast_mode=True,
        **NEWEST,
    ),
    _model(
        "claude-opus-4-6",
        "claude-opus-4-6",
        "Claude Opus 4.6",
        128_000,
        1_000_000,
        "2026-02-05",
        thinking="adaptive",
        efforts=("low", "medium", "high", "max"),
        structured_output=True,
        sampling="exclusive",
        fast_mode=True,
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
        sampling="exclusive",
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
        sampling="exclusive",
        efforts=(),
    ),
    _model(
        "claude-sonnet-4-5",
        "claude-sonnet-4-5-20250929",
        "Claude Sonnet 4.5",
        64_000,
        200_000,
        "2025-09-29",
        aliases=("claude-sonnet-4-5-20250929",),
        retired=date(2026, 11, 30),
        structured_output=True,
        sampling="exclusive",
        efforts=(),
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
        sampling="exclusive",
        efforts=(),
    ),
    _model(
        "claude-opus-4-1",
        "claude-opus-4-1-20250805",
        "Claude Opus 4.1",
        32_000,
        200_000,
        "2025-08-05",
        aliases=("claude-opus-4-1-20250805",),
        retired=date(2026, 8, 5),
        sampling="exclusive",
        efforts=(),
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
        efforts=(),
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
        efforts=(),
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
        efforts=(),
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
        retired=date(2025, 10, 22),
        efforts=(),
    ),
)
