"""The benchmark, run briefly so it cannot rot. Its figures are printed by `make bench`, never asserted."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

from tests.support import ROOT


def numbers(value: object) -> list[float]:
    if isinstance(value, dict):
        return [n for v in value.values() for n in numbers(v)]
    if isinstance(value, int | float) and not isinstance(value, bool):
        return [float(value)]
    return []


def test_benchmark_smoke_run_produces_every_section(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    result = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    results = json.loads(out.read_text())
    for section in ("latency", "throughput", "stream_cost", "first_chunk", "realistic", "memory"):
        assert section in results, section
    assert all(math.isfinite(n) for n in numbers(results))
    assert results["memory"]["dropped"] == 0
    assert all(run["errors"] == 0 for run in results["throughput"].values())
    assert "| throughput, c=64" in result.stdout
