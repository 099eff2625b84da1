"""What the gateway tells a proxy in front of it (Envoy in ``deploy/``), shared by both edges.

The HTTP edge sends these as response headers, the gRPC edge as trailing metadata; the
core only marks the error (``GatewayError.unserved``), it never names a proxy's header.
"""

from __future__ import annotations

from service.core import errors

# On an error refused before any upstream call (a draining or full replica): safe to retry elsewhere.
# deploy/envoy/envoy.yaml retries on it (`retriable-headers`).
UNSERVED = "x-chatgate-unserved"
# On a refusal because this replica drains: Envoy takes the host out of its pool at once (with active
# health checking), so the retry of this request, and what follows, go to the others.
DRAINING = "x-envoy-immediate-health-check-fail"


def unserved_headers(error: errors.GatewayError) -> tuple[tuple[str, str], ...]:
    if not error.unserved:
        return ()
    if isinstance(error, errors.ShuttingDown):
        return ((UNSERVED, "true"), (DRAINING, "true"))
    return ((UNSERVED, "true"),)
