"""No loss under change: route changes under steady load, Gantry (Envoy over xDS) beside nginx.

    .venv/bin/python scripts/with_services.py -- .venv/bin/python bench/no_loss.py \
        [--changes 100] [--rate 300] [--interval 0.15] [--replicas 1]

For each proxy in turn: open a streaming response and a WebSocket, start wrk (paced to about
``--rate`` requests/s over 10 keep-alive connections), then make ``--changes`` changes, each
followed by waiting until a fresh connection sees it and ``--interval`` seconds — for Gantry a
route change through the services plus reconcile (a new revision pushed over xDS), for nginx
``nginx -s reload`` of a config with the new header. Prints both side by side; exits 1 if
Gantry failed a request or lost a long-lived connection.
"""

import argparse
import contextlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.noloss.gantry import Gantry  # noqa: E402
from bench.noloss.longlived import LongLived  # noqa: E402
from bench.noloss.nginx import Nginx  # noqa: E402

CONNECTIONS = 10
LUA = ROOT / "bench" / "noloss" / "load.wrk.lua"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_upstream(directory: Path) -> tuple[subprocess.Popen, int]:
    log = open(directory / "upstream.log", "wb")  # noqa: SIM115 (the child keeps it)
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "noloss" / "upstream.py")],
        stdout=subprocess.PIPE, stderr=log, start_new_session=True,
    )  # fmt: skip
    log.close()
    return process, int(process.stdout.readline())


def stop(process: subprocess.Popen | None) -> None:
    """SIGTERM the process group, SIGKILL after 10 s."""
    if process is None or process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(5)


class Load:
    """wrk, paced by ``load.wrk.lua``; stopped with SIGINT, after which it prints its figures."""

    def __init__(self, url: str, rate: int, limit: float):
        delay_ms = max(1, round(CONNECTIONS * 1000 / rate))
        command = ["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{int(limit)}s", "--timeout", "2s",
                   "-s", str(LUA), url]  # fmt: skip
        env = {**os.environ, "NOLOSS_DELAY_MS": str(delay_ms)}
        self.process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True,
                                        start_new_session=True)  # fmt: skip

    def stop(self) -> dict:
        self.process.send_signal(signal.SIGINT)
        output, _ = self.process.communicate(timeout=30)
        for line in output.splitlines():
            if line.startswith("NOLOSS "):
                return json.loads(line[len("NOLOSS ") :])
        raise RuntimeError(f"wrk printed no figures:\n{output}")


def served(base: str, variant: str, timeout: float = 15) -> float:
    """Seconds until a fresh connection gets the variant's header."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        with contextlib.suppress(OSError), urllib.request.urlopen(base, timeout=2) as answer:
            if answer.headers.get("x-variant") == variant:
                return time.monotonic() - started
        time.sleep(0.005)
    raise RuntimeError(f"{base} never served variant {variant}")


def measure(name: str, base: str, change, args, cleanup: contextlib.ExitStack, probe=None) -> dict:
    """Long-lived clients and load around ``args.changes`` calls of ``change(variant)``."""
    clients = LongLived(base).start()
    cleanup.callback(clients.stop)
    limit = 60 + args.changes * (args.interval + 5)
    load = Load(base, args.rate, limit)
    cleanup.callback(stop, load.process)
    time.sleep(2)
    began = time.monotonic()
    applied = []
    for n in range(1, args.changes + 1):
        variant = f"{name}-{n}"
        started = time.monotonic()
        change(variant)
        served(base, variant)
        applied.append(time.monotonic() - started)
        time.sleep(args.interval)
    ended = time.monotonic()
    time.sleep(1)
    figures = load.stop()
    served(base, f"{name}-{args.changes}", timeout=2)  # the last change is what is served
    extra = probe() if probe else None  # before the long-lived clients close
    clients.stop()
    return {"name": name, "probe": extra, "load": figures, "window": ended - began,
            "applied_p50": statistics.median(applied), "applied_max": max(applied),
            "stream": summary(clients.stream, began, ended),
            "websocket": summary(clients.websocket, began, ended)}  # fmt: skip


def summary(watch, began: float, ended: float) -> dict:
    return {"survived": watch.open_at_end and not watch.error, "error": watch.error,
            "count": watch.count(began, ended),
            "gap": watch.longest_gap(began, ended)}  # fmt: skip


def failed(load: dict) -> int:
    return sum(load[k] for k in ("non2xx", "connect", "read", "write", "timeout"))


def table(results: list[dict], args) -> str:
    def row(label, cell):
        return f"| {label} | " + " | ".join(cell(r) for r in results) + " |"

    def longlived(kind, unit):
        def cell(r):
            s = r[kind]
            verdict = "yes" if s["survived"] else f"NO ({s['error']})"
            return f"{verdict}: {s['count']} {unit}, longest gap {s['gap'] * 1000:.0f} ms"

        return cell

    lines = [
        f"{args.changes} changes, wrk -t1 -c{CONNECTIONS} paced to ~{args.rate} req/s",
        "",
        "| | " + " | ".join(r["name"] for r in results) + " |",
        "|---|" + "---|" * len(results),
        row("change window", lambda r: f"{r['window']:.1f} s"),
        row("change → served (p50 / max)",
            lambda r: f"{r['applied_p50'] * 1000:.0f} / {r['applied_max'] * 1000:.0f} ms"),
        row("requests sent", lambda r: str(r["load"]["requests"])),
        row("failed", lambda r: str(failed(r["load"]))),
        row("  of which non-2xx / connect / read / write / timeout",
            lambda r: "{non2xx} / {connect} / {read} / {write} / {timeout}".format(**r["load"])),
        row("error rate", lambda r: f"{failed(r['load']) / max(1, r['load']['requests']):.3%}"),
        row("latency p50 / p99",
            lambda r: f"{r['load']['p50_us'] / 1000:.2f} / {r['load']['p99_us'] / 1000:.2f} ms"),
        row("stream survived", longlived("stream", "chunks")),
        row("WebSocket survived", longlived("websocket", "echos")),
    ]  # fmt: skip
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=100)
    parser.add_argument("--rate", type=int, default=300, help="requests/s (approximate)")
    parser.add_argument("--interval", type=float, default=0.15, help="s between changes")
    parser.add_argument("--replicas", type=int, default=1)
    args = parser.parse_args()
    subprocess.run(["bash", str(ROOT / "scripts" / "ensure-bench-tools.sh")], check=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    results = []
    with contextlib.ExitStack() as cleanup:
        directory = Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix="no-loss-")))
        upstream, port = start_upstream(directory)
        cleanup.callback(stop, upstream)

        gantry = Gantry(directory / "gantry", port, args.replicas)
        cleanup.callback(gantry.close)
        print("Gantry: migrating a fresh database, starting xds_server and runtime_agent…",
              file=sys.stderr)  # fmt: skip
        url = gantry.start("gantry-0")
        print(f"Gantry: gateway Ready at {url}; {args.changes} route changes…", file=sys.stderr)
        with contextlib.ExitStack() as run:
            results.append(measure("gantry", url, gantry.change, args, run))

        nginx = Nginx(directory / "nginx", free_port(), port)
        cleanup.callback(nginx.stop)
        nginx.start("nginx-0")
        print(f"nginx: {args.changes} reloads…", file=sys.stderr)
        with contextlib.ExitStack() as run:
            results.append(measure("nginx", f"http://127.0.0.1:{nginx.port}/", nginx.reload,
                                   args, run, probe=nginx.workers))  # fmt: skip
    print(table(results, args))
    print(
        f"\nnginx worker processes under its master after the last reload (old ones "
        f"still holding connections included): {results[1]['probe']}"
    )
    gantry_result = results[0]
    ok = (failed(gantry_result["load"]) == 0 and gantry_result["stream"]["survived"]
          and gantry_result["websocket"]["survived"])  # fmt: skip
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
