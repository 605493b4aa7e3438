"""``python -m provisioning.xds.enroll``: the init container of a Kubernetes gateway pod.

It reads the pod's projected service account token (audience ``gantry-xds``) and its name
(``POD_NAME``, from the downward API), asks the xDS server's ``Enroll`` method for the pod's
Envoy bootstrap (which carries the pod's own xDS token), and writes it atomically with mode
0600 for Envoy, which runs as the same user. It retries with backoff until ``--deadline``
seconds have passed when the server cannot be reached or asks to slow down, and exits at once
with status 2 and the server's reason when the pod is refused.

Standalone on purpose: grpc and the standard library only (no Django, no database), so it runs
in the platform's image with nothing but its arguments and the two files.
"""

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

import grpc

FULL_METHOD = "/gantry.xds.v1.Enrollment/Enroll"  # provisioning.xds.enrollment.FULL_METHOD
RETRIED = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.ABORTED,
    grpc.StatusCode.INTERNAL,
}
REFUSED_EXIT = 2
GAVE_UP_EXIT = 3


def _say(message: str, stream=None) -> None:
    """One line for the pod's log (the container's output is all it has)."""
    stream = stream or sys.stderr
    stream.write(message + "\n")
    stream.flush()


class Refused(Exception):
    """The server refused this pod (not worth retrying): its code and reason."""


def call(target: str, request: dict, timeout: float) -> dict:
    """One ``Enroll`` call; raises ``grpc.RpcError``."""
    with grpc.insecure_channel(target) as channel:
        enroll = channel.unary_unary(
            FULL_METHOD,
            request_serializer=lambda body: json.dumps(body).encode(),
            response_deserializer=json.loads,
        )
        return enroll(request, timeout=timeout, wait_for_ready=False)


def enroll(
    target: str,
    gateway: str,
    pod: str,
    token_file: Path,
    deadline: float,
    *,
    attempt_timeout: float = 10.0,
    base: float = 0.5,
    cap: float = 15.0,
    sleep=time.sleep,
    clock=time.monotonic,
    say=_say,
) -> dict:
    """The server's answer (``nodeId``, ``bootstrap``). The token file is read again for each
    attempt (the kubelet renews it). Raises ``Refused``, or ``TimeoutError`` past the
    deadline."""
    give_up = clock() + deadline
    attempt = 0
    while True:
        token = token_file.read_text().strip()
        timeout = max(0.5, min(attempt_timeout, give_up - clock()))
        try:
            return call(target, {"gateway": gateway, "pod": pod, "token": token}, timeout)
        except grpc.RpcError as error:
            code, reason = error.code(), error.details() or ""
            if code not in RETRIED:
                raise Refused(f"{code.name}: {reason}") from None
            delay = random.uniform(base, min(cap, base * 2**attempt))
            if clock() + delay >= give_up:
                raise TimeoutError(
                    f"no enrollment after {deadline:g} s (last: {code.name}: {reason})"
                ) from None
            say(f"enroll: {code.name}: {reason}; retrying in {delay:.1f} s")
            sleep(delay)
            attempt += 1


def write_atomically(path: Path, content: str) -> None:
    """Writes ``content`` to ``path`` (mode 0600) through a temporary file and a rename, so
    Envoy never reads half a bootstrap."""
    temporary = path.with_name(f".{path.name}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, 0o600)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m provisioning.xds.enroll", description=__doc__)
    parser.add_argument("--xds", required=True, help="host:port of the xDS server")
    parser.add_argument("--gateway", required=True, help="<tenant>/<gateway>")
    parser.add_argument("--token-file", required=True, type=Path)
    parser.add_argument("--output", required=True, type=Path)
    parser.add_argument("--pod", default=os.environ.get("POD_NAME", ""))
    parser.add_argument("--deadline", type=float, default=300.0, help="seconds")
    args = parser.parse_args(argv)
    if not args.pod:
        _say("enroll: no pod name (set POD_NAME from metadata.name)")
        return REFUSED_EXIT
    try:
        answer = enroll(args.xds, args.gateway, args.pod, args.token_file, args.deadline)
    except Refused as refusal:
        _say(f"enroll: the xDS server refused pod {args.pod}: {refusal}")
        return REFUSED_EXIT
    except TimeoutError as error:
        _say(f"enroll: {error}")
        return GAVE_UP_EXIT
    except OSError as error:
        _say(f"enroll: cannot read the service account token: {error}")
        return REFUSED_EXIT
    write_atomically(args.output, answer["bootstrap"])
    _say(f"enroll: enrolled as {answer['nodeId']}; bootstrap written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
