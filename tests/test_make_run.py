"""`make run` end to end: scripts/run.sh with the embedded defaults, as a fresh clone runs it.

No DATABASE_URL, REDIS_URL or CELERY_BROKER_URL: SQLite and the filesystem broker under a
private GANTRY_DATA_DIR, a free port. The web answers, the printed admin password works, a token
made with manage.py works against the API, the Celery worker consumes a task from the embedded
broker, the README tour works (a gateway, a backend and a route through the API, a request
through the gateway's Envoy, a route change served), and Ctrl-C (SIGINT to the foreground process
group) stops every process it started, Envoys included. The supervisor (scripts/supervise.py)
restarts a process that exits, with a growing delay, and never stops the others for it.
"""

import contextlib
import http.cookiejar
import json
import os
import random
import re
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from tests.provisioning.harness import Upstream

REPO = Path(__file__).resolve().parent.parent
PYTHON = str(REPO / ".venv" / "bin" / "python")
# The services `make test` provides are exactly what `make run` must do without.
NOT_INHERITED = (
    "DATABASE_URL",
    "REDIS_URL",
    "CELERY_BROKER_URL",
    "GANTRY_ENV",
    "GANTRY_ADMIN_PASSWORD",
    "GANTRY_SECRET_KEY",
    "GANTRY_ENCRYPTION_KEYS",
)
READY_TIMEOUT = 60
TASK_TIMEOUT = 20
STOP_TIMEOUT = 20
ENQUEUE = """
import django, os
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django.setup()
from tenants.tasks import prune_audit_events
print(prune_audit_events.delay().id)
"""
ANSI = re.compile(r"\x1b\[[0-9;]*m")

pytestmark = pytest.mark.slow


class Output:
    """Collects a process's output in a background thread, so waiting never blocks on a pipe."""

    def __init__(self, stream):
        self._lines: list[str] = []
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream):
        for raw in iter(stream.readline, b""):
            with self._changed:
                self._lines.append(ANSI.sub("", raw.decode(errors="replace")))
                self._changed.notify_all()

    def text(self) -> str:
        with self._changed:
            return "".join(self._lines)

    def wait_for(self, pattern: str, timeout: float) -> re.Match:
        deadline = time.monotonic() + timeout
        with self._changed:
            while not (match := re.search(pattern, "".join(self._lines), re.MULTILINE)):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"no {pattern!r} in the output within {timeout}s:\n{self.tail()}"
                    )
                self._changed.wait(left)
        return match

    def tail(self, lines: int = 60) -> str:
        return "".join(self._lines[-lines:])

    def join(self, timeout: float) -> None:
        """Waits for the end of the output (every writer gone)."""
        self._thread.join(timeout)


def port_window() -> str:
    """Gateway ports of their own, away from other tests' (as tests/conftest.py does)."""
    # Outside the kernel's ephemeral ports, which the tour's backend (bound to port 0) gets:
    # gateways may not reach the runtime's own ports.
    low = random.SystemRandom().choice([*range(20000, 32768 - 100), *range(61000, 65536 - 100)])
    return f"{low}-{low + 99}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http_get(url: str, token: str | None = None) -> tuple[int, bytes]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=5) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.read()


def http_send(method: str, url: str, token: str, body: dict) -> tuple[int, dict]:
    content_type = "application/merge-patch+json" if method == "PATCH" else "application/json"
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), method=method,
        headers={"Authorization": f"Bearer {token}", "Content-Type": content_type},
    )  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.loads(error.read() or b"{}")


def wait_until(predicate, timeout: float, what: str, output: "Output"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            if value := predicate():
                return value
        time.sleep(0.1)
    raise AssertionError(f"{what}: not within {timeout}s\n{output.tail()}")


def http_get_or_none(url: str) -> int | None:
    try:
        return http_get(url)[0]
    except OSError:  # not listening yet
        return None


def our_processes(data_dir: Path, port: int) -> list[tuple[int, str]]:
    """Live processes (pid, command line) that run.sh started: they carry our data dir or port.

    The supervisor starts each Procfile process in its own session, so the process group alone
    would miss them; the environment (GANTRY_DATA_DIR) finds the Celery ones, whose command
    lines name neither.
    """
    marks = (str(data_dir).encode(), f"127.0.0.1:{port}".encode())
    env_mark = f"GANTRY_DATA_DIR={data_dir}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            environ = (entry / "environ").read_bytes()
        except OSError:  # gone meanwhile, or not ours to read
            continue
        if not cmdline:  # a zombie (or a kernel thread): nothing left running
            continue
        if any(mark in cmdline for mark in marks) or env_mark in environ.split(b"\0"):
            found.append((int(entry.name), cmdline.replace(b"\0", b" ").decode(errors="replace")))
    return found


def read_env_file(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {key.strip(): value.strip() for key, value in pairs}


def log_in_to_console(base: str, username: str, password: str) -> str:
    """Signs in through the console's login form; returns the URL it ends up on."""
    opener = urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
    )
    with opener.open(f"{base}/login/", timeout=5) as response:
        page = response.read().decode()
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    form = urllib.parse.urlencode(
        {"username": username, "password": password, "csrfmiddlewaretoken": csrf, "next": ""}
    ).encode()
    request = urllib.request.Request(f"{base}/login/", data=form, headers={"Referer": base})
    with opener.open(request, timeout=5) as response:
        return response.url


def test_make_run_serves_works_and_stops_on_ctrl_c(tmp_path):
    port = free_port()
    env = {key: value for key, value in os.environ.items() if key not in NOT_INHERITED}
    env.update(
        GANTRY_DATA_DIR=str(tmp_path), GANTRY_PORT=str(port), PYTHONUNBUFFERED="1",
        GANTRY_XDS_PORT=str(free_port()), GANTRY_LOCAL_PORT_RANGE=port_window(),
        GANTRY_RATELIMIT_PORT=str(free_port()),
        GANTRY_METERING_SECONDS="1", GANTRY_USAGE_ROLLUP_SECONDS="2",
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    started = time.monotonic()
    proc = subprocess.Popen(
        [str(REPO / "scripts" / "run.sh")],
        cwd=REPO,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group, like a job in a terminal
    )
    output = Output(proc.stdout)
    try:
        # 1. The web answers.
        while http_get_or_none(f"{base}/api/v1/") != 200:
            assert proc.poll() is None, f"run.sh exited with {proc.returncode}:\n{output.tail()}"
            assert time.monotonic() - started < READY_TIMEOUT, (
                f"{base}/api/v1/ not up within {READY_TIMEOUT}s:\n{output.tail()}"
            )
            time.sleep(0.2)

        # 2. The admin password is printed once, and it works in the console.
        password = output.wait_for(r"Created user admin with password: (\S+)$", 1).group(1)
        assert "created tenant demo owned by admin" in output.text()
        assert log_in_to_console(base, "admin", password) == f"{base}/t/demo/"

        # 3. A token from manage.py (same data dir, same generated secrets) works on the API.
        secrets_file = tmp_path / "dev.env"
        generated = read_env_file(secrets_file)
        assert set(generated) == {"GANTRY_SECRET_KEY", "GANTRY_ENCRYPTION_KEYS"}
        assert secrets_file.stat().st_mode & 0o077 == 0, "dev.env must be private"
        manage_env = {**env, **generated}
        made = subprocess.run(
            [PYTHON, "manage.py", "create_api_token", "--tenant", "demo", "--user", "admin"],
            cwd=REPO,
            env=manage_env,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert made.returncode == 0, made.stderr
        assert re.fullmatch(r"gty_[a-z0-9]{8}_\S+\n", made.stdout), repr(made.stdout)
        token = made.stdout.strip()
        status, body = http_get(f"{base}/api/v1/tenants/demo/", token)
        assert status == 200, body
        assert json.loads(body)["slug"] == "demo"

        # 4. The worker consumes from the embedded (filesystem) broker.
        enqueued = subprocess.run(
            [PYTHON, "-c", ENQUEUE],
            cwd=REPO,
            env=manage_env,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert enqueued.returncode == 0, enqueued.stderr
        task_id = enqueued.stdout.strip().splitlines()[-1]
        output.wait_for(
            rf"Task tenants\.prune_audit_events\[{re.escape(task_id)}\] succeeded", TASK_TIMEOUT
        )
        assert re.search(r"worker\.1 .*pruned 0 audit events older than 400 days", output.text())

        # 5. The README tour: a gateway, a backend and a route; curl through the gateway's
        # Envoy; change the route and see the change.
        api = f"{base}/api/v1/tenants/demo/"
        app = Upstream("app")
        try:
            status, _ = http_send("POST", api + "gateways/", token, {"name": "web"})
            assert status == 202, _
            status, _ = http_send(
                "POST", api + "backends/", token, {"name": "app", "spec": app.backend()}
            )
            assert status == 202, _
            route = {"rules": [{"backendRefs": [{"name": "app"}]}]}
            status, _ = http_send(
                "POST", api + "gateways/web/routes/", token, {"name": "all", "spec": route}
            )
            assert status == 202, _

            def ready_url():
                gateway = json.loads(http_get(api + "gateways/web/", token)[1])
                if gateway["status"]["phase"] == "Ready":
                    return gateway["status"]["listeners"][0]["url"]
                return None

            # Generous: this runs beside the rest of the suite on two shared cores.
            url = wait_until(ready_url, 60, "gateway web Ready", output)
            status, body = http_get(url + "hello")
            assert status == 200 and json.loads(body)["path"] == "/hello"
            rewrite = {"type": "URLRewrite", "urlRewrite": {
                "path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/v2"}}}  # fmt: skip
            route["rules"][0]["filters"] = [rewrite]
            status, _ = http_send("PATCH", api + "gateways/web/routes/all/", token, {"spec": route})
            assert status == 202, _
            wait_until(
                lambda: json.loads(http_get(url + "hello")[1])["path"] == "/v2/hello",
                5, "the route change served", output,
            )  # fmt: skip

            # 5b. Usage: the agent reads the replica's counters, beat's rollup sums them, and
            # the requests just served show in the usage API.
            def served_requests():
                usage = json.loads(http_get(api + "usage/?gateway=web", token)[1])["results"]
                return sum(row["responses"]["2xx"] for row in usage) >= 2

            wait_until(served_requests, 30, "the requests in the usage API", output)
            assert re.search(r"beat\.1 .*Sending due task rollup-usage", output.text())
        finally:
            app.close()

        # 6. Ctrl-C: SIGINT to the foreground process group stops everything, promptly. (First,
        # the check for leftovers must see the live processes, or its "none left" means nothing.)
        running = " | ".join(cmdline for _, cmdline in our_processes(tmp_path, port))
        for what in ("gunicorn config.wsgi", "celery -A config worker", "celery -A config beat",
                     "manage.py xds_server", "manage.py runtime_agent",
                     "manage.py discovery_watcher", "manage.py ratelimit_server",
                     "envoy -c"):  # fmt: skip
            assert what in running, f"{what!r} not found among: {running}"
        os.killpg(proc.pid, signal.SIGINT)
        deadline = time.monotonic() + STOP_TIMEOUT
        try:
            proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            pytest.fail(f"run.sh still running {STOP_TIMEOUT}s after SIGINT:\n{output.tail()}")
        while (left := our_processes(tmp_path, port)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not left, f"still running after Ctrl-C: {left}\n{output.tail()}"
        assert "SIGINT received" in output.text()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        for pid, _ in our_processes(tmp_path, port):  # only what this run started
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        output.join(timeout=5)
        if not output._thread.is_alive():
            proc.stdout.close()
    assert time.monotonic() - started < 60, "make run's smoke test should stay under a minute"


SUPERVISE = str(REPO / "scripts" / "supervise.py")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as handle:  # a zombie is gone too
        return handle.read().split(") ")[1][0] != "Z"


@pytest.mark.slow
def test_the_supervisor_restarts_a_process_that_exits_and_never_stops_the_others(tmp_path):
    procfile = tmp_path / "Procfile"
    # "steady" runs until stopped; "flaky" exits at once, every time; "stubborn" ignores SIGTERM.
    procfile.write_text(
        "steady: echo steady $$; exec sleep 600\n"
        "flaky: echo flaky ${MARK}; exit 3\n"
        "stubborn: trap '' TERM; echo stubborn $$; while :; do sleep 0.1; done\n"
        "simple: sleep ${NAP}\n"
    )
    proc = subprocess.Popen(
        [PYTHON, SUPERVISE, "-f", str(procfile), "--grace", "2"], cwd=tmp_path,
        env={**os.environ, "MARK": "expanded", "NAP": "600", "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    output = Output(proc.stdout)
    try:
        steady = int(output.wait_for(r"steady\.1 +\| steady (\d+)$", 10).group(1))
        stubborn = int(output.wait_for(r"stubborn\.1 +\| stubborn (\d+)$", 10).group(1))
        output.wait_for(r"flaky\.1 +\| flaky expanded$", 10)
        # A simple command is the process started (and signalled), not a shell around it.
        simple = int(output.wait_for(r"simple\.1 +\| started with pid (\d+)$", 10).group(1))
        cmdline = Path(f"/proc/{simple}/cmdline")
        wait_until(lambda: cmdline.read_bytes() == b"sleep\x00600\x00", 5,
                   "the shell replaced by the command", output)  # fmt: skip
        # 1, 2 then 4 seconds between starts: three exits within ~4 s, the fourth start later.
        output.wait_for(r"flaky\.1 .*exited with code 3 .*restarting in 4s", 15)
        assert re.search(r"flaky\.1 .*restarting in 1s", output.text())
        assert re.search(r"flaky\.1 .*restarting in 2s", output.text())
        assert alive(steady) and alive(stubborn), "the others keep running"
        assert f"started with pid {steady}" in output.text()
        assert len(re.findall(r"steady\.1 +\| started with pid", output.text())) == 1

        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
        output.join(timeout=5)
        assert not alive(steady) and not alive(stubborn) and not alive(simple)
        assert "SIGTERM received" in output.text()
        assert re.search(r"stubborn\.1 .*still running after 2s: SIGKILL", output.text())
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
