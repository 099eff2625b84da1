"""The compatibility policy: every request field Claude cannot honour exactly is
either adjusted and reported (lenient) or rejected naming the field (strict)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from .errors import InvalidRequest

log = logging.getLogger("chatgate")
Action = Literal["dropped", "adjusted"]


@dataclass(frozen=True, slots=True)
class Adjustment:
    """One change the gateway made to a request, for the response header and the log."""

    param: str
    action: Action
    detail: str
    # What the compact report shows after `param=` instead of the action (`OLD->NEW` for a model).
    shown: str = ""

    def __str__(self) -> str:
        return f"{self.param}={self.shown or self.action}: {self.detail}"


class CompatReport:
    """Collects adjustments for one request, or raises at the first one when strict."""

    __slots__ = ("items", "strict")

    def __init__(self, *, strict: bool) -> None:
        self.strict = strict
        self.items: list[Adjustment] = []

    def drop(self, param: str, detail: str) -> None:
        """The field has no Claude equivalent and is left out."""
        self._record(Adjustment(param, "dropped", detail))

    def adjust(self, param: str, detail: str) -> None:
        """The field is sent in a changed form that Claude accepts."""
        self._record(Adjustment(param, "adjusted", detail))

    def note(self, param: str, detail: str, *, shown: str = "") -> None:
        """Something the gateway chose to do (a fallback model, say): reported, never refused as strict."""
        self._append(Adjustment(param, "adjusted", detail, shown))

    def _record(self, item: Adjustment) -> None:
        if self.strict:
            raise InvalidRequest(
                f"`{item.param}` cannot be honoured exactly by Claude ({item.detail}); "
                "the request uses strict compatibility, so it was rejected.",
                param=item.param,
                code="unsupported_parameter",
            )
        self._append(item)

    def _append(self, item: Adjustment) -> None:
        if item not in self.items:  # fan-out calls share one report: each change is listed once
            self.items.append(item)


def describe(adjustments: Sequence[Adjustment], ignored: Sequence[str] = ()) -> str:
    """The compact, ASCII-only list both edges report (`x-chatgate-adjusted`); the details go to the log."""
    if adjustments:
        log.info("request adjusted: %s", "; ".join(str(a) for a in adjustments))
    shown = [f"{a.param}={a.shown or a.action}" for a in adjustments]
    return ", ".join(shown + [f"{name}=ignored" for name in ignored])
