"""Settings come from the environment; production refuses to start without its secrets.
The management commands of the architecture brief."""

import os
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from tenants.models import ApiToken, Membership

ROOT = Path(__file__).resolve().parent.parent


def django_check(env: dict) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("GANTRY_", "DATABASE_"))}
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "CRITICAL"],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_production_refuses_to_start_without_its_secrets():
    result = django_check({"GANTRY_ENV": "production"})
    assert result.returncode != 0
    for name in ["GANTRY_SECRET_KEY", "GANTRY_ENCRYPTION_KEYS", "DATABASE_URL"]:
        assert name in result.stderr


def test_production_starts_with_them(tmp_path):
    from cryptography.fernet import Fernet

    result = django_check(
        {
            "GANTRY_ENV": "production",
            "GANTRY_SECRET_KEY": "x" * 60,
            "GANTRY_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
            "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
            "GANTRY_ALLOWED_HOSTS": "gantry.example.com",
        }
    )
    assert result.returncode == 0, result.stderr


def test_a_malformed_variable_is_named():
    result = django_check({"GANTRY_TRUSTED_PROXY_COUNT": "two"})
    assert result.returncode != 0
    assert "GANTRY_TRUSTED_PROXY_COUNT" in result.stderr


def test_secrets_round_trip_encrypted(settings):
    from cryptography.fernet import Fernet

    from config import crypto

    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.GANTRY_ENCRYPTION_KEYS = [old]
    sealed = crypto.encrypt("s3cret")
    assert "s3cret" not in sealed
    settings.GANTRY_ENCRYPTION_KEYS = [new, old]  # rotation: new first, old still decrypts
    assert crypto.decrypt(sealed) == "s3cret"


@pytest.mark.django_db
def test_create_tenant_and_create_api_token_commands():
    out = StringIO()
    call_command("create_tenant", "initech", "--owner", "peter", "--plan", "developer", stdout=out)
    assert "created user peter with password" in out.getvalue()
    assert Membership.objects.get(tenant__slug="initech").role == "owner"

    out = StringIO()
    call_command("create_api_token", "--tenant", "initech", "--user", "peter", stdout=out)
    lines = out.getvalue().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gty_")
    assert ApiToken.objects.filter(prefix=lines[0][:12]).exists()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {lines[0]}")
    assert client.get("/api/v1/tenants/initech/").json()["plan"] == "developer"

    with pytest.raises(CommandError, match="already exists"):
        call_command("create_tenant", "initech", "--owner", "peter", stdout=StringIO())
    with pytest.raises(CommandError, match="no plan named"):
        call_command("create_tenant", "other", "--owner", "peter", "--plan", "nope")
    with pytest.raises(CommandError, match="no tenant"):
        call_command("create_api_token", "--tenant", "nope", "--user", "peter")
