"""Bad input gets a clear 400 (or INVALID_ARGUMENT) naming the field, and the server keeps serving."""

from __future__ import annotations

import grpc
import httpx
import pytest

from chatgate.v1 import chat_pb2, chat_service_pb2, chat_service_pb2_grpc
from tests.support import MODEL, grpc_request

URL = "/v1/chat/completions"
GOOD = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}


def post_json(http: httpx.Client, body: object) -> httpx.Response:
    return http.post(URL, json=body)


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ({"messages": GOOD["messages"]}, "model", "missing_required_parameter"),
        ({"model": MODEL}, "messages", "missing_required_parameter"),
        ({"model": MODEL, "messages": []}, "messages", "missing_required_parameter"),
        ({"model": MODEL, "messages": "hi"}, "messages", "invalid_type"),
        ({"model": MODEL, "messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role", "invalid_value"),
        ({"model": MODEL, "messages": [{"content": "x"}]}, "messages[0].role", "missing_required_parameter"),
        ({**GOOD, "temperature": "hot"}, "temperature", "invalid_type"),
        ({**GOOD, "max_tokens": "many"}, "max_tokens", "invalid_type"),
        ({**GOOD, "stream": "yes"}, "stream", "invalid_type"),
        ({**GOOD, "tools": {"a": 1}}, "tools", "invalid_type"),
        ({**GOOD, "stop": 5}, "stop", "invalid_type"),
        ({**GOOD, "model": 42}, "model", "invalid_type"),
        (
            {**GOOD, "messages": [{"role": "user", "content": [{"type": "hologram"}]}]},
            "messages[0].content[0].type",
            "invalid_value",
        ),
        ({**GOOD, "temperature": 3}, "temperature", "invalid_request"),
        ([1, 2, 3], None, "invalid_json"),
    ],
    ids=[
        "no_model",
        "no_messages",
        "empty_messages",
        "messages_not_list",
        "unknown_role",
        "missing_role",
        "temperature_type",
        "max_tokens_type",
        "stream_type",
        "tools_type",
        "stop_type",
        "model_type",
        "part_type",
        "temperature_range",
        "not_an_object",
    ],
)
def test_invalid_fields_are_400_with_param(http: httpx.Client, body: object, param: str | None, code: str) -> None:
    response = post_json(http, body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert (error["param"], error["code"], error["type"]) == (param, code, "invalid_request_error")
    assert post_json(http, GOOD).status_code == 200  # and the next request is served


def test_malformed_json(http: httpx.Client) -> None:
    response = http.post(URL, content=b'{"model": ', headers={"content-type": "application/json"})
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_json"


def test_wrong_content_type(http: httpx.Client) -> None:
    response = http.post(URL, content=b"model=x", headers={"content-type": "application/x-www-form-urlencoded"})
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_content_type"


def test_body_over_the_limit_is_413_before_it_is_read(http: httpx.Client) -> None:
    response = http.post(URL, content=b"x" * (9 * 1024 * 1024), headers={"content-type": "application/json"})
    assert response.status_code == 413 and response.json()["error"]["code"] == "request_too_large"


def test_unknown_path_and_method_are_openai_errors(http: httpx.Client) -> None:
    missing = http.get("/v1/engines")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "unknown_url"
    wrong = http.get(URL)
    assert wrong.status_code == 405 and wrong.json()["error"]["type"] == "invalid_request_error"


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (chat_service_pb2.ChatCompletionRequest(messages=[chat_pb2.ChatMessage(role=chat_pb2.ROLE_USER)]), "model"),
        (chat_service_pb2.ChatCompletionRequest(model=MODEL), "messages"),
        (chat_service_pb2.ChatCompletionRequest(model=MODEL, messages=[chat_pb2.ChatMessage()]), "messages[0].role"),
        (grpc_request("x", temperature=9.0), "temperature"),
        (
            chat_service_pb2.ChatCompletionRequest(
                model=MODEL,
                messages=[
                    chat_pb2.ChatMessage(
                        role=chat_pb2.ROLE_USER,
                        content=[chat_pb2.ContentPart(image_url=chat_pb2.ImageUrl(url="gopher://x"))],
                    )
                ],
            ),
            "messages[0].content[0].image_url",
        ),
    ],
    ids=["model", "messages", "role", "temperature", "image_url"],
)
@pytest.mark.parametrize("rpc", ["CreateChatCompletion", "StreamChatCompletion"])
def test_grpc_invalid_argument_names_the_field(
    stub: chat_service_pb2_grpc.ChatCompletionServiceStub,
    request_: chat_service_pb2.ChatCompletionRequest,
    field: str,
    rpc: str,
) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        result = getattr(stub, rpc)(request_, timeout=10)
        list(result) if rpc == "StreamChatCompletion" else None
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]
    assert f"(field: {field})" in caught.value.details()  # type: ignore[attr-defined]
    assert stub.CreateChatCompletion(grpc_request("still serving"), timeout=10).choices
