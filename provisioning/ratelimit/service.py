"""The rate limit service (Envoy's ``RateLimitService/ShouldRateLimit``): for each descriptor
of a request, count it in its window and say whether it is over its limit, with what is left
and when the window ends (Envoy turns these into ``x-ratelimit-*`` headers)."""

import logging
import time

import grpc
from envoy.service.ratelimit.v3 import rls_pb2, rls_pb2_grpc

from provisioning.ratelimit import tokens
from provisioning.ratelimit.counters import CountersUnavailable
from provisioning.ratelimit.limits import Limit, limit_of, window_start

log = logging.getLogger(__name__)
Response = rls_pb2.RateLimitResponse
UNITS = {"Second": Response.RateLimit.SECOND, "Minute": Response.RateLimit.MINUTE,
         "Hour": Response.RateLimit.HOUR, "Day": Response.RateLimit.DAY}  # fmt: skip
MAX_DESCRIPTORS = 64
MAX_HITS = 1_000


class RateLimitService(rls_pb2_grpc.RateLimitServiceServicer):
    def __init__(self, counters, clock=time.time):
        self.counters = counters
        self.clock = clock

    async def ShouldRateLimit(self, request, context):  # noqa: N802 (the protocol's name)
        metadata = dict(context.invocation_metadata() or ())
        if not tokens.valid(request.domain, metadata.get(tokens.HEADER)):
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "not this domain's token")
        if len(request.descriptors) > MAX_DESCRIPTORS:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "too many descriptors")
        hits = min(request.hits_addend or 1, MAX_HITS)
        limits = [
            limit_of([(entry.key, entry.value) for entry in descriptor.entries])
            for descriptor in request.descriptors
        ]
        counted = [limit for limit in limits if limit is not None]
        now = self.clock()
        try:
            counts = await self.counters.hit(request.domain, counted, hits, now) if counted else []
        except CountersUnavailable as error:
            log.warning("ratelimit: counters unavailable: %s", error)
            await context.abort(grpc.StatusCode.UNAVAILABLE, "rate limit counters unavailable")
        by_limit = iter(counts)
        statuses = [
            _status(limit, next(by_limit), now) if limit is not None
            else Response.DescriptorStatus(code=Response.OK)
            for limit in limits
        ]  # fmt: skip
        over = any(status.code == Response.OVER_LIMIT for status in statuses)
        return Response(overall_code=Response.OVER_LIMIT if over else Response.OK,
                        statuses=statuses)  # fmt: skip


def _status(limit: Limit, count: int, now: float) -> Response.DescriptorStatus:
    end = window_start(now, limit.window) + limit.window
    until = max(end - now, 0.0)
    return Response.DescriptorStatus(
        code=Response.OVER_LIMIT if count > limit.requests else Response.OK,
        current_limit=Response.RateLimit(requests_per_unit=limit.requests, unit=UNITS[limit.unit]),
        limit_remaining=max(limit.requests - count, 0),
        duration_until_reset={"seconds": int(until), "nanos": int((until % 1) * 1e9)},
    )


def add_to(server: grpc.aio.Server, counters) -> RateLimitService:
    service = RateLimitService(counters)
    rls_pb2_grpc.add_RateLimitServiceServicer_to_server(service, server)
    return service
