"""The headers a proxy in front reads from a refusal, the same over both edges."""

from __future__ import annotations

import pytest

from service.core.admission import Admission
from service.core.errors import GatewayError, InvalidRequest, UpstreamUnavailable
from service.grpc_api.errors import rich_status
from service.http_api.errors import error_headers
from service.proxy import DRAINING, UNSERVED


def refusal(closed: bool) -> GatewayError:
    admission = Admission(1)
    admission.closed = closed
    admission.in_flight = 1
    with pytest.raises(GatewayError) as caught:
        admission.enter()
    return caught.value


CASES = [
    ("draining", refusal(closed=True), {UNSERVED: "true", DRAINING: "true"}),
    ("full", refusal(closed=False), {UNSERVED: "true"}),
    ("upstream down", UpstreamUnavailable("no route answered"), {}),
    ("bad input", InvalidRequest("bad", param="model"), {}),
]


@pytest.mark.parametrize(("error", "expected"), [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_http_headers_and_grpc_trailers_carry_the_same_proxy_signals(
    error: GatewayError, expected: dict[str, str]
) -> None:
    signals = (UNSERVED, DRAINING)
    http = {name: value for name, value in error_headers(error).items() if name in signals}
    _, _, trailers = rich_status(error)
    grpc = {name: value for name, value in trailers if name in signals}
    assert http == expected
    assert grpc == expected
