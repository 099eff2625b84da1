"""Claude's models: the built-in table, and what only this provider needs to know about each one."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any, Literal, get_args

from service.core.models import ModelInfo, release_time

ThinkingStyle = Literal["none", "budget", "adaptive"]
EFFORTS = ("minimal", "low", "medium", "high")

# Thinking budgets per OpenAI reasoning effort. Anthropic's minimum budget is
# 1024 tokens; the rest double so each step is a clear change in cost.
DEFAULT_REASONING_BUDGETS: Mapping[str, int] = {"minimal": 1024, "low": 2048, "medium": 8192, "high": 16384}


@dataclass(frozen=True, slots=True)
class ClaudeTraits:
    """A Claude model's capabilities, as far as the request mapping needs them."""

    thinking: ThinkingStyle = "budget"
    structured_output: bool = False
    # Newer models reject `temperature` and `top_p` in the same request.
    sampling_exclusive: bool = False
    reasoning_budgets: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_REASONING_BUDGETS))


DEFAULT_TRAITS = ClaudeTraits()


def traits_of(model: ModelInfo) -> ClaudeTraits:
    """The model's Claude traits; a model configured without any gets the defaults."""
    traits = model.traits
    return traits if isinstance(traits, ClaudeTraits) else DEFAULT_TRAITS


def traits_from_config(entry: Mapping[str, Any], base: object) -> ClaudeTraits:
    """The Claude keys of a `[[models]]` entry. Raises ValueError naming a bad key or value."""
    traits = base if isinstance(base, ClaudeTraits) else DEFAULT_TRAITS
    values: dict[str, Any] = {}
    for key, value in entry.items():
        if key == "thinking":
            if value not in get_args(ThinkingStyle):
                raise ValueError(f"thinking must be one of {list(get_args(ThinkingStyle))}, not {value!r}")
            values[key] = value
        elif key in ("structured_output", "sampling_exclusive"):
            if not isinstance(value, bool):
                raise ValueError(f"{key} must be true or false, not {value!r}")
            values[key] = value
        elif key == "reasoning_budgets":
            values[key] = {**traits.reasoning_budgets, **_budgets(value)}
        else:
            known = ["thinking", "structured_output", "sampling_exclusive", "reasoning_budgets"]
            raise ValueError(
                f"unknown key `{key}` (model keys: id, upstream_id, display_name, "
                f"max_output_tokens, context_window, aliases, created, retired, provider, owned_by, fallback, "
                f"and for Claude {', '.join(known)})"
            )
    return replace(traits, **values)


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


def _model(id: str, upstream: str, name: str, out: int, ctx: int, created: str, **extra: Any) -> ModelInfo:
    aliases = extra.pop("aliases", ())
    retired = extra.pop("retired", None)
    return ModelInfo(
        id,
        upstream,
        name,
        out,
        ctx,
        aliases=aliases,
        created=release_time(created),
        retired=retired,
        owned_by="anthropic",
        traits=ClaudeTraits(**extra),
    )


# Limits come from Anthropic's model overview pages. Entries whose Anthropic id
# is a snapshot keep it as an alias, so clients can send either name.
CLAUDE_MODELS: tuple[ModelInfo, ...] = (
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
