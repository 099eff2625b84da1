"""The HTTP floor: OpenAI Chat Completions in, Anthropic Messages out, on bare ASGI (JSON and SSE).

python -m bench.floors.http_floor --port P --upstream URL --key KEY
"""

from __future__ import annotations

import argparse
from typing import Any

import orjson
import uvicorn

from .common import FINISH, Upstream, anthropic_body, events, now, text_of

JSON_HEADERS = [(b"content-type", b"application/json")]
SSE_HEADERS = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]


def make_app(upstream: Upstream) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (message := await receive())["type"] != "lifespan.shutdown":
                if message["type"] == "lifespan.startup":
                    await upstream.start()
                    await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["method"] == "GET":  # readiness
            await send({"type": "http.response.start", "status": 200, "headers": JSON_HEADERS})
            await send({"type": "http.response.body", "body": b"{}"})
            return
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        request = orjson.loads(body)
        messages = [(m["role"], m["content"]) for m in request["messages"]]
        stream = bool(request.get("stream"))
        upstream_body = anthropic_body(request["model"], request.get("max_tokens") or 0, messages, stream)
        async with upstream.post(upstream_body) as response:
            if not stream:
                reply = orjson.loads(await response.read())
                usage = reply["usage"]
                out = {
                    "id": "chatcmpl-" + reply["id"],
                    "object": "chat.completion",
                    "created": now(),
                    "model": reply["model"],
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": text_of(reply)},
                            "finish_reason": FINISH.get(reply["stop_reason"], "stop"),
                        }
                    ],
                    "usage": {
                        "prompt_tokens": usage["input_tokens"],
                        "completion_tokens": usage["output_tokens"],
                        "total_tokens": usage["input_tokens"] + usage["output_tokens"],
                    },
                }
                await send({"type": "http.response.start", "status": 200, "headers": JSON_HEADERS})
                await send({"type": "http.response.body", "body": orjson.dumps(out)})
                return
            await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
            head: dict[str, Any] = {"object": "chat.completion.chunk", "created": now()}
            async for batch in events(response):
                frames = []
                for event in batch:
                    kind = event["type"]
                    delta: dict[str, Any] | None = None
                    finish = None
                    if kind == "content_block_delta" and event["delta"]["type"] == "text_delta":
                        delta = {"content": event["delta"]["text"]}
                    elif kind == "message_start":
                        head["id"], head["model"] = "chatcmpl-" + event["message"]["id"], event["message"]["model"]
                        delta = {"role": "assistant"}
                    elif kind == "message_delta":
                        delta, finish = {}, FINISH.get(event["delta"].get("stop_reason"), "stop")
                    elif kind == "message_stop":
                        frames.append(b"data: [DONE]\n\n")
                    if delta is not None:
                        chunk = {**head, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
                        frames.append(b"data: " + orjson.dumps(chunk) + b"\n\n")
                if frames:
                    await send({"type": "http.response.body", "body": b"".join(frames), "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})

    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--key", required=True)
    options = parser.parse_args()
    app = make_app(Upstream(options.upstream, options.key))
    uvicorn.run(app, host="127.0.0.1", port=options.port, loop="uvloop", http="httptools", lifespan="on",
                log_level="warning", access_log=False)  # fmt: skip


if __name__ == "__main__":
    main()
