"""The external load tools: wrk for HTTP, h2load for gRPC. Installed when missing and possible."""

from __future__ import annotations

import os
import shutil
import subprocess

PACKAGES = {"wrk": "wrk", "h2load": "nghttp2-client"}


def ensure_tools(*, install: bool) -> dict[str, bool]:
    """Which tools are usable; installs the missing ones with apt-get when running as root."""
    missing = [tool for tool in PACKAGES if shutil.which(tool) is None]
    if missing and install and os.geteuid() == 0 and shutil.which("apt-get"):
        packages = sorted({PACKAGES[t] for t in missing})
        print(f"installing {' '.join(packages)} with apt-get ...", flush=True)
        subprocess.run(["apt-get", "update", "-qq"], check=False, capture_output=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", *packages], check=False, capture_output=True)
    found = {tool: shutil.which(tool) is not None for tool in PACKAGES}
    for tool, ok in found.items():
        if not ok:
            print(
                f"note: `{tool}` is missing (Debian package {PACKAGES[tool]}); its suites use the Python "
                "load generator instead, which saturates earlier."
            )
    return found
