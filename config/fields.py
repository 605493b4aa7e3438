"""Model fields of our own."""

import json
import zlib

from django.db import models


class CompressedJSONField(models.BinaryField):
    """A JSON document stored zlib-compressed (``bytea``): for large documents only ever read
    whole, in Python (a revision's desired state: every route spec of the gateway, about
    2 MB at 10,000 routes and a tenth of that compressed, written with each change). Nothing
    can query inside it in SQL."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("editable", False)
        super().__init__(*args, **kwargs)

    def from_db_value(self, value, expression, connection):
        if value is None:
            return None
        return json.loads(zlib.decompress(bytes(value)))

    def to_python(self, value):
        if isinstance(value, bytes | memoryview):
            return json.loads(zlib.decompress(bytes(value)))
        return value

    def get_prep_value(self, value):
        if value is None:
            return None
        text = getattr(value, "json_text", None)  # an EncodedJSON: its text is ready
        if text is None:
            text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
        return zlib.compress(text.encode(), 1)

    def get_db_prep_value(self, value, connection, prepared=False):
        if not prepared:
            value = self.get_prep_value(value)
        return None if value is None else connection.Database.Binary(value)

    def value_to_string(self, obj):
        return json.dumps(self.value_from_object(obj))


class EncodedJSON(dict):
    """A dict with its JSON text made already (``json_text``), which ``CompressedJSONField``
    stores as it is. Never changed after it is made."""

    json_text: str

    @classmethod
    def of(cls, value: dict, text: str) -> "EncodedJSON":
        encoded = cls(value)
        encoded.json_text = text
        return encoded
