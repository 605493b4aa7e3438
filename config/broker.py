"""The embedded broker (``filesystem://``): atomic message files, and no message lost when a
consumer dies holding it.

kombu's filesystem transport creates a message file and then writes it, while a consumer may
already be moving and reading it: an empty read ends in ``JSONDecodeError`` and stops the
worker (seen under load). Here a message is written under a name consumers ignore and renamed
into place, which is atomic on one filesystem, so a consumer only ever sees whole messages.

kombu's transport also deletes a message file as soon as a consumer reads it, so a worker killed
while it held a task (acknowledged late) lost it for good. Here a consumer *claims* the file
instead: it moves it into a directory of its own under ``claims_folder`` and deletes it only on
acknowledgement. The directory holds a lock file with a POSIX record lock, which the kernel
releases when the process dies, however it dies (and which a forked child does not inherit).
Consumers look for claim directories whose lock they can take, and move their messages back
into the queue: the task is delivered again.
"""

import contextlib
import fcntl
import logging
import os
import uuid
from pathlib import Path
from queue import Empty
from time import monotonic, monotonic_ns

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.encoding import bytes_to_str, str_to_bytes
from kombu.utils.json import dumps, loads
from kombu.utils.scheduling import FairCycle

log = logging.getLogger(__name__)

LOCK_NAME = "owner.lock"
# How often a consumer looks for dead consumers' claims (and the first time it reads).
RECOVER_EVERY = 1.0


def _try_lock(path: Path) -> int | None:
    """An open descriptor holding the lock on ``path``, or None if a live process holds it."""
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return None
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def _requeue_all(claim: Path, queue_folder: str) -> int:
    """Moves every message of a claim directory back into the queue (names keep their order)."""
    count = 0
    with contextlib.suppress(FileNotFoundError):
        for entry in sorted(os.listdir(claim)):
            if entry.endswith(".msg"):
                with contextlib.suppress(FileNotFoundError):
                    os.replace(claim / entry, os.path.join(queue_folder, entry))
                    count += 1
    return count


def recover_dead_claims(claims_folder: Path, queue_folder: str, own: Path | None = None) -> int:
    """Puts back the messages held by consumers that died; returns how many."""
    count = 0
    try:
        entries = os.listdir(claims_folder)
    except FileNotFoundError:
        return 0
    for name in entries:
        claim = claims_folder / name
        # Dot names are being set up (their lock is not taken yet). This process's own are
        # alive, and POSIX locks never conflict within a process: closing a descriptor on one
        # of them here would even drop its owner's lock.
        if name.startswith((".", f"{os.getpid()}-")) or claim == own:
            continue
        fd = _try_lock(claim / LOCK_NAME)
        if fd is None:
            continue
        try:
            count += _requeue_all(claim, queue_folder)
            with contextlib.suppress(OSError):
                os.unlink(claim / LOCK_NAME)
                os.rmdir(claim)
        finally:
            os.close(fd)
    if count:
        log.warning("redelivering %d message(s) held by a consumer that died", count)
    return count


class InOrder(FairCycle):
    """Each read tries the queues in the order they were consumed, the first with a message
    answering (kombu's cycle takes them in turn): a worker takes the heal's reconciles only
    when no other task waits (settings ``CELERY_TASK_QUEUES``)."""

    def get(self, callback, **kwargs):
        self.pos = 0
        return super().get(callback, **kwargs)


class Channel(filesystem.Channel):
    """A filesystem channel whose messages stay claimed, not deleted, until acknowledged, and
    whose queues are read in order (``InOrder``)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._claim_dir: Path | None = None
        self._claim_fd: int | None = None
        self._claimed: dict[str, Path] = {}  # delivery tag → claimed message file
        self._no_ack_queues: set[str] = set()
        self._next_recovery = 0.0

    @property
    def claims_folder(self) -> Path:
        folder = self.transport_options.get("claims_folder")
        return Path(folder or Path(self.data_folder_in).parent / "claims")

    def _put(self, queue, payload, **kwargs):
        # Nanoseconds, fixed width: names sort in the order messages were sent, even within a
        # millisecond (consumers take the first name).
        name = f"{monotonic_ns():020d}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        partial = os.path.join(self.data_folder_out, f".{name}.partial")
        try:
            with open(partial, "wb") as handle:
                handle.write(str_to_bytes(dumps(payload)))
            os.replace(partial, final)
        except OSError as exc:
            raise ChannelError(f"Cannot add file {final!r} to directory") from exc

    def _own_claims(self) -> Path:
        """This channel's claim directory, locked before it gets its final name, so no other
        consumer ever sees it unlocked while this process lives."""
        if self._claim_dir is None:
            self.claims_folder.mkdir(parents=True, exist_ok=True)
            name = f"{os.getpid()}-{uuid.uuid4().hex}"
            staging = self.claims_folder / f".{name}"
            staging.mkdir()
            fd = os.open(staging / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.rename(staging, self.claims_folder / name)
            self._claim_dir, self._claim_fd = self.claims_folder / name, fd
        return self._claim_dir

    def _reset_cycle(self):
        self._cycle = InOrder(self._get_and_deliver, self._active_queues, Empty)

    def _get(self, queue):
        """Claims the oldest message of ``queue`` (after putting back dead consumers' claims)."""
        if monotonic() >= self._next_recovery:
            self._next_recovery = monotonic() + RECOVER_EVERY
            recover_dead_claims(self.claims_folder, self.data_folder_in, self._claim_dir)
        wanted = f"{queue}.msg"
        for name in sorted(os.listdir(self.data_folder_in)):
            if name.partition(".")[2] != wanted:
                continue
            claimed = self._own_claims() / name
            try:
                os.replace(os.path.join(self.data_folder_in, name), claimed)
            except FileNotFoundError:  # another consumer took it first
                continue
            try:
                payload = loads(bytes_to_str(claimed.read_bytes()))
            except (OSError, ValueError) as exc:
                raise ChannelError(f"Cannot read file {str(claimed)!r} from queue.") from exc
            if queue in self._no_ack_queues:
                claimed.unlink(missing_ok=True)
            else:
                self._claimed[payload["properties"]["delivery_tag"]] = claimed
            return payload
        raise Empty()

    def _release(self, delivery_tag) -> None:
        path = self._claimed.pop(delivery_tag, None)
        if path is not None:
            path.unlink(missing_ok=True)

    def basic_consume(self, queue, no_ack, callback, consumer_tag, **kwargs):
        if no_ack:
            self._no_ack_queues.add(queue)
        return super().basic_consume(queue, no_ack, callback, consumer_tag, **kwargs)

    def basic_get(self, queue, no_ack=False, **kwargs):
        message = super().basic_get(queue, no_ack=no_ack, **kwargs)
        if message is not None and no_ack:
            self._release(message.delivery_tag)
        return message

    def basic_ack(self, delivery_tag, multiple=False):
        super().basic_ack(delivery_tag, multiple=multiple)
        self._release(delivery_tag)

    def basic_reject(self, delivery_tag, requeue=False):
        super().basic_reject(delivery_tag, requeue=requeue)  # a requeue puts a copy first
        self._release(delivery_tag)

    def _restore(self, message):
        super()._restore(message)
        self._release(message.delivery_tag)

    def close(self):
        super().close()  # restores what was not acknowledged
        if self._claim_dir is not None:
            # Anything still claimed goes back rather than being lost.
            _requeue_all(self._claim_dir, self.data_folder_in)
            with contextlib.suppress(OSError):
                os.unlink(self._claim_dir / LOCK_NAME)
                os.rmdir(self._claim_dir)
            os.close(self._claim_fd)
            self._claim_dir = self._claim_fd = None
            self._claimed.clear()


class Transport(filesystem.Transport):
    Channel = Channel
