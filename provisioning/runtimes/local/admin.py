"""Talking to an Envoy's admin interface over its Unix socket.

Local replicas and the warm validator put their admin on a Unix socket (mode 0600, in a 0700
directory the platform owns), never on a TCP port: a TCP admin on loopback is reachable by any
gateway whose backend names that port, and it hands out the whole config (xDS token included)
and ``/quitquitquit``. Only processes running as the platform's user can open the socket.
"""

import http.client
import socket


class UnixHTTPConnection(http.client.HTTPConnection):
    """``http.client`` over an ``AF_UNIX`` stream socket (the host name is only a header)."""

    def __init__(self, path: str, timeout: float = 5.0):
        super().__init__("localhost", timeout=timeout)
        self.socket_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(self.timeout)
            sock.connect(self.socket_path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


def admin_request(path: str, method: str, url: str, timeout: float = 5.0) -> tuple[int, str]:
    """(status, body) of one admin request to the Envoy whose admin socket is ``path``.
    Raises ``OSError`` when nothing answers there."""
    connection = UnixHTTPConnection(path, timeout)
    try:
        connection.request(method, url)
        answer = connection.getresponse()
        return answer.status, answer.read().decode(errors="replace")
    except http.client.HTTPException as error:
        raise OSError(f"admin {method} {url}: {error}") from error
    finally:
        connection.close()
