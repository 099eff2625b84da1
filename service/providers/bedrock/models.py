"""Bedrock's names for Claude models (no AWS library needed to work them out)."""

from __future__ import annotations

import re

DATED = re.compile(r"-\d{8}$")
PROFILED = re.compile(r"^[a-z]+\.anthropic\.")


def model_id(anthropic_id: str, profile: str = "") -> str:
    """Bedrock's id for a Claude model (`anthropic.claude-haiku-4-5-20251001-v1:0`), with the inference
    profile's prefix (`us.`, `eu.`, `global.`) when one is configured. An id that is already
    Bedrock's is kept."""
    if anthropic_id.startswith("anthropic.") or PROFILED.match(anthropic_id):
        return anthropic_id
    base = f"anthropic.{anthropic_id}-v1:0" if DATED.search(anthropic_id) else f"anthropic.{anthropic_id}-v1"
    return f"{profile}.{base}" if profile else base


def anthropic_id(bedrock_id: str) -> str:
    """The Anthropic id inside a Bedrock id (the profile prefix, `anthropic.` and the version dropped)."""
    name = PROFILED.sub("", bedrock_id).removeprefix("anthropic.")
    return re.sub(r"-v\d+(:\d+)?$", "", name)
