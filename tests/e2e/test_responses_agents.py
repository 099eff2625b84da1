"""The OpenAI Agents SDK (`openai-agents`) on Claude: an agent with two function tools, run to the end
through chatgate's `/v1/responses`, streamed and not, with the simulator as the model."""

from __future__ import annotations

import asyncio

import openai
import pytest
from agents import Agent, OpenAIResponsesModel, Runner, function_tool, set_tracing_disabled

from tests.support import MODEL, Gateway

set_tracing_disabled(True)  # the SDK would otherwise send traces to OpenAI


@function_tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"weather-in-{city}: sunny"


@function_tool
def get_time(city: str) -> str:
    """The local time in a city."""
    return f"time-in-{city}: noon"


def agent_for(client: openai.AsyncOpenAI) -> Agent:
    return Agent(
        name="Assistant",
        instructions="Answer with the tools' results.",
        model=OpenAIResponsesModel(model=MODEL, openai_client=client),
        tools=[get_weather, get_time],
    )


@pytest.mark.parametrize("streamed", [False, True])
def test_an_agent_with_two_tools_runs_to_completion(gateway: Gateway, streamed: bool) -> None:
    async def run() -> tuple[str, list[str]]:
        async with openai.AsyncOpenAI(base_url=gateway.http_url + "/v1", api_key="t", max_retries=0) as client:
            agent = agent_for(client)
            prompt = "Weather and time in Rome, please. sim:parallel"
            if streamed:
                running = Runner.run_streamed(agent, prompt)
                async for _ in running.stream_events():
                    pass
                final, items = running.final_output, running.new_items
            else:
                result = await Runner.run(agent, prompt)
                final, items = result.final_output, result.new_items
        called = [item.raw_item.name for item in items if item.type == "tool_call_item"]  # type: ignore[union-attr]
        return str(final), called

    final, called = asyncio.run(run())
    assert sorted(called) == ["get_time", "get_weather"]
    # The simulator's last answer quotes each tool result it was sent back.
    assert "weather-in-sample: sunny" in final and "time-in-sample: noon" in final
