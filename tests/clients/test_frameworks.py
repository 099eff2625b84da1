"""The frameworks people build agents with, pointed at the gateway with a new base URL and nothing
else: LangChain (ChatOpenAI with tools and structured output, ChatAnthropic streamed), pydantic-ai
(a typed output) and the Vercel AI SDK (`streamText` with a tool, over the OpenAI provider's two
APIs and the Anthropic provider). Versions: the dev lock and tests/node/package.json."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import BaseModel

from tests.support import ROOT, Gateway

MODEL = "claude-sonnet-5-5"
NODE_DIR = ROOT / "tests" / "node"


class Forecast(BaseModel):
    city: str
    temperature_c: int
    sunny: bool


@pytest.fixture(autouse=True)
def no_tracing() -> Iterator[None]:
    """LangChain's tracing to LangSmith stays off whatever the developer's shell says."""
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith(("LANGSMITH_", "LANGCHAIN_"))}
    os.environ["LANGSMITH_TRACING"] = "false"
    yield
    os.environ.pop("LANGSMITH_TRACING")
    os.environ.update(saved)


# --- LangChain ----------------------------------------------------------------------------------


def test_langchain_chat_openai_calls_tools_and_returns_structured_output(served: Gateway) -> None:
    from langchain_core.tools import tool
    from langchain_openai import ChatOpenAI

    @tool
    def weather(city: str) -> str:
        """The weather in a city."""
        return f"sunny in {city}"

    llm = ChatOpenAI(model=MODEL, base_url=served.http_url + "/v1", api_key="unused", max_retries=0)  # type: ignore[arg-type]
    message = llm.bind_tools([weather]).invoke("sim:tool What is the weather in Paris?")
    assert [(c["name"], c["args"]) for c in message.tool_calls] == [("weather", {"city": "sample"})]
    forecast = llm.with_structured_output(Forecast).invoke("The forecast for Paris, please.")
    assert forecast == Forecast(city="sample", temperature_c=1, sunny=True)  # the simulator's sampled values


def test_langchain_chat_anthropic_streams(served: Gateway) -> None:
    from langchain_anthropic import ChatAnthropic

    claude = ChatAnthropic(model=MODEL, base_url=served.http_url, api_key="unused", max_retries=0)  # type: ignore[arg-type,call-arg]
    chunks = [chunk.text for chunk in claude.stream("sim:notool sim:words=12 Tell me a story")]
    assert len([c for c in chunks if c]) > 1  # it arrived in pieces
    assert "".join(chunks) == "[chatgate simulator] You said: Tell me a story. word0 word1 word2 word3"


# --- pydantic-ai --------------------------------------------------------------------------------


def test_pydantic_ai_returns_a_typed_output(served: Gateway) -> None:
    from openai import AsyncOpenAI
    from pydantic_ai import Agent
    from pydantic_ai.models.openai import OpenAIChatModel
    from pydantic_ai.providers.openai import OpenAIProvider

    async def ask() -> Any:
        # The client is the test's, so it is closed with the loop that used it.
        async with AsyncOpenAI(base_url=served.http_url + "/v1", api_key="unused", max_retries=0) as client:
            model = OpenAIChatModel(MODEL, provider=OpenAIProvider(openai_client=client))
            return await Agent(model, output_type=Forecast).run("The forecast for Paris, please.")

    result = asyncio.run(ask())
    assert result.output == Forecast(city="sample", temperature_c=1, sunny=True)
    assert result.usage.output_tokens > 0


# --- the Vercel AI SDK --------------------------------------------------------------------------


def ai_sdk(served: Gateway, provider: str) -> dict[str, Any]:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed; the client tests need Node.js 20 or newer")
    done = subprocess.run(
        [node, str(NODE_DIR / "ai_sdk.mjs"), served.http_url, provider, MODEL],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=NODE_DIR,
    )
    assert done.returncode == 0, done.stderr
    out: dict[str, Any] = json.loads(done.stdout)
    return out


@pytest.mark.parametrize("provider", ["responses", "chat", "anthropic"])
def test_vercel_ai_sdk_stream_text_runs_a_tool_loop(served: Gateway, provider: str) -> None:
    out = ai_sdk(served, provider)
    assert out["cities"] == ["sample"]  # the tool ran with the arguments the model streamed
    assert out["steps"] == 2 and out["finish"] == "stop"
    # The second step sent the tool's result back; the answer quotes it.
    assert out["text"].startswith("Tool results received:") and '"forecast":"sunny"' in out["text"]
