"""Upstream providers; each implements ``service.core.ChatProvider``."""
