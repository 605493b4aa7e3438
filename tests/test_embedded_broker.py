"""The embedded broker (``filesystem://``): a consumer reading while producers write only ever
sees whole messages (kombu's own transport could hand it an empty file, which stopped the
worker with a JSONDecodeError under load), and a message a consumer took but never
acknowledged comes back when that consumer dies (kombu's own transport deleted it on read)."""

import os
import signal
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest
from kombu import Connection
from kombu import Queue as KombuQueue

from config.broker import Transport

ROOT = Path(__file__).resolve().parent.parent
# A consumer in a process of its own: takes one message, says which, and waits to be killed.
HOLDER = """
import sys, time
from kombu import Connection
from kombu import Queue as KombuQueue
import config.celery_app  # registers the transport
options = dict(data_folder_in=sys.argv[1], data_folder_out=sys.argv[1],
               control_folder=sys.argv[2], claims_folder=sys.argv[3], polling_interval=0.01)
with Connection("filesystem://", transport_options=options) as connection:
    message = connection.SimpleQueue(sys.argv[4]).get(timeout=10)
    print(message.payload["n"], flush=True)
    time.sleep(60)
"""


def queue_name() -> str:
    """kombu keeps declared bindings per process, across connections: each test its own name."""
    return f"work-{uuid.uuid4().hex[:8]}"


def broker_options(tmp_path) -> dict:
    for folder in ("queue", "control", "claims"):
        (tmp_path / folder).mkdir(exist_ok=True)
    return {
        "data_folder_in": str(tmp_path / "queue"),
        "data_folder_out": str(tmp_path / "queue"),
        "control_folder": str(tmp_path / "control"),
        "claims_folder": str(tmp_path / "claims"),
        "polling_interval": 0.001,
    }


def test_messages_read_while_being_written_are_whole(tmp_path):
    options = broker_options(tmp_path)
    count, body = 400, {"payload": "x" * 20_000}  # large enough to be written in pieces

    def produce():
        with Connection("filesystem://", transport_options=options) as connection:
            queue = connection.SimpleQueue("work")
            for number in range(count):
                queue.put({**body, "n": number})

    with Connection("filesystem://", transport_options=options) as connection:
        assert isinstance(connection.transport, Transport)  # what celery_app registers
        queue, seen = connection.SimpleQueue("work"), []  # declared before anyone publishes
        producers = [threading.Thread(target=produce)]
        for thread in producers:
            thread.start()
        while len(seen) < count:
            message = queue.get(timeout=10)
            assert message.payload["payload"] == body["payload"]
            seen.append(message.payload["n"])
            message.ack()
        for thread in producers:
            thread.join()
    assert sorted(seen) == list(range(count))
    assert not list((tmp_path / "queue").iterdir())
    assert not list((tmp_path / "claims").iterdir()), "acknowledged messages are gone"


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM])
def test_a_message_held_by_a_consumer_that_dies_is_delivered_again(tmp_path, how):
    options = broker_options(tmp_path)
    with Connection("filesystem://", transport_options=options) as connection:
        name = queue_name()
        queue = connection.SimpleQueue(name)
        queue.put({"n": 1})
        queue.put({"n": 2})
        holder = subprocess.Popen(
            [sys.executable, "-c", HOLDER, options["data_folder_in"], options["control_folder"],
             options["claims_folder"], name],
            cwd=ROOT, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            assert holder.stdout.readline().strip() == "1"
            # While the holder lives, its message is not anyone else's.
            second = queue.get(timeout=5)
            assert second.payload["n"] == 2
            second.ack()
            with pytest.raises(queue.Empty):
                queue.get(timeout=1.5)
            holder.send_signal(how)
            holder.wait(10)
        finally:
            holder.kill()
            holder.wait(10)
            holder.stdout.close()
        again = queue.get(timeout=5)
        assert again.payload["n"] == 1
        again.ack()
        with pytest.raises(queue.Empty):
            queue.get(timeout=1.5)
    assert not list((tmp_path / "claims").iterdir())
    assert not list((tmp_path / "queue").iterdir())


def test_an_unacknowledged_message_goes_back_when_its_consumer_closes(tmp_path):
    options, name = broker_options(tmp_path), queue_name()
    with Connection("filesystem://", transport_options=options) as connection:
        connection.SimpleQueue(name).put({"n": 1})
    with Connection("filesystem://", transport_options=options) as connection:
        assert connection.SimpleQueue(name).get(timeout=5).payload["n"] == 1  # not acked
    with Connection("filesystem://", transport_options=options) as connection:
        message = connection.SimpleQueue(name).get(timeout=5)
        assert message.payload["n"] == 1
        message.ack()
    assert os.listdir(tmp_path / "queue") == []


def test_a_consumer_reads_its_queues_in_order(tmp_path):
    """A worker reads its own queue before the heal's: messages of the first queue come first
    even when the second's were sent earlier (kombu's own cycle takes the queues in turn)."""
    options, first, second = broker_options(tmp_path), queue_name(), queue_name()
    with Connection("filesystem://", transport_options=options) as connection:
        for number in range(3):
            connection.SimpleQueue(second).put({"n": f"heal-{number}"})
        for number in range(3):
            connection.SimpleQueue(first).put({"n": f"change-{number}"})
    received: list[str] = []
    with Connection("filesystem://", transport_options=options) as connection:
        queues = [KombuQueue(first, routing_key=first), KombuQueue(second, routing_key=second)]

        def take(body, message):
            received.append(body["n"])
            message.ack()
            if body["n"] == "change-1":  # a change arrives while the heal's wait
                connection.SimpleQueue(first).put({"n": "change-late"})

        with connection.Consumer(queues, callbacks=[take], accept=["json"]):
            while len(received) < 7:
                connection.drain_events(timeout=5)
    assert received == [
        "change-0", "change-1", "change-2", "change-late", "heal-0", "heal-1", "heal-2"
    ]  # fmt: skip
