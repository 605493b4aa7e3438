"""A DNS server the tests own (UDP on 127.0.0.1): answers A and AAAA queries from ``records``
(name → addresses) with ``ttl``; other names are NXDOMAIN. Messages are parsed and built with
dnspython, so the wire format is the real one Envoy's resolver (c-ares) and the platform read."""

import ipaddress
import socket
import threading

import dns.flags
import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset


class DNSServer:
    def __init__(self, ttl: int = 1):
        self.ttl = ttl
        self.records: dict[str, list[str]] = {}
        self.queries: list[tuple[str, str]] = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self._stop = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _serve(self) -> None:
        while not self._stop:
            try:
                data, peer = self.sock.recvfrom(4096)
            except OSError:
                return
            try:
                self.sock.sendto(self._answer(data), peer)
            except Exception:  # noqa: BLE001 - a malformed query gets no answer, like a server
                continue

    def _answer(self, data: bytes) -> bytes:
        query = dns.message.from_wire(data)
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        question = query.question[0]
        name = question.name.to_text().rstrip(".").lower()
        kind = dns.rdatatype.to_text(question.rdtype)
        self.queries.append((name, kind))
        if name not in self.records:
            response.set_rcode(dns.rcode.NXDOMAIN)
            return response.to_wire()
        version = 4 if question.rdtype == dns.rdatatype.A else 6
        matching = [
            address for address in self.records[name]
            if ipaddress.ip_address(address).version == version
        ]  # fmt: skip
        if matching and question.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
            response.answer.append(
                dns.rrset.from_text_list(
                    question.name, self.ttl, dns.rdataclass.IN, question.rdtype, matching
                )  # fmt: skip
            )
        return response.to_wire()

    def close(self) -> None:
        self._stop = True
        self.sock.close()
