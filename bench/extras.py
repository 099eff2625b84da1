"""What the cloud extras cost a process: import time of each route's modules and idle RSS of a
gateway with each route configured, against the same gateway calling Anthropic alone.

    python -m bench.extras

Each figure is the median of ``--rounds`` fresh processes. The gateways call the simulator
(its Bedrock and Vertex AI routes), so nothing leaves the machine.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from .processes import ROOT, env, start_gateway, start_simulator

IMPORTS = {
    "none (Anthropic only)": "",
    "bedrock (botocore)": "import service.providers.bedrock.platform, service.providers.bedrock.signing",
    "vertex (google-auth)": "import service.providers.vertex.platform, service.providers.vertex.tokens",
}
# The gateway's own modules are imported first, so the figure is what the route adds.
BASE = "import service.app.gateway, service.simulator"


def import_seconds(statement: str) -> float:
    code = f"import time; {BASE}; t = time.perf_counter(); {statement}; print(time.perf_counter() - t)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env(), capture_output=True, text=True, check=True)
    return float(out.stdout.strip())


def config(kind: str, simulator: str, account: Path) -> str:
    if kind == "bedrock":
        return f'[upstreams.cloud]\nkind = "bedrock"\nbase_url = "{simulator}/anthropic"\nregion = "us-east-1"\n'
    if kind == "vertex":
        return (
            f'[upstreams.cloud]\nkind = "vertex"\nbase_url = "{simulator}"\nproject = "chatgate-sim"\n'
            f'credentials_file = "{account}"\n'
        )
    return ""


def idle_rss(kind: str, simulator: str, account: Path, work: Path) -> float:
    path = work / f"{kind}.toml"
    path.write_text(config(kind, simulator, account))
    extra = {
        "CHATGATE_CONFIG": str(path),
        "CHATGATE_ROUTES": "anthropic,cloud" if kind else "",
        "AWS_ACCESS_KEY_ID": "AKIACHATGATESIMULATOR",
        "AWS_SECRET_ACCESS_KEY": "chatgate-simulator-secret-access-key",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    gateway, http_port, _ = start_gateway(None, simulator, work / f"{kind or 'none'}.log", extra=extra)
    try:
        httpx.post(
            f"http://127.0.0.1:{http_port}/v1/chat/completions",
            json={"model": "claude-haiku-4-5", "messages": [{"role": "user", "content": "warm up"}]},
            timeout=10,
        ).raise_for_status()
        time.sleep(1.0)
        return gateway.rss_mib()
    finally:
        gateway.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        simulator_process, simulator = start_simulator(None, work / "simulator.log")
        try:
            account = work / "account.json"
            account.write_text(httpx.get(simulator + "/_sim/vertex/service-account", timeout=5).text)
            print(f"{'route':<24} {'import ms':>10} {'idle RSS MiB':>13}")
            for (label, statement), kind in zip(IMPORTS.items(), ("", "bedrock", "vertex"), strict=True):
                imports = statistics.median(import_seconds(statement or "pass") for _ in range(args.rounds))
                rss = statistics.median(idle_rss(kind, simulator, account, work) for _ in range(args.rounds))
                print(f"{label:<24} {imports * 1000:>10.1f} {rss:>13.1f}")
        finally:
            simulator_process.stop()


if __name__ == "__main__":
    main()
