"""Full-page screenshots of every page a browser test visits, kept as CI artifacts:
``var/screenshots/<test-name>-<page>.png`` (``var/`` is git-ignored; CI keeps it).

``<page>`` is the page's path (``t-acme-gateways-edge-routes``) with its query, numbered when
a test visits the same page again (``…-2``), so a run leaves one picture per visit."""

import re
from pathlib import Path

DIRECTORY = Path(__file__).resolve().parents[2] / "var" / "screenshots"


def page_name(url: str) -> str:
    path = re.sub(r"^[a-z]+://[^/]+", "", url).split("#")[0]
    name = re.sub(r"[^A-Za-z0-9]+", "-", path).strip("-")
    return name or "home"


def test_slug(node_name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]+", "-", node_name).strip("-")


# The page's methods after which a page has loaded (a test waits with them after a click).
SETTLING = ("goto", "reload", "go_back", "wait_for_url")


class Recorder:
    """Screenshots of ``page``: after each of its ``SETTLING`` calls returns, and of the page
    the test ends on (``finish``). Taken when the test's own call returns, never from an
    event handler: each is of a loaded page, not of one half-way to the next."""

    def __init__(self, page, test_name: str, directory: Path = DIRECTORY):
        self.page, self.prefix, self.directory = page, test_slug(test_name), directory
        self.seen: dict[str, int] = {}
        self.saved: list[Path] = []
        directory.mkdir(parents=True, exist_ok=True)
        for method in SETTLING:
            setattr(page, method, self._then_take(getattr(page, method)))

    def _then_take(self, call):
        def settled(*args, **kwargs):
            result = call(*args, **kwargs)
            self.take()
            return result

        return settled

    def take(self, label: str | None = None) -> Path | None:
        if self.page.url.startswith("about:"):
            return None
        name = label or page_name(self.page.url)
        self.seen[name] = self.seen.get(name, 0) + 1
        suffix = f"-{self.seen[name]}" if self.seen[name] > 1 else ""
        path = self.directory / f"{self.prefix}-{name}{suffix}.png"
        self.page.screenshot(path=str(path), full_page=True)
        self.saved.append(path)
        return path

    def finish(self) -> None:
        """The page the test ended on, unless the last picture is of it already."""
        if self.page.is_closed() or self.page.url.startswith("about:"):
            return
        if self.saved and self.saved[-1].stem.startswith(
            f"{self.prefix}-{page_name(self.page.url)}"
        ):
            return
        self.take()
