"""Vertex AI's names for Claude models and its endpoints (no Google library needed to work them out)."""

from __future__ import annotations


def model_id(anthropic_id: str) -> str:
    """Vertex's id for a Claude model: the date after an `@` (`claude-haiku-4-5@20251001`)."""
    if "@" in anthropic_id:
        return anthropic_id
    head, _, tail = anthropic_id.rpartition("-")
    return f"{head}@{tail}" if head and len(tail) == 8 and tail.isdigit() else anthropic_id


def anthropic_id(vertex_id: str) -> str:
    return vertex_id.replace("@", "-")


def base_url(region: str) -> str:
    return "https://aiplatform.googleapis.com" if region == "global" else f"https://{region}-aiplatform.googleapis.com"
