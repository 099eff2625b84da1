"""The models the simulated Anthropic offers, as its Models API describes them, and the rules
the real Messages API applies per model.

This is the simulator's own table (it plays Anthropic), deliberately not the gateway's
catalog: a gateway that sends a model something the real API refuses must see the same
refusal here. Each entry has the Models API's public fields and, under ``rules``, what
the API enforces but does not publish (sampling, the thinking display default, fast mode).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Json = dict[str, Any]
EFFORTS = ("low", "medium", "high", "xhigh", "max")


@dataclass(frozen=True, slots=True)
class Rules:
    """What the Messages API enforces for one model."""

    max_tokens: int
    thinking: tuple[str, ...]  # accepted `thinking.type` values besides `disabled`
    efforts: tuple[str, ...] = ()
    sampling: str = "any"  # any | exclusive | none
    display: str = "summarized"  # the default when `thinking.display` is not sent
    always_thinks: bool = False  # `disabled` is refused; thinking happens unasked
    forced_tools: bool = True  # `tool_choice` any / tool accepted (Opus 5.5 and Fable 5.1 on refuse it)
    account_bound: bool = False  # thinking blocks verify only under the account that produced them
    fast_mode: bool = False
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SimModel:
    id: str
    display_name: str
    created_at: str
    max_input_tokens: int
    rules: Rules
    structured_outputs: bool = True
    extra: Json = field(default_factory=dict)

    def to_json(self) -> Json:
        """The Models API entry, capabilities tree included."""

        def yes(flag: bool) -> Json:
            return {"supported": flag}

        rules = self.rules
        thinking = bool(rules.thinking)
        return {
            "type": "model",
            "id": self.id,
            "display_name": self.display_name,
            "created_at": self.created_at,
            "max_input_tokens": self.max_input_tokens,
            "max_tokens": rules.max_tokens,
            "capabilities": {
                "batch": yes(True),
                "citations": yes(True),
                "code_execution": yes(True),
                "context_management": {
                    "supported": True,
                    "clear_thinking_20251015": yes(thinking),
                    "clear_tool_uses_20250919": yes(True),
                    "compact_20260112": yes("adaptive" in rules.thinking),
                },
                "effort": {"supported": bool(rules.efforts), **{e: yes(e in rules.efforts) for e in EFFORTS}},
                "image_input": yes(True),
                "pdf_input": yes(True),
                "structured_outputs": yes(self.structured_outputs),
                "thinking": {
                    "supported": thinking,
                    "types": {
                        "adaptive": yes("adaptive" in rules.thinking),
                        "enabled": yes("enabled" in rules.thinking),
                    },
                },
            },
        }


def _newest(max_tokens: int, efforts: tuple[str, ...] = EFFORTS, **extra: Any) -> Rules:
    """The rules since Opus 4.7: adaptive thinking only, no sampling, thinking text hidden unless asked."""
    return Rules(max_tokens, ("adaptive",), efforts, sampling="none", display="omitted", **extra)


BUDGET_ONLY = ("enabled",)
BOTH = ("enabled", "adaptive")

# What Anthropic offers in December 2026 (newest first); retired models are absent (Sonnet 4.5
# since 2026-11-30), so the API answers 404 for them, as the real one does.
ALWAYS = Rules(
    128_000, ("adaptive",), EFFORTS, sampling="none", display="omitted", always_thinks=True, forced_tools=False
)
MODELS: tuple[SimModel, ...] = (
    SimModel("claude-fable-5-2", "Claude Fable 5.2", "2026-11-09T00:00:00Z", 1_000_000,
             ALWAYS),
    SimModel("claude-haiku-5-5", "Claude Haiku 5.5", "2026-10-07T00:00:00Z", 1_000_000,
             _newest(128_000, account_bound=True)),
    SimModel("claude-sonnet-5-5", "Claude Sonnet 5.5", "2026-10-21T00:00:00Z", 1_000_000, _newest(128_000)),
    SimModel("claude-opus-5-5", "Claude Opus 5.5", "2026-09-24T00:00:00Z", 1_000_000, ALWAYS),
    SimModel("claude-fable-5-1", "Claude Fable 5.1", "2026-09-24T00:00:00Z", 1_000_000, ALWAYS),
    SimModel("claude-fable-5", "Claude Fable 5", "2026-06-09T00:00:00Z", 1_000_000,
             _newest(128_000, always_thinks=True)),
    SimModel("claude-opus-5", "Claude Opus 5", "2026-07-24T00:00:00Z", 1_000_000, _newest(128_000, fast_mode=True)),
    SimModel("claude-sonnet-5", "Claude Sonnet 5", "2026-06-30T00:00:00Z", 1_000_000,
             _newest(128_000, ("low", "medium", "high", "max"))),
    SimModel("claude-opus-4-8", "Claude Opus 4.8", "2026-05-28T00:00:00Z", 1_000_000,
             _newest(128_000, fast_mode=True)),
    SimModel("claude-opus-4-7", "Claude Opus 4.7", "2026-04-16T00:00:00Z", 1_000_000,
             _newest(128_000, fast_mode=True)),
    SimModel("claude-opus-4-6", "Claude Opus 4.6", "2026-02-05T00:00:00Z", 1_000_000,
             Rules(128_000, BOTH, ("low", "medium", "high", "max"), sampling="exclusive", fast_mode=True)),
    SimModel("claude-sonnet-4-6", "Claude Sonnet 4.6", "2026-02-17T00:00:00Z", 1_000_000,
             Rules(64_000, BOTH, ("low", "medium", "high"), sampling="exclusive")),
    SimModel("claude-opus-4-5-20251101", "Claude Opus 4.5", "2025-11-24T00:00:00Z", 200_000,
             Rules(64_000, BUDGET_ONLY, sampling="exclusive", aliases=("claude-opus-4-5",))),
    SimModel("claude-haiku-4-5-20251001", "Claude Haiku 4.5", "2025-10-15T00:00:00Z", 200_000,
             Rules(64_000, BUDGET_ONLY, sampling="exclusive", aliases=("claude-haiku-4-5",))),
)  # fmt: skip


def from_json(entry: Json) -> SimModel:
    """A model added at run time (`POST /_sim/models`): the Models API fields plus optional rules."""
    caps = entry.get("capabilities") or {}
    types = (caps.get("thinking") or {}).get("types") or {}
    thinking = tuple(t for t in ("enabled", "adaptive") if (types.get(t) or {}).get("supported"))
    effort = caps.get("effort") or {}
    efforts = tuple(e for e in EFFORTS if (effort.get(e) or {}).get("supported"))
    extra = entry.get("rules") or {}
    rules = Rules(int(entry["max_tokens"]), thinking, efforts, **extra)
    return SimModel(
        str(entry["id"]),
        str(entry.get("display_name") or entry["id"]),
        str(entry.get("created_at") or "2026-11-01T00:00:00Z"),
        int(entry.get("max_input_tokens") or 200_000),
        rules,
        bool((caps.get("structured_outputs") or {}).get("supported", True)),
    )


class ModelTable:
    """The simulator's models by id and alias; tests may add models or make the listing fail."""

    def __init__(self, models: tuple[SimModel, ...] = MODELS) -> None:
        self.models = list(models)
        self.listing_fails = False

    def find(self, name: str) -> SimModel | None:
        for model in self.models:
            if name == model.id or name in model.rules.aliases:
                return model
        return None

    def add(self, model: SimModel) -> None:
        self.models = [m for m in self.models if m.id != model.id]
        self.models.insert(0, model)

    def remove(self, name: str) -> None:
        """The model leaves the listing and its name answers 404 (as a retired model does)."""
        self.models = [m for m in self.models if m.id != name and name not in m.rules.aliases]

    def page(self, limit: int, after_id: str | None, before_id: str | None) -> Json:
        """One page of `GET /v1/models`, newest first, as the real API pages it."""
        ids = [m.id for m in self.models]
        start, end = 0, len(ids)
        if after_id is not None:
            start = ids.index(after_id) + 1 if after_id in ids else len(ids)
        if before_id is not None:
            end = ids.index(before_id) if before_id in ids else 0
            start = max(start, end - limit)
        chosen = self.models[start:end][:limit]
        data = [m.to_json() for m in chosen]
        return {
            "data": data,
            "has_more": start + len(chosen) < end if before_id is None else start > 0,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
        }
