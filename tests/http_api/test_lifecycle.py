"""The HTTP edge in process (Starlette through an ASGI transport) over the scripted provider:
the shared lifecycle and its one error boundary."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson
import pytest

from service.core.errors import UpstreamOverloaded
from service.providers.scripted import ScriptedProvider
from tests.inprocess import asgi_client, scripted_chat, text_chunks, text_completion

BODY = {"model": "claude-haiku-4-5", "messages": [{"role": "user", "content": "Hi"}]}


def post(provider: ScriptedProvider, body: dict[str, Any], **headers: str) -> tuple[int, dict[str, str], str]:
    async def scenario() -> tuple[int, dict[str, str], str]:
        async with asgi_client(scripted_chat(provider)) as client:
            response = await client.post("/v1/chat/completions", json=body, headers=headers)
            return response.status_code, dict(response.headers), response.text

    return asyncio.run(scenario())


def data_frames(text: str) -> list[Any]:
    return [orjson.loads(line[6:]) for line in text.splitlines() if line.startswith("data: {")]


def test_a_whole_reply() -> None:
    status, headers, text = post(ScriptedProvider(completion=text_completion("Hello there")), BODY)
    assert status == 200 and orjson.loads(text)["choices"][0]["message"]["content"] == "Hello there"
    assert float(headers["x-chatgate-overhead-ms"]) > 0


def test_a_stream_with_adjustments_and_ignored_fields() -> None:
    provider = ScriptedProvider(steps=text_chunks("one two three"))
    status, headers, text = post(provider, {**BODY, "stream": True, "seed": 1, "frobnicate": True})
    assert status == 200 and headers["content-type"].startswith("text/event-stream")
    assert "".join(f["choices"][0]["delta"].get("content", "") for f in data_frames(text)) == "one two three"
    assert text.endswith("data: [DONE]\n\n")
    assert headers["x-chatgate-adjusted"] == "frobnicate=ignored"  # seed is the provider's to report
    assert provider.closed_streams == 1


@pytest.mark.parametrize("stream", [False, True])
def test_a_bug_of_ours_before_any_byte_is_a_500_internal_error_with_the_traceback_logged(
    stream: bool, caplog: pytest.LogCaptureFixture
) -> None:
    bug = KeyError("oops")
    provider = ScriptedProvider(completion=bug, steps=[bug])
    with caplog.at_level(logging.ERROR, logger="chatgate.http"):
        status, _, text = post(provider, {**BODY, "stream": stream})
    assert status == 500
    assert orjson.loads(text)["error"] == {
        "message": "The gateway failed unexpectedly; the error was logged.",
        "type": "api_error",
        "param": None,
        "code": "internal_error",
    }
    assert any(r.exc_info and r.exc_info[0] is KeyError for r in caplog.records)


def test_a_bug_of_ours_mid_stream_ends_with_one_internal_error_frame() -> None:
    chunks = text_chunks("one two three")
    provider = ScriptedProvider(steps=[chunks[0], chunks[1], TypeError("bug")])
    status, _, text = post(provider, {**BODY, "stream": True})
    frames = data_frames(text)
    assert status == 200 and frames[-1]["error"]["code"] == "internal_error"
    assert "[DONE]" not in text and provider.closed_streams == 1


def test_an_upstream_failure_mid_stream_keeps_its_classification() -> None:
    chunks = text_chunks("one two three")
    provider = ScriptedProvider(steps=[chunks[0], UpstreamOverloaded("busy")])
    _, _, text = post(provider, {**BODY, "stream": True})
    assert data_frames(text)[-1]["error"]["code"] == "server_overloaded"


def test_an_upstream_failure_before_any_byte_keeps_its_status() -> None:
    provider = ScriptedProvider(steps=[UpstreamOverloaded("busy", retry_after=2)])
    status, headers, text = post(provider, {**BODY, "stream": True})
    assert status == 503 and headers["retry-after"] == "2"
    assert orjson.loads(text)["error"]["code"] == "server_overloaded"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "claude-haiku-4-5"}, "messages"),
        ({**BODY, "temperature": "hot"}, "temperature"),
        ({**BODY, "n": 99}, "n"),
    ],
)
def test_bad_input_is_a_400_naming_the_param(body: dict[str, Any], param: str) -> None:
    provider = ScriptedProvider(completion=text_completion("unused"))
    status, _, text = post(provider, body)
    assert status == 400 and orjson.loads(text)["error"]["param"] == param and not provider.calls


@pytest.mark.parametrize("stream", [False, True])
def test_a_finished_request_leaves_no_reference_cycle_for_the_collector(stream: bool) -> None:
    """The disconnect watcher ends on its own once the reply is complete: a cancelled watcher would
    keep a traceback whose frames point back at it and the request's task, about 20 objects per
    request that only the garbage collector frees (a tenth of the CPU at 64 concurrent requests).
    The in-process client makes cycles of its own (its requests and responses); only the server's
    side is counted: tasks, coroutines, frames, tracebacks, and the gateway's own objects."""
    import gc
    import types

    provider = ScriptedProvider(completion=text_completion("Hello"), steps=text_chunks("one two"))
    server_side = (asyncio.Task, types.CoroutineType, types.FrameType, types.TracebackType, BaseException)

    async def scenario(requests: int) -> None:
        async with asgi_client(scripted_chat(provider)) as client:
            for _ in range(requests):
                response = await client.post("/v1/chat/completions", json={**BODY, "stream": stream})
                assert response.status_code == 200

    asyncio.run(scenario(5))  # first-use imports and caches
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)  # what a collection finds stays in gc.garbage, to be looked at
    try:
        asyncio.run(scenario(100))
        gc.collect()
        found = [o for o in gc.garbage if isinstance(o, server_side) or type(o).__module__.startswith("service.")]
        kinds = sorted({type(o).__qualname__ for o in found})
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    # One app per scenario is garbage at its end (its routes refer to each other); nothing per request.
    assert len(found) < 50, f"{len(found)} server-side objects in reference cycles after 100 requests: {kinds}"
