"""The console in a real browser: Debian's Chromium driven by Playwright against a live server.

The README tour (sign in, create an API token, use it against the API), revocation, a wrong
password, and another tenant's pages being a 404. ``make test`` installs Chromium with
scripts/ensure-browser.sh; when it is missing these tests fail instead of skipping.
"""

import json
import os
import re
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from django.db import connections

from tenants import services
from tenants.audit import Actor
from tenants.models import ApiToken
from tests.conftest import make_user
from tests.console.screenshots import Recorder

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TIMEOUT_MS = 15_000

# A live server needs committed data, so each test ends with a flush of every table.
pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


MISSING_CHROMIUM = (
    f"{CHROMIUM} is missing: the console tests drive Debian's Chromium. Install it with "
    "scripts/ensure-browser.sh (as root; `make test` runs it) or `apt-get install chromium`."
)


def test_chromium_is_installed():
    """A missing browser is a failure, never a skip (the other tests error out on it too)."""
    assert os.access(CHROMIUM, os.X_OK), MISSING_CHROMIUM


@pytest.fixture
def page(live_server, transactional_db, monkeypatch, request):
    """A fresh Chromium page, alive only inside the test's database setup and teardown. Each
    page it loads is kept as a full-page screenshot (``tests/console/screenshots.py``).

    Playwright's sync API keeps an asyncio loop running in this thread. While it runs, Django
    refuses ORM calls ("SynchronousOnlyOperation", hence DJANGO_ALLOW_ASYNC_UNSAFE) and keeps
    its connections in separate, context-local storage. So the browser lives only inside the
    test, and database setup and teardown (the flush) run on the ordinary connection. The
    context-local connections the test opened are closed here.
    """
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(MISSING_CHROMIUM, pytrace=False)
    from playwright.sync_api import sync_playwright

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            context.set_default_timeout(TIMEOUT_MS)
            new_page = context.new_page()
            new_page.screenshots = Recorder(new_page, request.node.name)
            yield new_page
            new_page.screenshots.finish()
        finally:
            connections.close_all()
            browser.close()


@pytest.fixture
def demo_owner(live_server):
    """User ``dora`` owning tenant ``demo``, as ``make run``'s admin owns it."""
    user = make_user("dora")
    services.create_tenant(Actor.system("tests"), "demo", user.username, display_name="Demo")
    return user


def log_in(page, live_server, username, password):
    page.goto(f"{live_server.url}/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()


def api_get(live_server, path, token):
    """(status, JSON body) of an API GET with a bearer token, from outside the browser."""
    request = urllib.request.Request(
        f"{live_server.url}{path}", headers={"Authorization": f"Bearer {token}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.loads(error.read() or b"null")


def create_token_in_console(page, live_server, name):
    """From the tenant page: open "API tokens", create ``name``; returns the plaintext shown."""
    page.get_by_role("link", name="API tokens").click()
    page.wait_for_url(f"{live_server.url}/t/demo/tokens/")
    page.get_by_label("Name").fill(name)
    page.get_by_role("button", name="Create token").click()
    shown = page.get_by_label("new API token")
    shown.wait_for()
    return shown.input_value()


def assert_secret_not_shown(page, plaintext):
    assert page.locator("#new-token").count() == 0
    assert page.get_by_label("new API token").count() == 0
    assert plaintext not in page.content()


def test_readme_tour_login_create_token_and_call_the_api(page, live_server, demo_owner):
    log_in(page, live_server, "dora", "pw-dora")
    # One tenant: the home page goes straight to it.
    page.wait_for_url(f"{live_server.url}/t/demo/")
    assert page.get_by_role("heading", level=1).inner_text().startswith("Demo")
    assert "your role: owner" in page.inner_text("main")

    plaintext = create_token_in_console(page, live_server, "laptop")
    token = ApiToken.objects.get(tenant__slug="demo", name="laptop")
    assert re.fullmatch(r"gty_[a-z0-9]{8}_\S{40,}", plaintext)
    assert plaintext.startswith(token.prefix + "_")
    assert token.user == demo_owner
    assert page.get_by_role("heading", name=f"Token {token.prefix} created").is_visible()

    with tempfile.TemporaryDirectory(prefix="gantry-console-") as shots:
        path = Path(shots) / "tokens-after-create.png"
        page.screenshot(path=str(path), full_page=True)
        assert path.stat().st_size > 10_000
        if keep := os.environ.get("GANTRY_KEEP_SCREENSHOTS"):  # for looking at it by hand
            Path(keep).mkdir(parents=True, exist_ok=True)
            (Path(keep) / path.name).write_bytes(path.read_bytes())

    status, body = api_get(live_server, "/api/v1/tenants/demo/", plaintext)
    assert status == 200, body
    assert body["slug"] == "demo"
    assert body["role"] == "owner"

    # Reloading re-sends the form (headless Chromium does not ask first): that must neither
    # create a second token nor show a secret again. Coming back with a GET shows none either.
    page.reload()
    page.wait_for_url(f"{live_server.url}/t/demo/tokens/")
    assert ApiToken.objects.filter(name="laptop").count() == 1, "the reload made another token"
    assert "already submitted" in page.get_by_role("status").inner_text()
    assert_secret_not_shown(page, plaintext)
    page.goto(f"{live_server.url}/t/demo/tokens/")
    assert_secret_not_shown(page, plaintext)
    row = page.get_by_role("row").filter(has_text="laptop")
    assert row.count() == 1
    assert row.locator("code").inner_text() == token.prefix
    assert "dora" in row.inner_text()


def test_revoking_a_token_in_the_console_makes_the_api_answer_401(page, live_server, demo_owner):
    log_in(page, live_server, "dora", "pw-dora")
    page.wait_for_url(f"{live_server.url}/t/demo/")
    plaintext = create_token_in_console(page, live_server, "laptop")
    prefix = ApiToken.objects.get(name="laptop").prefix
    assert api_get(live_server, "/api/v1/tenants/demo/", plaintext)[0] == 200

    page.get_by_role("row").filter(has_text=prefix).get_by_role("button", name="Revoke").click()
    page.wait_for_url(f"{live_server.url}/t/demo/tokens/")
    assert page.get_by_role("status").inner_text() == f"Token {prefix} revoked."
    row = page.get_by_role("row").filter(has_text=prefix)
    assert row.get_by_role("button", name="Revoke").count() == 0
    assert "revoked" in row.inner_text()

    status, body = api_get(live_server, "/api/v1/tenants/demo/", plaintext)
    assert status == 401, body
    assert ApiToken.objects.get(prefix=prefix).revoked_at is not None


def test_wrong_password_shows_an_error_and_stays_on_the_login_page(page, live_server, demo_owner):
    log_in(page, live_server, "dora", "not-the-password")
    assert page.url == f"{live_server.url}/login/"
    assert page.get_by_role("alert").inner_text() == "Wrong username or password."
    assert page.get_by_role("button", name="Sign in").is_visible()
    # Still signed out: the console sends us back to the login page.
    page.goto(f"{live_server.url}/t/demo/")
    assert page.url.startswith(f"{live_server.url}/login/")


def test_another_tenants_console_pages_are_404_for_a_non_member(page, live_server, demo_owner):
    stranger = make_user("gary")
    globex = services.create_tenant(
        Actor.system("tests"), "globex", stranger.username, display_name="Globex"
    )
    their_token, _ = services.create_token(Actor.system("tests"), globex, "secret", user=stranger)
    log_in(page, live_server, "dora", "pw-dora")
    page.wait_for_url(f"{live_server.url}/t/demo/")

    for path in ("/t/globex/", "/t/globex/tokens/", "/t/no-such-tenant/"):
        response = page.goto(f"{live_server.url}{path}")
        assert response.status == 404, path
        text = page.inner_text("body")
        assert "Not Found" in text, path
        assert "Globex" not in text, path
        assert "gary" not in text, path

    # Nor can a hand-made POST (valid session and CSRF token) revoke their token.
    csrf = next(c["value"] for c in page.context.cookies() if c["name"] == "csrftoken")
    response = page.request.post(
        f"{live_server.url}/t/globex/tokens/{their_token.prefix}/revoke/",
        headers={"X-CSRFToken": csrf, "Referer": f"{live_server.url}/t/demo/tokens/"},
        max_redirects=0,
    )
    assert response.status == 404
    their_token.refresh_from_db()
    assert their_token.revoked_at is None

    # Their own tenant still works afterwards.
    assert page.goto(f"{live_server.url}/t/demo/tokens/").status == 200
