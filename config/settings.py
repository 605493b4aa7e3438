"""Gantry settings, read from the environment only (every variable: docs/configuration.md).

``GANTRY_ENV=production`` refuses to start without its secrets and a database; the
``development`` default (what ``make run`` uses) falls back to SQLite in ``var/`` and an
embedded Celery broker, so a fresh clone runs with no servers to install.
"""

import re
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from kombu import Exchange, Queue

from config.env import env_bool, env_float, env_int, env_list, env_str, require
from gateways.egress import parse_cidr, parse_name_pattern, parse_port_range, parse_resolver

BASE_DIR = Path(__file__).resolve().parent.parent

GANTRY_ENV = env_str("GANTRY_ENV", "development")
if GANTRY_ENV not in {"development", "production"}:
    raise ImproperlyConfigured(f"GANTRY_ENV must be development or production, not {GANTRY_ENV!r}")
PRODUCTION = GANTRY_ENV == "production"
if PRODUCTION:
    require(
        ["GANTRY_SECRET_KEY", "GANTRY_ENCRYPTION_KEYS", "DATABASE_URL", "GANTRY_ALLOWED_HOSTS"],
        "production",
    )

DATA_DIR = Path(env_str("GANTRY_DATA_DIR", str(BASE_DIR / "var")))
DEBUG = env_bool("GANTRY_DEBUG", False)

# Development falls back to fixed, loudly named keys; `make run` generates real ones in var/.
SECRET_KEY = env_str("GANTRY_SECRET_KEY") or "development-only-insecure-secret-key"
GANTRY_ENCRYPTION_KEYS = env_list("GANTRY_ENCRYPTION_KEYS") or [
    "ZGV2ZWxvcG1lbnQtb25seS1pbnNlY3VyZS1rZXktMDA="  # base64 of 32 bytes, development only
]
ALLOWED_HOSTS = env_list("GANTRY_ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("GANTRY_CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "axes",
    "rest_framework",
    "django_filters",
    "django_tables2",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "tenants",
    "gateways",
    "provisioning",
    "billing",
    "frontend",
]

MIDDLEWARE = [
    "config.middleware.RequestContextMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: answers sign-ins from a locked-out username and address.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]


def _database(url: str) -> dict:
    config = dj_database_url.parse(url, conn_max_age=60, conn_health_checks=True)
    if config["ENGINE"] == "django.db.backends.sqlite3":
        # Several processes (web, worker, beat) share the file: WAL lets readers run beside a
        # writer, IMMEDIATE takes the write lock up front so no transaction fails half-way on
        # an upgrade, and the busy timeout makes writers wait instead of failing.
        config["CONN_MAX_AGE"] = 0
        config["OPTIONS"] = {
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    return config


DATABASES = {
    "default": _database(env_str("DATABASE_URL") or f"sqlite:///{DATA_DIR / 'gantry.sqlite3'}")
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# SQLite (the zero-setup default) makes covering indexes plain ones: a slower read there, the
# same answers (``Route``'s ``route_load``).
SILENCED_SYSTEM_CHECKS = ["models.W040"]

REDIS_URL = env_str("REDIS_URL")
CACHE_KEY_PREFIX = env_str("GANTRY_CACHE_PREFIX", "gantry")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": CACHE_KEY_PREFIX,
        }
    }
else:  # the embedded default runs one web process, so a per-process cache is enough
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
AUTHENTICATION_BACKENDS = [
    # First: refuses a locked-out username+address before any password is checked.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
# Sign-in lockout (the console's and the admin's): after GANTRY_LOGIN_FAILURE_LIMIT failed
# sign-ins for one username from one client address, that pair is refused for
# GANTRY_LOGIN_COOLOFF_MINUTES, whether or not the username exists. A success resets the count.
AXES_FAILURE_LIMIT = env_int("GANTRY_LOGIN_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("GANTRY_LOGIN_COOLOFF_MINUTES", 15, minimum=1))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "config.middleware.client_address"  # honours the trusted proxies
AXES_LOCKOUT_CALLABLE = "frontend.lockout.locked_out"
AXES_VERBOSE = False
LOGIN_URL = "frontend:login"
LOGIN_REDIRECT_URL = "frontend:home"
LOGOUT_REDIRECT_URL = "frontend:login"
# The console's tables (sorting and pagination links; the markup is the console's own).
DJANGO_TABLES2_TEMPLATE = "frontend/partials/table.html"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
# collectstatic's target, used in production; development serves from the apps' folders.
STATIC_ROOT = Path(env_str("GANTRY_STATIC_ROOT", str(DATA_DIR / "static"))) if PRODUCTION else None
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    # Production serves hashed, compressed files made by collectstatic; development (make run,
    # tests) serves straight from the apps' static folders.
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if PRODUCTION
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = True
WHITENOISE_MANIFEST_STRICT = False

SECURE_COOKIES = env_bool("GANTRY_SECURE_COOKIES", PRODUCTION)
SESSION_COOKIE_SECURE = SECURE_COOKIES
CSRF_COOKIE_SECURE = SECURE_COOKIES
SESSION_COOKIE_HTTPONLY = True
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
if PRODUCTION:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# How many reverse proxies in front of Gantry append to X-Forwarded-For (0: use the peer).
GANTRY_TRUSTED_PROXY_COUNT = env_int("GANTRY_TRUSTED_PROXY_COUNT", 0)
GANTRY_API_RATE = env_str("GANTRY_API_RATE", "1200/minute")
# Per client address: API requests without credentials, and failed authentications (unknown,
# revoked or expired tokens). Past either: 429 with Retry-After.
GANTRY_API_ANON_RATE = env_str("GANTRY_API_ANON_RATE", "60/minute")
GANTRY_API_AUTH_FAILURE_RATE = env_str("GANTRY_API_AUTH_FAILURE_RATE", "20/minute")
GANTRY_AUDIT_RETENTION_DAYS = env_int("GANTRY_AUDIT_RETENTION_DAYS", 400, minimum=1)
GANTRY_DEFAULT_PLAN = env_str("GANTRY_DEFAULT_PLAN", "standard")
GANTRY_TOKEN_DEFAULT_TTL_DAYS = env_int("GANTRY_TOKEN_DEFAULT_TTL_DAYS", 0)
# The largest request body accepted (API and console): larger ones get 413 naming the limit.
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("GANTRY_MAX_REQUEST_BYTES", 2_621_440, minimum=1024)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "tenants.authentication.BearerTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
        "config.api.throttling.AnonymousThrottleAuthentication",  # last: no credentials
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_THROTTLE_CLASSES": ["config.api.throttling.PerCredentialThrottle"],
    "DEFAULT_PAGINATION_CLASS": "config.api.pagination.PageNumberPagination",
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "rest_framework.filters.OrderingFilter",
    ],
    "DEFAULT_SCHEMA_CLASS": "config.api.schema.GantryAutoSchema",
    "EXCEPTION_HANDLER": "config.api.errors.exception_handler",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": [
        "config.api.parsers.JSONParser",
        "config.api.parsers.MergePatchParser",
    ],
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    "PAGE_SIZE": 50,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Gantry API",
    "DESCRIPTION": "Managed Envoy gateways: tenants, gateways, routes, policies and billing.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "APPEND_COMPONENTS": {"securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}}},
    "SECURITY": [{"bearerAuth": []}],
    "ENUM_NAME_OVERRIDES": {"PolicyKindEnum": "gateways.validation.policies.KINDS"},
}

CELERY_BROKER_URL = env_str("CELERY_BROKER_URL") or "filesystem://"
if CELERY_BROKER_URL == "filesystem://":
    # The embedded broker: messages are files under var/broker, polled every 50 ms; a message a
    # worker took stays under claims/ until acknowledged (config/broker.py).
    _BROKER_DIR = DATA_DIR / "broker"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_BROKER_DIR / "queue"),
        "data_folder_out": str(_BROKER_DIR / "queue"),
        "control_folder": str(_BROKER_DIR / "control"),
        "claims_folder": str(_BROKER_DIR / "claims"),
        "polling_interval": 0.05,
    }
    # Producers and consumers both need them to exist.
    for _folder in ("queue", "control", "claims"):
        (_BROKER_DIR / _folder).mkdir(parents=True, exist_ok=True)
else:
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "global_keyprefix": env_str("GANTRY_BROKER_KEY_PREFIX", ""),
        # A task taken by a worker that died unacknowledged goes back to the queue after this
        # many seconds (longer than the tasks' hard time limit, so none runs twice at once).
        "visibility_timeout": env_int("GANTRY_BROKER_VISIBILITY_TIMEOUT", 600, minimum=1),
    }
    # Workers look for such tasks every few seconds (kombu's default: every ~100 s).
    _restore_every = max(1, min(10, CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"] // 3))
    CELERY_BROKER_TRANSPORT_OPTIONS |= {
        "unacked_restore_interval": _restore_every,
        "unacked_restore_throttle": 1,
    }
# The queue producers send to and workers consume (tests give a worker its own).
GANTRY_CELERY_QUEUE = env_str("GANTRY_CELERY_QUEUE", "celery")
CELERY_TASK_DEFAULT_QUEUE = GANTRY_CELERY_QUEUE
# The periodic heal's reconciles (one per gateway) wait in a queue of their own, which a
# worker reads only when the first queue is empty: a tenant's change never waits behind a
# heal pass (docs/delivery.md#the-periodic-heal). A worker started without -Q reads every
# queue below, in this order; one given -Q must list them all, this order too.
GANTRY_CELERY_HEAL_QUEUE = env_str("GANTRY_CELERY_HEAL_QUEUE", f"{GANTRY_CELERY_QUEUE}.heal")
# A write that reconciles more than one gateway (a tenant's backend, certificate or consumer
# shared by its gateways) sends those reconciles here, read after the main queue and before
# the heal's: one gateway's change never waits behind a fan-out of another's (a tenant with a
# thousand gateways, say). docs/delivery.md#fan-out-writes
GANTRY_CELERY_FANOUT_QUEUE = env_str("GANTRY_CELERY_FANOUT_QUEUE", f"{GANTRY_CELERY_QUEUE}.fanout")
CELERY_TASK_QUEUES = tuple(
    Queue(name, Exchange(name), routing_key=name)
    for name in (GANTRY_CELERY_QUEUE, GANTRY_CELERY_FANOUT_QUEUE, GANTRY_CELERY_HEAL_QUEUE)
)
if not CELERY_BROKER_URL.startswith("filesystem:"):
    # Redis: BRPOP over the queues in the worker's order, the first non-empty one answering
    # (kombu's default rotates them: a heal pass would take every other turn). The embedded
    # broker reads them in order too (config/broker.py).
    CELERY_BROKER_TRANSPORT_OPTIONS["queue_order_strategy"] = "priority"
# Celery's Django fixup closes the database connection before and after every task unless it
# may reuse it: a new PostgreSQL connection costs ~4 ms of every change's way to the gateways.
# Connections are handled as a request's are instead (config/celery_app.py): CONN_MAX_AGE and
# the health check decide before each task.
CELERY_DB_REUSE_MAX = 1_000_000_000
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_TIME_LIMIT = 300
CELERY_TASK_SOFT_TIME_LIMIT = 240
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULE_FILENAME = str(DATA_DIR / "celerybeat-schedule")
# A write finding a reconcile of its gateway sent and not begun sends none (it will be read);
# a mark older than this is taken for a lost message (docs/delivery.md#bursts-of-writes).
GANTRY_RECONCILE_PENDING_SECONDS = env_int("GANTRY_RECONCILE_PENDING_SECONDS", 30, minimum=1)
# A tenant's reconciles past this many per window are sent at a lower priority
# (provisioning/fair_share.py, docs/delivery.md#fair-shares).
GANTRY_TENANT_RECONCILE_BURST = env_int("GANTRY_TENANT_RECONCILE_BURST", 10, minimum=1)
GANTRY_TENANT_RECONCILE_WINDOW = env_int("GANTRY_TENANT_RECONCILE_WINDOW", 1, minimum=1)
# The periodic heal: every gateway reconciled this often (a lost or crashed task converges).
GANTRY_RECONCILE_ALL_SECONDS = env_int("GANTRY_RECONCILE_ALL_SECONDS", 60, minimum=1)
# Operations timeline entries are kept this many days (the entry that made a kept revision is
# kept with it); replicas whose stream closed this many hours ago and never came back are
# forgotten (each Kubernetes pod is one): docs/delivery.md#what-is-kept.
GANTRY_TIMELINE_RETENTION_DAYS = env_int("GANTRY_TIMELINE_RETENTION_DAYS", 90, minimum=1)
GANTRY_DEPARTED_REPLICA_HOURS = env_int("GANTRY_DEPARTED_REPLICA_HOURS", 24, minimum=1)
# Usage: hourly rollups are recomputed this often (seconds) from the raw samples, which are kept
# this many days (longer than a billing period, so a month can be recomputed before it closes).
GANTRY_USAGE_ROLLUP_SECONDS = env_int("GANTRY_USAGE_ROLLUP_SECONDS", 60, minimum=1)
GANTRY_USAGE_SAMPLE_RETENTION_DAYS = env_int("GANTRY_USAGE_SAMPLE_RETENTION_DAYS", 45, minimum=1)
# Analytics (per route and consumer, from access logs): recomputed this often (seconds); minute
# rows are kept this many hours, hourly rows as long as the usage samples.
GANTRY_ANALYTICS_ROLLUP_SECONDS = env_int("GANTRY_ANALYTICS_ROLLUP_SECONDS", 60, minimum=1)
GANTRY_ANALYTICS_MINUTE_RETENTION_HOURS = env_int(
    "GANTRY_ANALYTICS_MINUTE_RETENTION_HOURS", 26, minimum=1
)
# The bearer token a Prometheus scrape job sends to read GET /metrics (staff sessions may too);
# empty: only staff sessions can. See docs/operations.md.
GANTRY_METRICS_TOKEN = env_str("GANTRY_METRICS_TOKEN", "") or ""
# Invoices: the previous month is closed once it has been over this long (late samples arrive).
GANTRY_BILLING_CLOSE_DELAY_MINUTES = env_int("GANTRY_BILLING_CLOSE_DELAY_MINUTES", 120, minimum=0)
# How often the worker reads the new lines of every Kubernetes gateway pod's log (seconds): one
# log read per pod per pass (docs/usage.md, "How it is collected (Kubernetes runtime)").
GANTRY_POD_ACCESS_LOG_SECONDS = env_float("GANTRY_POD_ACCESS_LOG_SECONDS", 10.0)
# How often the platform looks for backend host names whose answer expired (local runtime).
GANTRY_DNS_REFRESH_SECONDS = env_float("GANTRY_DNS_REFRESH_SECONDS", 5.0)
CELERY_BEAT_SCHEDULE = {
    "prune-audit-events": {"task": "tenants.prune_audit_events", "schedule": timedelta(hours=6)},
    "reconcile-all": {
        "task": "provisioning.reconcile_all",
        "schedule": timedelta(seconds=GANTRY_RECONCILE_ALL_SECONDS),
        # A pass not started by the next one's turn is dropped (the next does what it would).
        "options": {"expires": GANTRY_RECONCILE_ALL_SECONDS},
    },
    "prune-timeline": {"task": "provisioning.prune_timeline", "schedule": timedelta(hours=6)},
    "rollup-usage": {
        "task": "billing.rollup_usage",
        "schedule": timedelta(seconds=GANTRY_USAGE_ROLLUP_SECONDS),
    },
    "prune-usage-samples": {"task": "billing.prune_usage_samples", "schedule": timedelta(hours=6)},
    "close-billing-periods": {"task": "billing.close_periods", "schedule": timedelta(minutes=10)},
    "rollup-analytics": {
        "task": "billing.rollup_analytics",
        "schedule": timedelta(seconds=GANTRY_ANALYTICS_ROLLUP_SECONDS),
    },
    "prune-analytics": {"task": "billing.prune_analytics", "schedule": timedelta(hours=1)},
    "prune-access-logs": {"task": "provisioning.prune_access_logs", "schedule": timedelta(hours=1)},
    "collect-pod-access-logs": {
        "task": "provisioning.collect_pod_access_logs",
        "schedule": timedelta(seconds=GANTRY_POD_ACCESS_LOG_SECONDS),
        # A pass not started by the next one's turn is dropped (the next reads what it would).
        "options": {"expires": GANTRY_POD_ACCESS_LOG_SECONDS},
    },
    "refresh-backend-names": {
        "task": "provisioning.refresh_backend_names",
        "schedule": timedelta(seconds=GANTRY_DNS_REFRESH_SECONDS),
        "options": {"expires": GANTRY_DNS_REFRESH_SECONDS},
    },
}

# The port of the console and API (``make run`` binds it on 127.0.0.1); gateways may not reach it.
GANTRY_PORT = env_int("GANTRY_PORT", 8000, minimum=1)

# Egress: where tenants' gateways may not send traffic (docs/security/egress.md). The safe
# defaults (link-local, cloud metadata, localhost names, the platform's own ports) always apply.
GANTRY_EGRESS_DENIED_CIDRS = env_list("GANTRY_EGRESS_DENIED_CIDRS")
GANTRY_EGRESS_ALLOWED_CIDRS = env_list("GANTRY_EGRESS_ALLOWED_CIDRS")
GANTRY_EGRESS_PLATFORM_CIDRS = env_list("GANTRY_EGRESS_PLATFORM_CIDRS")
GANTRY_EGRESS_DENIED_HOSTS = env_list("GANTRY_EGRESS_DENIED_HOSTS")
GANTRY_EGRESS_PLATFORM_PORTS = env_list("GANTRY_EGRESS_PLATFORM_PORTS")
# Loopback backends (the README tour's `python3 -m http.server`) suit one machine running the
# local runtime; on Kubernetes a pod's loopback is its own Envoy, so production denies them.
GANTRY_EGRESS_ALLOW_LOOPBACK = env_bool("GANTRY_EGRESS_ALLOW_LOOPBACK", not PRODUCTION)
# The local runtime resolves backends' host names itself and gives Envoy the checked addresses
# (no DNS rebinding past the egress policy); Kubernetes NetworkPolicies check on the wire.
GANTRY_EGRESS_PIN_DNS = env_bool("GANTRY_EGRESS_PIN_DNS", True)
GANTRY_DNS_TIMEOUT_SECONDS = env_float("GANTRY_DNS_TIMEOUT_SECONDS", 2.0)
GANTRY_OIDC_DISCOVERY_TIMEOUT_SECONDS = env_float("GANTRY_OIDC_DISCOVERY_TIMEOUT_SECONDS", 5.0)
# The DNS servers (address or address:port) gateways and the platform resolve backends' host
# names with; empty: the host's resolver (whose answers carry no TTL: names are then resolved
# again every backend's dns.refreshRate). docs/discovery.md#dns-backends.
GANTRY_GATEWAY_DNS_RESOLVERS = env_list("GANTRY_GATEWAY_DNS_RESOLVERS")
# Shortest time a resolved name is kept (a TTL of 0 or 1 would re-resolve all the time).
GANTRY_DNS_MIN_TTL_SECONDS = env_int("GANTRY_DNS_MIN_TTL_SECONDS", 5, minimum=1)
# Kubernetes Service discovery (docs/discovery.md): how often the watcher reads which Services
# backends name, and how long each EndpointSlice watch request lasts before it re-reads the
# Service (its ports) and watches on.
GANTRY_DISCOVERY_REFRESH_SECONDS = env_float("GANTRY_DISCOVERY_REFRESH_SECONDS", 5.0)
GANTRY_DISCOVERY_WATCH_SECONDS = env_int("GANTRY_DISCOVERY_WATCH_SECONDS", 60, minimum=1)
_egress_checks = [
    ("GANTRY_EGRESS_DENIED_CIDRS", GANTRY_EGRESS_DENIED_CIDRS, parse_cidr),
    ("GANTRY_EGRESS_ALLOWED_CIDRS", GANTRY_EGRESS_ALLOWED_CIDRS, parse_cidr),
    ("GANTRY_EGRESS_PLATFORM_CIDRS", GANTRY_EGRESS_PLATFORM_CIDRS, parse_cidr),
    ("GANTRY_EGRESS_DENIED_HOSTS", GANTRY_EGRESS_DENIED_HOSTS, parse_name_pattern),
    ("GANTRY_EGRESS_PLATFORM_PORTS", GANTRY_EGRESS_PLATFORM_PORTS, parse_port_range),
    ("GANTRY_GATEWAY_DNS_RESOLVERS", GANTRY_GATEWAY_DNS_RESOLVERS, parse_resolver),
]
for _name, _values, _parse in _egress_checks:
    for _value in _values:
        try:
            _parse(_value)
        except ValueError as error:
            raise ImproperlyConfigured(f"{_name}: {error}") from None

# Delivery: where Envoy replicas find the xDS server, and the local runtime.
GANTRY_XDS_ADDRESS = env_str("GANTRY_XDS_ADDRESS", "127.0.0.1")
GANTRY_XDS_PORT = env_int("GANTRY_XDS_PORT", 18000, minimum=1)
# How xDS servers learn of a new current revision: redis | postgres | local | none (poll).
# Empty: redis with REDIS_URL, else postgres on PostgreSQL, else local (UDP on this host).
GANTRY_XDS_NOTIFIER = env_str("GANTRY_XDS_NOTIFIER", "")
if GANTRY_XDS_NOTIFIER not in ("", "redis", "postgres", "local", "none"):
    raise ImproperlyConfigured(
        f"GANTRY_XDS_NOTIFIER must be redis, postgres, local or none, not {GANTRY_XDS_NOTIFIER!r}"
    )
# Global rate limits: the service (``manage.py ratelimit_server``) gateways ask. Local gateways
# reach it at GANTRY_RATELIMIT_ADDRESS:GANTRY_RATELIMIT_PORT, Kubernetes gateways at
# GANTRY_RATELIMIT_KUBERNETES_HOST on the same port (platform/base/ratelimit.yaml). Counts are
# kept in Redis (REDIS_URL), else in the one service process's memory (make run's default).
GANTRY_RATELIMIT_ADDRESS = env_str("GANTRY_RATELIMIT_ADDRESS", "127.0.0.1")
GANTRY_RATELIMIT_PORT = env_int("GANTRY_RATELIMIT_PORT", 18081, minimum=1)
GANTRY_RATELIMIT_KUBERNETES_HOST = env_str(
    "GANTRY_RATELIMIT_KUBERNETES_HOST", "gantry-ratelimit.gantry.svc.cluster.local"
)
# How long a gateway waits for the service's answer before applying its failure mode.
GANTRY_RATELIMIT_TIMEOUT_MS = env_int("GANTRY_RATELIMIT_TIMEOUT_MS", 100, minimum=1)
# The platform's own image (what platform/ runs): Kubernetes gateway pods' init container
# enrolls with it.
GANTRY_PLATFORM_IMAGE = env_str("GANTRY_PLATFORM_IMAGE", "gantry:0.1.0")
# Enrollment attempts each xDS server accepts before asking a cluster anything: per caller
# address (refilled one every 5 s) and per gateway named (refilled two a second).
GANTRY_XDS_ENROLL_ADDRESS_BURST = env_int("GANTRY_XDS_ENROLL_ADDRESS_BURST", 5, minimum=1)
GANTRY_XDS_ENROLL_GATEWAY_BURST = env_int("GANTRY_XDS_ENROLL_GATEWAY_BURST", 30, minimum=1)
GANTRY_RUNTIME_DIR = Path(env_str("GANTRY_RUNTIME_DIR", str(DATA_DIR / "runtime")))
GANTRY_LOCAL_PORT_RANGE = env_str("GANTRY_LOCAL_PORT_RANGE", "20000-29999")
if not re.fullmatch(r"\d{1,5}-\d{1,5}", GANTRY_LOCAL_PORT_RANGE) or not (
    1
    <= int(GANTRY_LOCAL_PORT_RANGE.split("-")[0])
    <= int(GANTRY_LOCAL_PORT_RANGE.split("-")[1])
    <= 65535
):
    raise ImproperlyConfigured(
        f"GANTRY_LOCAL_PORT_RANGE must look like 20000-29999, not {GANTRY_LOCAL_PORT_RANGE!r}"
    )
GANTRY_LOCAL_LISTEN_ADDRESS = env_str("GANTRY_LOCAL_LISTEN_ADDRESS", "127.0.0.1")
# How long a scaled-down local replica finishes its open connections before it stops.
GANTRY_LOCAL_DRAIN_SECONDS = env_int("GANTRY_LOCAL_DRAIN_SECONDS", 2)
# A local replica's log is rotated (one old file kept) once it grows past this many bytes.
GANTRY_LOCAL_LOG_MAX_BYTES = env_int("GANTRY_LOCAL_LOG_MAX_BYTES", 5 * 1024 * 1024, minimum=1024)
# How often the runtime agent reads each replica's counters for metering (seconds): what a
# replica killed outright (SIGKILL) can lose at most. A graceful stop reads them last.
GANTRY_METERING_SECONDS = env_float("GANTRY_METERING_SECONDS", 10.0)
# How often the runtime agent reads each local replica's access log into the database.
GANTRY_ACCESS_LOG_SECONDS = env_float("GANTRY_ACCESS_LOG_SECONDS", 2.0)
# How often the runtime agent looks at the gateways and its processes (seconds).
GANTRY_AGENT_INTERVAL = float(env_str("GANTRY_AGENT_INTERVAL", "0.25"))
# The host name listener URLs show (what clients dial to reach this machine).
GANTRY_LOCAL_PUBLIC_HOST = env_str("GANTRY_LOCAL_PUBLIC_HOST", GANTRY_LOCAL_LISTEN_ADDRESS)

# Config revisions: how many each gateway keeps (the current one is always kept), the largest
# compiled config a gateway may have, and the largest a request renders as YAML or a diff.
GANTRY_REVISIONS_KEEP = env_int("GANTRY_REVISIONS_KEEP", 50, minimum=1)
GANTRY_MAX_COMPILED_BYTES = env_int("GANTRY_MAX_COMPILED_BYTES", 16 * 1024 * 1024, minimum=1)
GANTRY_REVISION_READ_MAX_BYTES = env_int("GANTRY_REVISION_READ_MAX_BYTES", 1024 * 1024, minimum=1)
# Per worker process: the last compile and the last accepted config of this many gateways are
# kept, so a change is compiled and validated by what it touches (provisioning.compile_memo,
# provisioning.partial_validation); 0 turns both off.
GANTRY_INCREMENTAL_GATEWAYS = env_int("GANTRY_INCREMENTAL_GATEWAYS", 8, minimum=0)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("GANTRY_LOG_LEVEL", "INFO")},
}
