"""The installed distribution's version, for `--version`, the server's start-up line and trace resources."""

from __future__ import annotations


def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as package_version

    try:
        return package_version("chatgate")
    except PackageNotFoundError:  # pragma: no cover - a source tree without an install
        return "unknown"
