"""YAML or JSON typed into a console textarea, parsed into plain values for a service.

A parse error is raised as the service's own ``ValidationFailed`` at the path the textarea
edits, so it reaches the form through the same helper as every other error. Aliases are
refused (a few lines of anchors can expand into gigabytes), and so is nesting deeper than the
API accepts.
"""

import yaml

from config.api.parsers import MAX_DEPTH, depth_exceeds
from config.errors import ValidationFailed


class _Loader(yaml.SafeLoader):
    """Safe YAML without aliases."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            raise yaml.composer.ComposerError(None, None, "aliases (*name) are not accepted", mark)
        return super().compose_node(parent, index)


def parse(text: str, path: str, *, expect: type = dict, empty=None):
    """The value written in ``text`` (YAML, of which JSON is a subset); ``empty`` when blank.
    ValidationFailed at ``path`` when it does not parse or is not an ``expect``."""
    if not text.strip():
        return empty
    try:
        value = yaml.load(text, Loader=_Loader)  # noqa: S506 (a SafeLoader)
    except yaml.YAMLError as error:
        raise ValidationFailed.one(path, f"is not valid YAML or JSON: {error}") from None
    except RecursionError:
        raise ValidationFailed.one(path, f"is nested more than {MAX_DEPTH} levels") from None
    if depth_exceeds(value, MAX_DEPTH):
        raise ValidationFailed.one(path, f"is nested more than {MAX_DEPTH} levels")
    if not isinstance(value, expect):
        kind = {dict: "an object (a mapping)", list: "a list"}.get(expect, expect.__name__)
        raise ValidationFailed.one(path, f"must be {kind}")
    return value


def dump(value) -> str:
    """``value`` as block-style YAML, keys in their stored order."""
    return yaml.safe_dump(value, sort_keys=False, default_flow_style=False, allow_unicode=True)
