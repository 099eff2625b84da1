"""Clients outside Python: the `openai` npm package over HTTP and @grpc/grpc-js loading proto/ over gRPC."""

from __future__ import annotations

import json
import shutil
import subprocess
from typing import Any

import pytest

from tests.support import MODEL, ROOT, Gateway

NODE_DIR = ROOT / "tests" / "node"


def run_node(script: str, *args: str) -> dict[str, Any]:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed; the Node client tests need Node.js 20 or newer")
    if not (NODE_DIR / "node_modules").is_dir():
        pytest.fail("tests/node/node_modules is missing: run `make test` (it runs `npm ci --prefix tests/node`)")
    result = subprocess.run(
        [node, str(NODE_DIR / script), *args], capture_output=True, text=True, timeout=60, check=False, cwd=NODE_DIR
    )
    assert result.returncode == 0, result.stderr
    assert not result.stderr.strip(), result.stderr
    return dict(json.loads(result.stdout))


def test_openai_npm_package_streams_parallel_tools_and_text(gateway: Gateway) -> None:
    out = run_node("openai_client.mjs", gateway.http_url + "/v1", MODEL)
    assert [(c["name"], c["arguments"]) for c in out["tool_calls"]] == [
        ("get_weather", {"city": "sample"}),
        ("get_time", {}),
    ]
    assert len({c["id"] for c in out["tool_calls"]}) == 2
    assert out["tool_finish"] == "tool_calls"
    assert out["text"] == out["whole_text"] == "[chatgate simulator] You said: Hello from Node."
    assert out["finish"] == "stop"
    assert out["usage"]["total_tokens"] == out["usage"]["prompt_tokens"] + out["usage"]["completion_tokens"]


def test_grpc_js_unary_and_streaming_from_the_proto_files(gateway: Gateway) -> None:
    out = run_node("grpc_client.mjs", gateway.grpc_target, str(ROOT / "proto"), MODEL)
    assert out["unary_text"] == out["streamed"] == "[chatgate simulator] You said: Hello from grpc-js."
    assert out["unary_finish"] == out["finish"] == "FINISH_REASON_STOP"
    assert out["first_role"] == "ROLE_ASSISTANT"
    assert out["last_usage"]["completion_tokens"] > 0
    assert "claude-3.5-haiku" in out["models"]


def test_openai_npm_package_uses_the_responses_api(gateway: Gateway) -> None:
    out = run_node("openai_responses.mjs", gateway.http_url + "/v1", MODEL)
    assert out["sequence"] == list(range(len(out["sequence"])))
    assert out["first_status"] == "completed"
    assert (out["call"]["name"], out["call"]["arguments"]) == ("get_weather", {"city": "sample"})
    assert f"{out['call']['call_id']} -> snow" in out["second_text"]
    assert out["second_previous"] == out["first_id"] and out["retrieved_text"] == out["second_text"]
    assert out["text"] == "[chatgate simulator] You said: Hello from Node."
    assert out["input_item_types"] == ["function_call_output"]
    assert out["custom"] == {"type": "custom_tool_call", "name": "apply_patch", "input": "sample"}
    assert out["custom_deltas"] == "sample"
    assert out["image_status"] == "completed" and isinstance(out["structured"]["city"], str)
    assert out["reasoning"] == [True] and "windy" in out["after_thought"]
    assert out["deleted_status"] == 404 and out["error_name"] == "RateLimitError"
    assert out["failing_tail"] == ["error", "response.failed"]
