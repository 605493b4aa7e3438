"""JSON bodies: plain JSON and ``application/merge-patch+json`` (RFC 7386), at most
``DATA_UPLOAD_MAX_MEMORY_SIZE`` bytes and ``MAX_DEPTH`` levels deep.

DRF reads the body straight from the request stream, past Django's size check, so the size
is checked here too (a chunked body has no Content-Length to check up front). Without a depth
limit, ``[[[[…]]]]`` a few thousand levels deep makes the JSON decoder (or any recursive walk
of the body later) raise RecursionError: a 500 instead of a 400.
"""

import io

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser as DrfJSONParser

from config.errors import PayloadTooLarge

# Far deeper than any Gantry resource (a policy's deepest field is about a dozen levels down).
MAX_DEPTH = 64


def depth_exceeds(value, limit: int) -> bool:
    """True if ``value`` has objects or arrays nested more than ``limit`` deep (no recursion)."""
    pending = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if not isinstance(item, (dict, list)):
            continue
        if depth > limit:
            return True
        children = item.values() if isinstance(item, dict) else item
        pending.extend((child, depth + 1) for child in children)
    return False


def read_limited(stream) -> io.BytesIO:
    """The body, or PayloadTooLarge once it grows past the limit (never reads much more)."""
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    body = stream.read(limit + 1)
    if len(body) > limit:
        raise PayloadTooLarge(limit)
    return io.BytesIO(body)


class JSONParser(DrfJSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        stream = read_limited(stream)
        try:
            data = super().parse(stream, media_type, parser_context)
            too_deep = depth_exceeds(data, MAX_DEPTH)
        except RecursionError:
            too_deep = True
        if too_deep:
            raise ParseError(f"JSON parse error - the body is nested more than {MAX_DEPTH} levels")
        return data


class MergePatchParser(JSONParser):
    media_type = "application/merge-patch+json"
