"""A real OpenID provider for the SecurityPolicy oidc tests: django-oauth-toolkit in OpenID
Connect mode (authorization code with PKCE, discovery, ID tokens, userinfo), run as its own
small Django process with its own settings and SQLite database (the platform's settings never
meet it). ``OpenIDProvider`` starts it on loopback and stops it.

The process has one user (``alice`` / ``wonderland``), a login form, and one confidential
client whose consent is skipped (``skip_authorization``), so a test drives the whole flow as a
browser would: the authorization endpoint sends it to the login form, the form back to the
authorization endpoint, and that to the client's redirect URI with a code.
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

USER, PASSWORD = "alice", "wonderland"
LOGIN_PAGE = """<!doctype html><form method="post" action="/accounts/login/">
<input type="hidden" name="csrfmiddlewaretoken" value="{token}">
<input type="hidden" name="next" value="{next}">
<input name="username"><input name="password" type="password"><button>Sign in</button>
</form>"""


def _configure(database: str, issuer: str) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from django.conf import settings

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()  # fmt: skip
    settings.configure(
        DEBUG=False, SECRET_KEY="oidc-provider-for-tests-only", ALLOWED_HOSTS=["*"],
        ROOT_URLCONF=__name__, USE_TZ=True,
        INSTALLED_APPS=["django.contrib.auth", "django.contrib.contenttypes",
                        "django.contrib.sessions", "oauth2_provider"],
        MIDDLEWARE=["django.contrib.sessions.middleware.SessionMiddleware",
                    "django.middleware.csrf.CsrfViewMiddleware",
                    "django.contrib.auth.middleware.AuthenticationMiddleware"],
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": database}},
        TEMPLATES=[{"BACKEND": "django.template.backends.django.DjangoTemplates",
                    "APP_DIRS": True, "OPTIONS": {"context_processors": [
                        "django.template.context_processors.request"]}}],
        PASSWORD_HASHERS=["django.contrib.auth.hashers.PBKDF2PasswordHasher"],
        LOGIN_URL="/accounts/login/",
        OAUTH2_PROVIDER={
            "OIDC_ENABLED": True, "OIDC_RSA_PRIVATE_KEY": pem, "OIDC_ISS_ENDPOINT": issuer,
            "PKCE_REQUIRED": True,
            "SCOPES": {"openid": "OpenID Connect", "email": "e-mail", "profile": "profile"},
        },
    )  # fmt: skip


def login(request):
    from django.contrib.auth import authenticate
    from django.contrib.auth import login as sign_in
    from django.http import HttpResponse, HttpResponseRedirect
    from django.middleware.csrf import get_token
    from django.utils.html import escape

    if request.method == "POST":
        user = authenticate(request, username=request.POST.get("username"),
                            password=request.POST.get("password"))  # fmt: skip
        if user is None:
            return HttpResponse("wrong user name or password", status=401)
        sign_in(request, user)
        target = request.POST.get("next", "/")
        return HttpResponseRedirect(target if target.startswith("/o/") else "/")
    page = LOGIN_PAGE.format(token=get_token(request), next=escape(request.GET.get("next", "")))
    return HttpResponse(page)


def _urls():
    from django.urls import include, path

    return [
        path("accounts/login/", login),
        path("o/", include("oauth2_provider.urls", namespace="oauth2_provider")),
    ]


def _prepare(client_id: str, client_secret: str, redirect_uris: list[str]) -> None:
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from oauth2_provider.models import Application

    call_command("migrate", verbosity=0, interactive=False)
    User.objects.create_user(USER, email="alice@example.test", password=PASSWORD)
    Application.objects.create(
        name="gantry", client_id=client_id, client_secret=client_secret,
        client_type=Application.CLIENT_CONFIDENTIAL,
        authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
        redirect_uris=" ".join(redirect_uris), skip_authorization=True,
        algorithm=Application.RS256_ALGORITHM,
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--client-id", required=True)
    parser.add_argument("--redirect-uri", action="append", required=True)
    parser.add_argument("--database", required=True)
    arguments = parser.parse_args()
    secret = sys.stdin.readline().strip()  # not on the command line (ps shows it)
    issuer = f"http://127.0.0.1:{arguments.port}/o"
    _configure(arguments.database, issuer)
    import django

    django.setup()
    urlpatterns.extend(_urls())
    _prepare(arguments.client_id, secret, arguments.redirect_uri)
    from socketserver import ThreadingMixIn
    from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

    from django.core.wsgi import get_wsgi_application

    class Server(ThreadingMixIn, WSGIServer):
        daemon_threads = True

    class Quiet(WSGIRequestHandler):
        def log_message(self, *args):
            pass

    server = make_server("127.0.0.1", arguments.port, get_wsgi_application(), Server, Quiet)
    print("ready", flush=True)
    server.serve_forever()


urlpatterns: list = []  # filled once Django is set up (ROOT_URLCONF is this module)


class OpenIDProvider:
    """The provider in its own process: ``issuer``, ``discovery`` and a ``login`` helper."""

    def __init__(self, port: int, client_id: str, client_secret: str, redirect_uris: list[str]):
        self.port, self.client_id = port, client_id
        self.issuer = f"http://127.0.0.1:{port}/o"
        self._directory = tempfile.TemporaryDirectory()
        arguments = [
            sys.executable,
            __file__,
            "--port",
            str(port),
            "--client-id",
            client_id,
            "--database",
            str(Path(self._directory.name) / "provider.sqlite3"),
        ]
        for uri in redirect_uris:
            arguments += ["--redirect-uri", uri]
        environment = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
        self.process = subprocess.Popen(
            arguments, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, env=environment, cwd=self._directory.name,
        )  # fmt: skip
        self.process.stdin.write(client_secret + "\n")
        self.process.stdin.close()
        line = self.process.stdout.readline()
        if line.strip() != "ready":
            self.close()
            raise RuntimeError(f"the OpenID provider did not start: {line}")
        self._wait_serving()

    def _wait_serving(self, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(self.discovery_url(), timeout=2) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def discovery_url(self) -> str:
        return f"{self.issuer}/.well-known/openid-configuration"

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self._directory.cleanup()


def sign_in(browser, authorize_url: str) -> str:
    """Drives ``browser`` (a requests.Session at the provider) through the login form from
    ``authorize_url``; the Location the provider finally redirects to (the client's redirect
    URI with a code)."""
    answer = browser.get(authorize_url, allow_redirects=False, timeout=10)
    assert answer.status_code == 302, answer.text
    login_url = answer.headers["Location"]
    base = authorize_url.split("/o/")[0]
    form = browser.get(base + login_url if login_url.startswith("/") else login_url, timeout=10)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text).group(1)
    following = re.search(r'name="next" value="([^"]*)"', form.text).group(1)
    import html

    posted = browser.post(
        base + "/accounts/login/", allow_redirects=False, timeout=10,
        data={"csrfmiddlewaretoken": token, "next": html.unescape(following),
              "username": USER, "password": PASSWORD},
        headers={"Referer": base + "/accounts/login/"},
    )  # fmt: skip
    assert posted.status_code == 302, posted.text
    answer = browser.get(base + posted.headers["Location"], allow_redirects=False, timeout=10)
    assert answer.status_code == 302, answer.text
    return answer.headers["Location"]


if __name__ == "__main__":
    main()
