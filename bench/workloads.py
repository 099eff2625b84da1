"""The requests the benchmark sends, built so the direct path sends exactly what the gateway sends upstream."""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from service.codecs.openai_chat import request_from_json
from service.core import CompatReport, ModelCatalog, ProviderCall
from service.providers.anthropic import CLAUDE_MODELS
from service.providers.anthropic.request import to_anthropic

from .processes import KEY

MODEL = "claude-haiku-4-5"
GATEWAY_PATH = "/v1/chat/completions"
RESPONSES_PATH = "/v1/responses"
DIRECT_PATH = "/v1/messages"
GATEWAY_HEADERS = {"content-type": "application/json"}
NATIVE_HEADERS = {"content-type": "application/json", "anthropic-version": "2023-06-01"}
DIRECT_HEADERS = {"content-type": "application/json", "x-api-key": KEY, "anthropic-version": "2023-06-01"}
CATALOG = ModelCatalog(CLAUDE_MODELS)


@dataclass(frozen=True)
class Workload:
    text: str
    stream: bool
    max_tokens: int = 512
    history: int = 0  # earlier exchanges (a user and an assistant message each) before the last question

    def openai(self) -> dict[str, object]:
        earlier = [
            {"role": role, "content": f"{role} turn {i}: " + "a few words of conversation " * 8}
            for i in range(self.history)
            for role in ("user", "assistant")
        ]
        body: dict[str, object] = {
            "model": MODEL,
            "max_tokens": self.max_tokens,
            "messages": [*earlier, {"role": "user", "content": self.text}],
        }
        if self.stream:
            body["stream"] = True
        return body

    def gateway_body(self) -> bytes:
        return orjson.dumps(self.openai())

    def responses_body(self) -> bytes:
        """The same request in the Responses API (stateless, as Codex sends it: nothing stored)."""
        body: dict[str, object] = {
            "model": MODEL,
            "max_output_tokens": self.max_tokens,
            "input": self.text,
            "store": False,
        }
        if self.stream:
            body["stream"] = True
        return orjson.dumps(body)

    def grpc_message(self) -> bytes:
        request, _, _ = request_from_json(self.openai())
        return request.SerializeToString()

    def direct_body(self) -> bytes:
        """Byte for byte what the gateway sends upstream, so both paths hit the same simulator work."""
        request, _, _ = request_from_json(self.openai())
        call = ProviderCall(request, CATALOG.resolve(MODEL), CompatReport(strict=False))
        return orjson.dumps(to_anthropic(call, stream=self.stream).body)


def words(n: int, *, pace_ms: int = 0, stall: float = 0.0) -> Workload:
    text = f"sim:words={n}" + (f" sim:pace_ms={pace_ms}" if pace_ms else "") + (f" sim:stall={stall}" if stall else "")
    return Workload(text, stream=True)


JSON = Workload("Hello there", stream=False, max_tokens=64)
SSE20 = words(20)
