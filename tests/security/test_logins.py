"""Guessing passwords and tokens: sign-in lockout on the console and the admin (django-axes),
and the API's throttles on failed authentication and on requests without credentials.

Through the real pages and the real API, with the client address taken from the TCP peer
(``REMOTE_ADDR``) unless trusted proxies are configured.
"""

from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.utils import timezone
from rest_framework.test import APIClient

from tenants.models import ApiToken
from tenants.roles import Role
from tests.conftest import make_user

ATTACKER = "203.0.113.7"
BYSTANDER = "198.51.100.9"


def _sign_in(client, url, username, password, address=ATTACKER):
    return client.post(url, {"username": username, "password": password}, REMOTE_ADDR=address)


@pytest.mark.parametrize("url", ["/login/", "/admin/login/"])
def test_sign_in_locks_out_after_five_failures_the_same_for_any_username(client, db, url):
    make_user("alice", is_staff=True)
    answers = {}
    for username in ("alice", "nobody-by-this-name"):
        for _ in range(4):
            failed = _sign_in(client, url, username, "wrong")
            assert failed.status_code == 200  # the form again, "wrong username or password"
        assert _sign_in(client, url, username, "wrong").status_code == 429  # the fifth
        locked = _sign_in(client, url, username, "pw-alice")  # then even the right password
        assert locked.status_code == 429
        assert int(locked["Retry-After"]) == 15 * 60
        answers[username] = locked.content.decode().replace(username, "NAME")
    assert answers["alice"] == answers["nobody-by-this-name"]
    assert "Too many failed sign-in attempts" in answers["alice"]
    assert "15 minutes" in answers["alice"]
    # The lockout is per username and address: alice signs in from elsewhere.
    assert _sign_in(client, url, "alice", "pw-alice", BYSTANDER).status_code == 302


def test_the_lockout_ends_after_the_cool_off(client, db):
    make_user("alice")
    for _ in range(5):
        _sign_in(client, "/login/", "alice", "wrong")
    assert _sign_in(client, "/login/", "alice", "pw-alice").status_code == 429
    AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(minutes=16))
    assert _sign_in(client, "/login/", "alice", "pw-alice").status_code == 302


def test_a_success_resets_the_count(client, db):
    make_user("alice")
    for _ in range(4):
        _sign_in(client, "/login/", "alice", "wrong")
    assert _sign_in(client, "/login/", "alice", "pw-alice").status_code == 302
    client.logout()
    for _ in range(4):
        assert _sign_in(client, "/login/", "alice", "wrong").status_code == 200
    assert _sign_in(client, "/login/", "alice", "pw-alice").status_code == 302


def _bearer(token: str, address: str = ATTACKER, **headers) -> APIClient:
    client = APIClient(REMOTE_ADDR=address, **headers)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def test_failed_token_authentication_is_throttled_per_address(org, settings):
    settings.GANTRY_API_AUTH_FAILURE_RATE = "5/hour"
    guess = "gty_abcdefgh_" + "x" * 43
    for _ in range(5):
        assert _bearer(guess).get("/api/v1/me/").status_code == 401
    throttled = _bearer(guess).get("/api/v1/me/")
    assert throttled.status_code == 429
    assert throttled.json()["error"]["code"] == "throttled"
    assert int(throttled["Retry-After"]) >= 1
    # Even a good token waits at that address; the same token elsewhere works.
    assert _bearer(org.tokens[Role.VIEWER]).get("/api/v1/me/").status_code == 429
    assert _bearer(org.tokens[Role.VIEWER], BYSTANDER).get("/api/v1/me/").status_code == 200


def test_revoked_tokens_count_as_failures(org, settings):
    settings.GANTRY_API_AUTH_FAILURE_RATE = "3/hour"
    ApiToken.objects.filter(user=org.users[Role.EDITOR]).update(revoked_at=timezone.now())
    client = _bearer(org.tokens[Role.EDITOR])
    statuses = [client.get("/api/v1/tenants/acme/").status_code for _ in range(4)]
    assert statuses == [401, 401, 401, 429]


def test_requests_without_credentials_are_throttled_per_address(db, settings):
    settings.GANTRY_API_ANON_RATE = "3/hour"
    anonymous = APIClient(REMOTE_ADDR=ATTACKER)
    statuses = [anonymous.get("/api/v1/tenants/").status_code for _ in range(4)]
    assert statuses == [401, 401, 401, 429]
    assert anonymous.get("/api/v1/").status_code == 429  # open pages too
    assert APIClient(REMOTE_ADDR=BYSTANDER).get("/api/v1/tenants/").status_code == 401


def test_x_forwarded_for_is_ignored_unless_proxies_are_trusted(db, settings):
    settings.GANTRY_API_ANON_RATE = "2/hour"
    for index in range(2):
        forged = APIClient(REMOTE_ADDR=ATTACKER, HTTP_X_FORWARDED_FOR=f"10.0.0.{index}")
        assert forged.get("/api/v1/tenants/").status_code == 401
    forged = APIClient(REMOTE_ADDR=ATTACKER, HTTP_X_FORWARDED_FOR="10.0.0.99")
    assert forged.get("/api/v1/tenants/").status_code == 429  # a new XFF is no new address
    settings.GANTRY_TRUSTED_PROXY_COUNT = 1  # behind one proxy: its X-Forwarded-For counts
    client = APIClient(REMOTE_ADDR="10.1.1.1", HTTP_X_FORWARDED_FOR=f"x, {BYSTANDER}")
    assert client.get("/api/v1/tenants/").status_code == 401
