"""Whether the process should receive traffic; read by readiness probes on both edges."""

from __future__ import annotations


class Lifecycle:
    """Ready once both listeners are up; not ready again once draining begins."""

    __slots__ = ("draining", "started", "terminating")

    def __init__(self) -> None:
        self.started = False
        self.draining = False
        # The shutdown grace ran out: requests still running end with `shutting_down`.
        self.terminating = False

    @property
    def ready(self) -> bool:
        return self.started and not self.draining
