"""The Gantry side: a throwaway database, ``xds_server`` and ``runtime_agent`` as subprocesses,
and one gateway on the local runtime whose route the benchmark changes through the services."""

import os
import secrets
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg

PORT_RANGE = "41000-41199"  # a private window for the gateway's host ports


def route_spec(variant: str) -> dict:
    """One rule to the upstream, a response header naming the variant, no request timeout
    (Envoy's default of 15 s would end the streaming response whatever the changes do)."""
    return {"rules": [{
        "backendRefs": [{"name": "app"}],
        "timeouts": {"request": "0s"},
        "filters": [{"type": "ResponseHeaderModifier", "responseHeaderModifier": {
            "set": [{"name": "x-variant", "value": variant}]}}],
    }]}  # fmt: skip


class Gantry:
    """``start`` builds everything and returns the listener URL; ``change`` applies a variant."""

    def __init__(self, directory: Path, upstream_port: int, replicas: int):
        self.directory, self.upstream_port, self.replicas = directory, upstream_port, replicas
        parts = urlsplit(os.environ["DATABASE_URL"])  # the server; its database may not exist
        self.admin_url = urlunsplit(parts._replace(path="/postgres"))
        self.database = f"gantry_bench_{secrets.token_hex(4)}"
        self.url = urlunsplit(parts._replace(path="/" + self.database))
        self.stack = self.gateway = self.route = None
        self.created = False

    def _admin(self, sql: str) -> None:
        with psycopg.connect(self.admin_url, autocommit=True) as connection:
            connection.execute(sql)

    def start(self, variant: str, timeout: float = 60) -> str:
        self.directory.mkdir(parents=True, exist_ok=True)
        self._admin(f'CREATE DATABASE "{self.database}"')
        self.created = True
        os.environ |= {
            "DATABASE_URL": self.url,
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "GANTRY_LOCAL_PORT_RANGE": PORT_RANGE,
            "GANTRY_RUNTIME_DIR": str(self.directory / "runtime"),
            "CELERY_BROKER_URL": "memory://",  # reconciles run here; no task leaves the process
        }
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        from tests.runtime.stack import Stack

        self.stack = Stack(self.directory)
        self.stack.env["DATABASE_URL"] = self.url  # with its password, if it has one
        self.stack.start()
        self._build(variant)
        return self._wait_ready(timeout)

    def _build(self, variant: str) -> None:
        from django.contrib.auth import get_user_model

        from gateways import services
        from provisioning.reconcile import reconcile
        from tenants.audit import Actor
        from tenants.services import create_tenant

        self.actor = Actor.system("bench")
        get_user_model().objects.create_user("bench-owner")
        tenant = create_tenant(self.actor, "bench", "bench-owner", plan="standard")
        self.gateway = services.create_gateway(self.actor, tenant, "edge",
                                               {"replicas": self.replicas})  # fmt: skip
        endpoint = {"ip": {"address": "127.0.0.1", "port": self.upstream_port}}
        services.create_backend(self.actor, tenant, "app", {"endpoints": [endpoint]})
        self.route = services.create_route(self.actor, self.gateway, "all", route_spec(variant))
        reconcile(self.gateway.pk)

    def _wait_ready(self, timeout: float) -> str:
        from gateways.models import Gateway

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = Gateway.objects.get(pk=self.gateway.pk).status
            if status.get("phase") == "Ready" and status.get("listeners"):
                return status["listeners"][0]["url"]
            time.sleep(0.1)
        raise RuntimeError(f"the gateway did not become Ready:\n{self.stack.logs()}")

    def change(self, variant: str) -> None:
        """A new route spec through the services, then the reconcile a worker would run."""
        from gateways import services
        from gateways.models import Route
        from provisioning.reconcile import reconcile

        route = Route.objects.get(pk=self.route.pk)
        services.replace_route_spec(self.actor, route, route_spec(variant))
        outcome = reconcile(self.gateway.pk)
        if outcome.result != "created":
            raise RuntimeError(f"the change made no new revision: {outcome}")

    def close(self) -> None:
        if self.stack:
            self.stack.stop()
        if self.created:
            from django.db import connections

            connections.close_all()
            self._admin(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
