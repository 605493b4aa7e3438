"""Gateways' access logs: reading the lines Envoy writes (``translate.access_log``), storing them
as ``AccessLogEntry`` rows, and pruning them after the plan's retention.

The local runtime agent keeps one ``Tail`` per replica: where it is in the replica's
``access.log`` (the file's inode, the byte offset after the last whole line stored, and how
many times the file was rotated in this run). The position is written beside the file after
each store, so an agent that restarts and adopts the replica goes on where the last one
stopped; a line read twice is stored once (unique on run, rotation and offset).
"""

import contextlib
import json
import os
import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from django.db import transaction
from django.utils import timezone

from provisioning.models import AccessLogEntry
from tenants.models import Plan

MAX_READ = 1024 * 1024  # bytes read from one file per pass
# <tenant>/<gateway>/route/<route>/rule/<i>/match/<j>: the Gantry route is <route>.
ROUTE_NAME = re.compile(r"^[^/]+/[^/]+/route/(?P<route>[^/]+)/")


def _text(value, limit: int) -> str:
    return "" if value is None else str(value)[:limit]


def _number(value) -> int | None:
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None
    return number if number >= 0 else None


def _moment(value) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None


def route_of(envoy_route_name) -> str:
    """The Gantry route an Envoy route name belongs to; empty for none (no route matched)."""
    match = ROUTE_NAME.match(envoy_route_name or "")
    return match["route"][:63] if match else ""


def parse_line(line: bytes) -> dict | None:
    """One JSON access log line → the fields of an ``AccessLogEntry``; None when it is not
    one (a torn or foreign line is skipped, never guessed at)."""
    try:
        record = json.loads(line)
    except ValueError:
        return None
    return parse_record(record)


def parse_record(record) -> dict | None:
    """``parse_line`` of a line already read as JSON."""
    if not isinstance(record, dict):
        return None
    timestamp = _moment(record.get("start"))
    status = _number(record.get("status"))
    if timestamp is None or status is None:
        return None
    return {
        "timestamp": timestamp,
        "request_id": _text(record.get("requestId"), 128),
        "method": _text(record.get("method"), 16),
        "path": _text(record.get("path"), 2048).partition("?")[0],
        "status": min(status, 999),
        "flags": _text(record.get("flags"), 64).replace("-", ""),
        "route": route_of(record.get("route")),
        "consumer": _text(record.get("consumer"), 255),
        "bytes_received": _number(record.get("bytesReceived")) or 0,
        "bytes_sent": _number(record.get("bytesSent")) or 0,
        "duration_ms": _number(record.get("durationMs")),
        "upstream_ms": _number(record.get("upstreamMs")),
        "upstream_host": _text(record.get("upstreamHost"), 255),
        "client_address": _text(record.get("client"), 64),
        "port": _number(record.get("port")),
        "user_agent": _text(record.get("userAgent"), 512),
    }


@dataclass
class Position:
    segment: int = 0  # rotations of the file in this run before the one being read
    inode: int | None = None
    offset: int = 0


@dataclass
class Tail:
    """Reads the new whole lines of one replica's access log, across rotations (the file
    renamed to ``<name>.1`` and a new one opened: the rest of the renamed one is read first)."""

    path: Path
    position: Position = field(default_factory=Position)

    @property
    def position_path(self) -> Path:
        return self.path.with_name(self.path.name + ".position")

    def load(self) -> None:
        """The position a previous agent left (an adopted replica); none: from the start."""
        with contextlib.suppress(OSError, ValueError, TypeError, KeyError):
            saved = json.loads(self.position_path.read_text())
            self.position = Position(int(saved["segment"]), saved["inode"], int(saved["offset"]))

    def save(self) -> None:
        saved = {"segment": self.position.segment, "inode": self.position.inode,
                 "offset": self.position.offset}  # fmt: skip
        temporary = self.position_path.with_suffix(".tmp")
        temporary.write_text(json.dumps(saved))
        temporary.replace(self.position_path)

    def reset(self) -> None:
        """A new run: its Envoy writes a new file (the old one and its position go)."""
        for path in (self.path, self.path.with_name(self.path.name + ".1"), self.position_path):
            path.unlink(missing_ok=True)
        self.position = Position()

    def read(self) -> tuple[list[tuple[int, int, bytes]], Position]:
        """New lines as ``(segment, offset, line)``, and the position after them (to keep once
        they are stored)."""
        position = Position(**vars(self.position))
        try:
            inode = os.stat(self.path).st_ino
        except FileNotFoundError:
            inode = None
        lines: list[tuple[int, int, bytes]] = []
        if position.inode is not None and inode != position.inode:
            rotated = self.path.with_name(self.path.name + ".1")
            with contextlib.suppress(FileNotFoundError):
                if os.stat(rotated).st_ino == position.inode:
                    lines += _lines(rotated, position.segment, position.offset, final=True)
            if inode is None:
                return lines, position
            position = Position(position.segment + 1, inode, 0)
        if inode is None:
            return lines, position
        position.inode = inode
        found = _lines(self.path, position.segment, position.offset)
        if found:
            segment, offset, line = found[-1]
            position.offset = offset + len(line) + 1
        return lines + found, position


def _lines(path: Path, segment: int, offset: int, final: bool = False):
    """Whole lines of ``path`` from ``offset`` (a last line without its newline only when the
    file is ``final``: no more is written to it)."""
    with open(path, "rb") as handle:
        handle.seek(offset)
        data = handle.read(MAX_READ)
    found = []
    start = 0
    while start < len(data):
        end = data.find(b"\n", start)
        if end < 0:
            if final:
                found.append((segment, offset + start, data[start:]))
            break
        found.append((segment, offset + start, data[start:end]))
        start = end + 1
    return found


def store(
    tenant_id: int, gateway_name: str, replica: int, incarnation: uuid.UUID,
    lines: list[tuple[int, int, bytes]],
) -> int:  # fmt: skip
    """Stores the lines (a line already stored is skipped); how many were entries."""
    entries = []
    for segment, offset, line in lines:
        fields = parse_line(line)
        if fields is not None:
            entries.append(AccessLogEntry(
                tenant_id=tenant_id, gateway_name=gateway_name, replica=replica,
                incarnation=incarnation, segment=segment, offset=offset, **fields,
            ))  # fmt: skip
    with transaction.atomic():
        AccessLogEntry.objects.bulk_create(entries, batch_size=1000, ignore_conflicts=True)
    return len(entries)


def prune(now: datetime | None = None) -> int:
    """Deletes entries older than their tenant's plan keeps them; how many went."""
    now = now or timezone.now()
    deleted = 0
    for plan in Plan.objects.all():
        cutoff = now - timedelta(days=plan.access_log_retention_days)
        deleted += AccessLogEntry.objects.filter(tenant__plan=plan, timestamp__lt=cutoff).delete()[
            0
        ]
    return deleted
