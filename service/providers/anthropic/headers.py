"""Which of Anthropic's response headers reach the client, and under which names.

Translated answers (OpenAI dialects, gRPC) get the rate limits as ``x-ratelimit-*``,
``retry-after`` as it is, and Anthropic's ``request-id`` as ``x-upstream-request-id``
(the client's ``x-request-id`` is the gateway's own). Native answers get Anthropic's
headers under their own names.

Every answer carries the same dozen or more header names, so each name's fate is
worked out once and kept: per answer this is one dictionary lookup per header. A
lower-cased copy of the headers, then prefix tests on each name, cost about 16 us
per answer in a microbenchmark; this costs about 3.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from service.core.provider import UpstreamInfo

RATE_LIMIT_PREFIX = "anthropic-ratelimit-"
# Names from an upstream are not a fixed set; past this many, new names are worked out each time.
MAX_KEPT_NAMES = 256


def translated_name(name: str) -> str | None:
    """The name a translated answer gives an upstream header (lower-case); None: not passed on."""
    if name.startswith(RATE_LIMIT_PREFIX):
        return "x-ratelimit-" + name[len(RATE_LIMIT_PREFIX) :]
    if name == "retry-after":
        return name
    if name == "request-id":
        return "x-upstream-request-id"
    return None


def native_name(name: str) -> str | None:
    """The name a native answer gives an upstream header (lower-case); None: not passed on."""
    return name if name.startswith(RATE_LIMIT_PREFIX) or name in ("retry-after", "request-id") else None


class HeaderRecorder:
    """Copies the headers a client may use into the answer's ``UpstreamInfo``, renamed by ``rule``.

    ``headers`` is any mapping with case-insensitive lookups (aiohttp's and httpx's are);
    iterating it may give names in any case."""

    __slots__ = ("_names", "_rule")

    def __init__(self, rule: Callable[[str], str | None]) -> None:
        self._rule = rule
        self._names: dict[str, str | None] = {}

    def __call__(self, upstream: UpstreamInfo, headers: Mapping[str, str]) -> None:
        names, kept = self._names, upstream.headers
        for name, value in headers.items():
            try:
                renamed = names[name]
            except KeyError:
                renamed = self._learn(name)
            if renamed is not None:
                kept[renamed] = value
        request_id = headers.get("request-id")
        if request_id is not None:
            upstream.request_id = request_id

    def _learn(self, name: str) -> str | None:
        renamed = self._rule(name.lower())
        if len(self._names) < MAX_KEPT_NAMES:
            self._names[name] = renamed
        return renamed


record_headers = HeaderRecorder(translated_name)
record_native_headers = HeaderRecorder(native_name)
