"""The whole compile stage: desired state → IR → Envoy resources."""

import gc
from contextlib import contextmanager
from dataclasses import replace

from django.conf import settings

from provisioning.compile_memo import memos
from provisioning.ir.build import DesiredState, gateway_ir
from provisioning.ir.types import RateLimitService
from provisioning.ratelimit.tokens import token_for
from provisioning.translate import Resources, translate
from provisioning.translate.access_log import DEFAULT_PATH


@contextmanager
def gc_paused():
    """Compiling allocates hundreds of thousands of small objects that all stay alive until it
    ends; the cyclic collector would walk them again and again for nothing (a third of the
    time at 10,000 routes). Reference counting still frees garbage meanwhile."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def rate_limit_service(domain: str, host: str | None = None) -> RateLimitService:
    """The platform's rate limit service as ``domain``'s gateways reach it: at ``host``, else
    the Kubernetes Service (``GANTRY_RATELIMIT_KUBERNETES_HOST``)."""
    return RateLimitService(
        host or settings.GANTRY_RATELIMIT_KUBERNETES_HOST, settings.GANTRY_RATELIMIT_PORT,
        token_for(domain), settings.GANTRY_RATELIMIT_TIMEOUT_MS,
    )  # fmt: skip


def compile_gateway(
    state: DesiredState,
    *,
    address: str = "0.0.0.0",  # noqa: S104 (gateways listen on every interface by default)
    port_map: dict[int, int] | None = None,
    access_log_path: str = DEFAULT_PATH,
    rate_limit_host: str | None = None,
    key=None,
) -> Resources:
    """``rate_limit_host``: where the gateway reaches the rate limit service (the local
    runtime's address; default: the Kubernetes Service). ``key`` (a gateway's): rebuild only
    what changed since this process last compiled it (``provisioning.compile_memo``)."""
    memo = None if key is None else memos.get(key)
    with gc_paused():
        service = rate_limit_service(f"{state.tenant}/{state.gateway}", rate_limit_host)
        context = (address, port_map, access_log_path, service)
        ir = gateway_ir(state, memo, context)
        ir = replace(ir, rate_limit_service=service)
        resources = translate(ir, address=address, port_map=port_map,
                              access_log_path=access_log_path, memo=memo)  # fmt: skip
    if memo is not None:
        memo.finish()
    return resources
