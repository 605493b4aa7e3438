"""The embedded broker (``filesystem://``): a consumer reading while producers write only ever
sees whole messages (kombu's own transport could hand it an empty file, which stopped the
worker with a JSONDecodeError under load)."""

import threading

from kombu import Connection

from config.broker import Transport


def test_messages_read_while_being_written_are_whole(tmp_path):
    (tmp_path / "queue").mkdir()
    (tmp_path / "control").mkdir()
    options = {
        "data_folder_in": str(tmp_path / "queue"),
        "data_folder_out": str(tmp_path / "queue"),
        "control_folder": str(tmp_path / "control"),
        "polling_interval": 0.001,
    }
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
