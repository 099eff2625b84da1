"""The agent command lines people point at a gateway: Claude Code (print mode, over the native
Messages API) and the Codex CLI (`codex exec`, a custom provider over the Responses API).

Both run as shipped (the npm packages pinned in tests/node/package.json), in a temporary home, with
telemetry, error reporting and update checks off. The simulator's directives in the prompt choose
the answer: `sim:notool` a text reply, `sim:call=TOOL` a call of that tool, then a text reply that
quotes the tool's result, which proves the round trip went through the gateway both ways.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.support import ROOT, Gateway

BIN = ROOT / "tests" / "node" / "node_modules" / ".bin"
QUIET = {
    # Claude Code: no telemetry, error reports, auto-update or other non-essential traffic.
    "DISABLE_TELEMETRY": "1",
    "DISABLE_ERROR_REPORTING": "1",
    "DISABLE_AUTOUPDATER": "1",
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
}


def client(name: str) -> Path:
    path = BIN / name
    if shutil.which("node") is None:
        pytest.fail("node is not installed; the client tests need Node.js 20 or newer")
    if not path.exists():
        pytest.fail(f"{path} is missing: run `make test` (it runs `npm ci --prefix tests/node`)")
    return path


def run(args: list[str], cwd: Path, env: dict[str, str]) -> str:
    base = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "TERM", "TMPDIR")}
    done = subprocess.run(
        args, cwd=cwd, env={**base, **QUIET, **env}, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    return done.stdout


# --- Claude Code --------------------------------------------------------------------------------


def claude(served: Gateway, workdir: Path, prompt: str) -> dict[str, Any]:
    home = workdir.parent / "home"
    home.mkdir(exist_ok=True)
    env = {"HOME": str(home), "ANTHROPIC_BASE_URL": served.http_url, "ANTHROPIC_API_KEY": "unused"}
    out = run([str(client("claude")), "-p", prompt, "--output-format", "json"], workdir, env)
    result: dict[str, Any] = json.loads(out)
    return result


def test_claude_code_answers_in_print_mode(served: Gateway, tmp_path: Path) -> None:
    workdir = tmp_path / "work"
    workdir.mkdir()
    result = claude(served, workdir, "sim:notool Say hello")
    assert result["is_error"] is False and result["subtype"] == "success"
    # The simulator's echo of the turn (it begins with Claude Code's own reminders).
    assert result["result"].startswith("[chatgate simulator] You said: <system-reminder>")
    assert result["modelUsage"]["claude-opus-5-5"]["thinkingTokens"] > 0  # its default model always thinks
    assert result["num_turns"] == 1 and result["usage"]["output_tokens"] > 0


def test_claude_code_runs_a_tool_round_trip(served: Gateway, tmp_path: Path) -> None:
    workdir = tmp_path / "work"
    workdir.mkdir()
    (workdir / "sample").write_text("chatgate tool round trip\n")  # what the Read tool is sent to read
    result = claude(served, workdir, "sim:call=Read read the file")
    assert result["is_error"] is False and result["num_turns"] == 2
    # The second request carried the Read tool's output back through the gateway; the answer quotes it.
    assert result["result"].startswith("Tool results received:")
    assert "chatgate tool round trip" in result["result"]


def test_claude_code_runs_a_tool_round_trip_through_a_cloud_route(served_by_cloud: Gateway, tmp_path: Path) -> None:
    """Claude Code through the gateway to Claude in Bedrock (InvokeModel) or on Vertex AI: its native
    requests rewritten only as the platform needs (model in the URL, version in the body, the betas
    the platform lacks dropped), its streams read back as Anthropic's SSE."""
    workdir = tmp_path / "work"
    workdir.mkdir()
    (workdir / "sample").write_text("chatgate over a cloud route\n")
    result = claude(served_by_cloud, workdir, "sim:call=Read read the file")
    assert result["is_error"] is False and result["num_turns"] == 2
    assert result["result"].startswith("Tool results received:")
    assert "chatgate over a cloud route" in result["result"]
    routes = {json.loads(line).get("upstream") for line in served_by_cloud.log().splitlines() if '"upstream"' in line}
    assert routes in ({"invoke"}, {"vertex"})  # every turn went over the one cloud route


# --- Codex --------------------------------------------------------------------------------------

CODEX_CONFIG = """\
model = "claude-sonnet-5-5"
model_provider = "chatgate"
check_for_update_on_startup = false
{extra}

[analytics]
enabled = false

[feedback]
enabled = false

[model_providers.chatgate]
name = "chatgate"
base_url = "{base}/v1"
wire_api = "responses"
env_key = "CHATGATE_KEY"
{provider}
"""


def codex(served: Gateway, workdir: Path, prompt: str, *, extra: str = "", provider: str = "") -> list[dict[str, Any]]:
    home = workdir.parent / "codex-home"
    home.mkdir(exist_ok=True)
    (home / "config.toml").write_text(CODEX_CONFIG.format(base=served.http_url, extra=extra, provider=provider))
    env = {"HOME": str(workdir.parent), "CODEX_HOME": str(home), "CHATGATE_KEY": "unused"}
    out = run([str(client("codex")), "exec", "--skip-git-repo-check", "--json", prompt], workdir, env)
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def completed(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e["item"] for e in events if e["type"] == "item.completed" and e["item"]["type"] == kind]


def test_codex_exec_answers_over_the_responses_api(served: Gateway, tmp_path: Path) -> None:
    workdir = tmp_path / "work"
    workdir.mkdir()
    events = codex(served, workdir, "sim:notool say hello")
    (message,) = completed(events, "agent_message")
    assert message["text"].startswith("[chatgate simulator] You said:")
    (turn,) = [e for e in events if e["type"] == "turn.completed"]
    assert turn["usage"]["input_tokens"] > 0 and turn["usage"]["output_tokens"] > 0


def test_codex_exec_runs_a_tool_call(served: Gateway, tmp_path: Path) -> None:
    workdir = tmp_path / "work"
    workdir.mkdir()
    events = codex(served, workdir, "sim:call=exec_command run it")
    (command,) = completed(events, "command_execution")
    assert command["command"].endswith("sample")  # the simulator's sampled `cmd`, run by Codex
    assert "sample" in command["aggregated_output"]  # the shell's answer (command not found)
    (message,) = completed(events, "agent_message")
    # The command's output went back upstream as the call's output; the answer quotes it.
    assert message["text"].startswith("Tool results received:") and "exited with code" in message["text"]
    assert [e for e in events if e["type"] == "turn.completed"]


def socket_responses(served: Gateway) -> int:
    """Responses served over the WebSocket so far (their access lines have status 101)."""
    return sum(
        1 for line in served.log().splitlines() if '"route":"/v1/responses"' in line and '"status":"101"' in line
    )


def test_codex_exec_over_a_websocket_with_a_forced_compaction(served: Gateway, tmp_path: Path) -> None:
    """`supports_websockets = true`: Codex holds one socket for the turn (a `generate: false` warm-up,
    then its requests). An auto-compaction limit just above its own prompt makes it compact mid-turn,
    after the tool's output: it asks the model for a summary on the socket and continues the turn from
    that summary."""
    workdir = tmp_path / "work"
    workdir.mkdir()
    before = socket_responses(served)
    events = codex(
        served,
        workdir,
        "sim:call=exec_command run it",
        extra="model_auto_compact_token_limit = 7000",
        provider="supports_websockets = true",
    )
    (command,) = completed(events, "command_execution")
    assert command["command"].endswith("sample")
    (message,) = completed(events, "agent_message")
    assert message["text"]
    assert [e for e in events if e["type"] == "turn.completed"]
    # warm-up, the turn, the compaction, the turn continued from the summary: all on the socket.
    assert socket_responses(served) - before >= 4
