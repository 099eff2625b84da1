"""An emulator of Anthropic's Messages API for local runs, tests and benchmarks."""

from .app import Simulator

__all__ = ["Simulator"]
