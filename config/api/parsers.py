"""Accept ``application/merge-patch+json`` (RFC 7386) as well as plain JSON."""

from rest_framework.parsers import JSONParser


class MergePatchParser(JSONParser):
    media_type = "application/merge-patch+json"
