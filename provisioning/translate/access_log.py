"""Every HTTP connection manager's access log: one JSON line per request, written to a file the
platform reads (never a place a gateway's clients or backends can reach).

``path`` is chosen by where the gateway runs, never per replica (the compiled config is the
same for all of them): the local runtime gives ``access.log``, a path relative to each Envoy's
working directory, which the runtime agent makes private to the replica (its
``work-<i>/`` directory); Kubernetes pods write to their container's ``/dev/stdout``.

What is logged is chosen so that no secret can be: the path without its query string (API keys
travel there), no request header but the request id, the user agent and the consumer's name
(``x-gantry-consumer``, which only Gantry's auth filters set: a client's own is removed before
any filter runs), and no response header but the backend's service time.
"""

from provisioning.ir.policy_build import CONSUMER_HEADER

FILE_ACCESS_LOG = "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog"
LOCAL_PATH = "access.log"  # relative: each local replica's private working directory
DEFAULT_PATH = "/dev/stdout"

FIELDS = {
    # Envoy's default format, 2026-12-05T06:46:54.883Z: the same text as spelling the format
    # out, but a spelled-out format is formatted anew for every request (~1 µs, about 2 % of a
    # plain request's cost in Envoy), the default one only once a millisecond.
    "start": "%START_TIME%",
    "requestId": "%REQ(X-REQUEST-ID)%",
    "method": "%REQ(:METHOD)%",
    # The path as the client sent it (before rewrites), without the query string.
    "path": "%PATH(NQ:ORIG_OR_PATH)%",
    "status": "%RESPONSE_CODE%",
    "flags": "%RESPONSE_FLAGS%",
    "bytesReceived": "%BYTES_RECEIVED%",
    "bytesSent": "%BYTES_SENT%",
    "durationMs": "%DURATION%",
    "upstreamMs": "%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)%",
    "route": "%ROUTE_NAME%",
    "upstreamHost": "%UPSTREAM_HOST%",
    "port": "%DOWNSTREAM_LOCAL_PORT%",
    "client": "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%",
    "userAgent": "%REQ(USER-AGENT)%",
    "consumer": f"%REQ({CONSUMER_HEADER.upper()})%",
}


def access_log(path: str) -> list[dict]:
    """The ``access_log`` of an HTTP connection manager writing to ``path``."""
    return [{
        "name": "envoy.access_loggers.file",
        "typed_config": {"@type": FILE_ACCESS_LOG, "path": path,
                         "log_format": {"json_format": dict(FIELDS)}},
    }]  # fmt: skip
