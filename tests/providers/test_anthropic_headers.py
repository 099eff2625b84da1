"""Which upstream headers reach the client, and under which names (translated and native answers)."""

from __future__ import annotations

import httpx
import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from service.core.provider import UpstreamInfo
from service.providers.anthropic.headers import (
    MAX_KEPT_NAMES,
    HeaderRecorder,
    native_name,
    record_headers,
    record_native_headers,
    translated_name,
)

ANSWER = [
    ("content-type", "application/json"),
    ("date", "Sun, 29 Nov 2026 19:40:00 GMT"),
    ("request-id", "req_up_1"),
    ("anthropic-ratelimit-requests-limit", "4000"),
    ("anthropic-ratelimit-tokens-remaining", "1999000"),
    ("retry-after", "7"),
    ("x-api-key-echo", "sk-ant-secret"),  # anything unknown stays upstream
]


@pytest.mark.parametrize(
    ("name", "translated", "native"),
    [
        ("anthropic-ratelimit-requests-limit", "x-ratelimit-requests-limit", "anthropic-ratelimit-requests-limit"),
        (
            "anthropic-ratelimit-output-tokens-reset",
            "x-ratelimit-output-tokens-reset",
            "anthropic-ratelimit-output-tokens-reset",
        ),
        ("retry-after", "retry-after", "retry-after"),
        ("request-id", "x-upstream-request-id", "request-id"),
        ("content-type", None, None),
        ("x-ratelimit-requests-limit", None, None),  # already in the client's spelling: not Anthropic's
        ("anthropic-organization-id", None, None),
    ],
)
def test_each_name_has_one_fate(name: str, translated: str | None, native: str | None) -> None:
    assert translated_name(name) == translated
    assert native_name(name) == native


def proxy(pairs: list[tuple[str, str]]) -> CIMultiDictProxy[str]:
    return CIMultiDictProxy(CIMultiDict(pairs))


def upper(pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The names as an HTTP/1.1 upstream may spell them."""
    return [("-".join(part.capitalize() for part in name.split("-")), value) for name, value in pairs]


TRANSLATED = {
    "x-upstream-request-id": "req_up_1",
    "x-ratelimit-requests-limit": "4000",
    "x-ratelimit-tokens-remaining": "1999000",
    "retry-after": "7",
}
NATIVE = {
    "request-id": "req_up_1",
    "anthropic-ratelimit-requests-limit": "4000",
    "anthropic-ratelimit-tokens-remaining": "1999000",
    "retry-after": "7",
}


@pytest.mark.parametrize(
    ("record", "expected"),
    [(record_headers, TRANSLATED), (record_native_headers, NATIVE)],
    ids=["translated", "native"],
)
@pytest.mark.parametrize("spell", [list, upper], ids=["lower-case", "capitalised"])
@pytest.mark.parametrize("wrap", [proxy, httpx.Headers], ids=["aiohttp", "httpx"])
def test_answers_get_the_headers_a_client_may_use(
    record: HeaderRecorder, expected: dict[str, str], spell: object, wrap: object
) -> None:
    for _ in range(2):  # the second answer is served from the kept names
        upstream = UpstreamInfo()
        record(upstream, wrap(spell(ANSWER)))  # type: ignore[operator]
        assert upstream.headers == expected
        assert upstream.request_id == "req_up_1"


def test_an_answer_without_a_request_id_leaves_it_empty() -> None:
    upstream = UpstreamInfo()
    record_headers(upstream, proxy([("anthropic-ratelimit-requests-limit", "10")]))
    assert upstream.request_id == ""
    assert upstream.headers == {"x-ratelimit-requests-limit": "10"}


def test_names_beyond_the_bound_are_still_renamed_but_not_kept() -> None:
    recorder = HeaderRecorder(translated_name)
    many = [(f"x-upstream-{i}", "v") for i in range(MAX_KEPT_NAMES)]
    recorder(UpstreamInfo(), proxy(many))
    upstream = UpstreamInfo()
    recorder(upstream, proxy([("anthropic-ratelimit-requests-limit", "10"), ("x-never-seen", "v")]))
    assert upstream.headers == {"x-ratelimit-requests-limit": "10"}
    assert len(recorder._names) == MAX_KEPT_NAMES
