"""The rate limit service on its own, through its real gRPC port: only a gateway's own token
counts against its domain, what a descriptor asks for, fixed windows, and both stores."""

import uuid

import grpc
import pytest
from envoy.service.ratelimit.v3 import rls_pb2

from provisioning.ratelimit.limits import limit_of, parse_limit, window_start
from provisioning.ratelimit.tokens import token_for
from tests.ratelimit.service import ask, start_service

pytestmark = pytest.mark.slow
OK, OVER = rls_pb2.RateLimitResponse.OK, rls_pb2.RateLimitResponse.OVER_LIMIT


@pytest.fixture(scope="module", params=["redis", "memory"])
def service(request, tmp_path_factory):
    redis_url = None if request.param == "redis" else ""
    process = start_service(tmp_path_factory.mktemp(request.param), redis_url=redis_url)
    yield process
    assert process.stop() == 0, process.output()


def domain() -> str:
    return f"acme/gw-{uuid.uuid4().hex[:8]}"


def rule(limit="2/Hour", scope="route-a", *more):
    return [("scope", scope), ("rule", "0"), ("limit", limit), *more]


def test_a_domain_counts_only_with_its_own_token(service):
    mine, theirs = domain(), domain()
    real = token_for(mine)
    altered = real[:-1] + ("1" if real.endswith("0") else "0")  # never the token itself
    for token in (None, "", token_for(theirs), altered):
        with pytest.raises(grpc.RpcError) as refused:
            ask(service.port, mine, token, rule())
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    codes = [ask(service.port, mine, token_for(mine), rule()).overall_code for _ in range(3)]
    assert codes == [OK, OK, OVER]  # the refused calls counted nothing
    assert ask(service.port, theirs, token_for(theirs), rule()).overall_code == OK


def test_each_descriptor_has_its_own_count_and_status(service):
    name = domain()
    token = token_for(name)
    answers = [ask(service.port, name, token, rule("1/Hour", "a"), rule("3/Hour", "b"))
               for _ in range(2)]  # fmt: skip
    assert [s.code for s in answers[0].statuses] == [OK, OK]
    assert [s.code for s in answers[1].statuses] == [OVER, OK]
    assert answers[1].overall_code == OVER
    status = answers[1].statuses[1]
    assert status.current_limit.requests_per_unit == 3
    assert status.current_limit.unit == rls_pb2.RateLimitResponse.RateLimit.HOUR
    assert status.limit_remaining == 1
    assert 0 < status.duration_until_reset.seconds <= 3600


def test_a_descriptor_without_a_limit_or_outside_its_cidr_is_never_counted(service):
    name = domain()
    token = token_for(name)
    unnamed = [("scope", "x"), ("rule", "0")]
    outside = rule("1/Hour", "c", ("masked_remote_address", "10.1.0.0/16"),
                   ("expect", "10.2.0.0/16"))  # fmt: skip
    for _ in range(3):
        answer = ask(service.port, name, token, unnamed, outside)
        assert answer.overall_code == OK
        assert not answer.statuses[1].HasField("current_limit")


def test_parsing_is_strict():
    assert parse_limit("10/Minute") == (10, "Minute")
    for bad in ("0/Minute", "-1/Minute", "10/Fortnight", "ten/Hour", "10", f"{2**32}/Second"):
        assert parse_limit(bad) is None
    assert limit_of([("limit", "1/Hour"), ("limit", "2/Hour")]) is None  # ambiguous
    assert limit_of([("expect", "x")]) is None
    assert limit_of([("a", "v"), ("expect", "v"), ("limit", "1/Day")]).window == 86_400


def test_windows_are_aligned_so_every_process_agrees():
    assert window_start(3_599.9, 3_600) == 0
    assert window_start(3_600.0, 3_600) == 3_600
    assert window_start(119.0, 60) == 60
