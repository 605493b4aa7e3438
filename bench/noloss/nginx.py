"""A private nginx (Debian's package) proxying to the upstream: own prefix, port, pid, logs."""

import os
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

CONFIG = """
worker_processes 1;
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    upstream app {{
        server 127.0.0.1:{upstream};
        keepalive 32;
    }}
    map $http_upgrade $connection_upgrade {{
        default upgrade;
        ''      '';
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_buffering off;
            add_header X-Variant {variant} always;
        }}
    }}
}}
"""


class Nginx:
    """``start`` runs the master in the foreground; ``reload`` rewrites the config and signals."""

    def __init__(self, prefix: Path, port: int, upstream: int):
        self.prefix, self.port, self.upstream = prefix, port, upstream
        self.conf = prefix / "nginx.conf"
        self.process: subprocess.Popen | None = None

    def write(self, variant: str) -> None:
        text = CONFIG.format(prefix=self.prefix, port=self.port, upstream=self.upstream,
                             variant=variant)  # fmt: skip
        self.conf.write_text(text)

    def _nginx(self, *args: str) -> list[str]:
        return ["nginx", "-p", str(self.prefix), "-e", str(self.prefix / "error.log"),
                "-c", str(self.conf), *args]  # fmt: skip

    def start(self, variant: str, timeout: float = 10) -> "Nginx":
        self.prefix.mkdir(parents=True, exist_ok=True)
        self.write(variant)
        subprocess.run(self._nginx("-t", "-q"), check=True)
        log = open(self.prefix / "master.log", "ab")  # noqa: SIM115 (the child keeps it)
        self.process = subprocess.Popen(self._nginx(), stdout=log, stderr=subprocess.STDOUT,
                                        start_new_session=True)  # fmt: skip
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/", timeout=1).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("nginx did not answer:\n" + self.errors())

    def reload(self, variant: str) -> None:
        self.write(variant)
        subprocess.run(self._nginx("-s", "reload"), check=True)

    def workers(self) -> int:
        """Processes of this master besides itself (old workers still draining included)."""
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return len(children.read_text().split()) if children.exists() else 0

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # fast shutdown: workers go too
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)

    def errors(self) -> str:
        path = self.prefix / "error.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""
