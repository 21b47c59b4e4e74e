"""Vigil settings: one module, every deployment choice read from the environment.

Two modes, chosen by ``VIGIL_ENV``:

* ``development`` (default): the embedded demo. SQLite file in ``var/``, Celery tasks run eagerly
  in-process, a secret key generated once into ``var/secret_key``.
* ``production``: ``SECRET_KEY`` (or ``SECRET_KEY_FILE``) and ``ALLOWED_HOSTS`` are required,
  HTTPS-only cookies and HSTS; ``manage.py check --deploy`` is clean.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("VIGIL_VAR_DIR") or BASE_DIR / "var")  # empty counts as unset


def envbool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    if value.lower() in {"1", "true", "yes", "on"}:
        return True
    if value.lower() in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (true/false), got {value!r}")


def envint(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be an integer, got {value!r}") from exc


def envlist(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def envsecret(name: str) -> str | None:
    """A secret from ``NAME`` or from the file named by ``NAME_FILE`` (Docker/K8s secrets)."""
    if os.environ.get(f"{name}_FILE"):
        return Path(os.environ[f"{name}_FILE"]).read_text().strip()
    return os.environ.get(name) or None


def _demo_secret_key() -> str:
    # The demo must survive restarts without logging everyone out, so the key is kept on disk.
    key_file = VAR_DIR / "secret_key"
    if not key_file.exists():
        VAR_DIR.mkdir(parents=True, exist_ok=True)
        key_file.write_text(secrets.token_urlsafe(50))
        key_file.chmod(0o600)
    return key_file.read_text().strip()


VIGIL_ENV = os.environ.get("VIGIL_ENV", "development")
if VIGIL_ENV not in {"development", "production"}:
    raise ImproperlyConfigured(f"VIGIL_ENV must be development or production, got {VIGIL_ENV!r}")
PRODUCTION = VIGIL_ENV == "production"

DEBUG = envbool("DEBUG", default=not PRODUCTION)
if PRODUCTION and DEBUG:
    raise ImproperlyConfigured("DEBUG must be off in production")

SECRET_KEY = envsecret("SECRET_KEY") or ""
if not SECRET_KEY:
    if PRODUCTION:
        raise ImproperlyConfigured("SECRET_KEY (or SECRET_KEY_FILE) is required in production")
    SECRET_KEY = _demo_secret_key()

ALLOWED_HOSTS = envlist("ALLOWED_HOSTS", "" if PRODUCTION else "127.0.0.1,localhost,[::1]")
if PRODUCTION and not ALLOWED_HOSTS:
    raise ImproperlyConfigured("ALLOWED_HOSTS is required in production")
CSRF_TRUSTED_ORIGINS = envlist("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "simple_history",
    # Vigil. Bottom layers first: audit and accounts import no other Vigil app.
    "governance.audit",
    "accounts",
    "registry",
    "monitoring",
    "incidents",
    "governance",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "config.security.ContentSecurityPolicyMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "accounts.middleware.IdleTimeoutMiddleware",
    "accounts.middleware.AccessDeniedAuditMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "simple_history.middleware.HistoryRequestMiddleware",
]

if PRODUCTION:
    # Serves the collected, hashed static files; in development runserver serves them.
    MIDDLEWARE.insert(1, "whitenoise.middleware.WhiteNoiseMiddleware")

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "accounts.context_processors.roles",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------
DATABASE_URL = os.environ.get("DATABASE_URL") or f"sqlite:///{VAR_DIR / 'vigil.sqlite3'}"
if DATABASE_URL.startswith("sqlite:///"):
    VAR_DIR.mkdir(parents=True, exist_ok=True)
DATABASES = {
    # Health checks: a persistent connection broken by a database restart is replaced before
    # the next request uses it, instead of failing that request.
    "default": dj_database_url.parse(
        DATABASE_URL, conn_max_age=envint("DB_CONN_MAX_AGE", 60), conn_health_checks=True
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # IMMEDIATE transactions take the write lock at BEGIN, so two writers never both read the
    # audit chain head and then race to append (the chain must never fork).
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    DATABASES["default"]["CONN_MAX_AGE"] = 0
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Auth and sessions ----------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 12},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "registry:inventory"
LOGOUT_REDIRECT_URL = "accounts:login"

# HIPAA automatic logoff: a session idle this long is ended (and the logout audited).
VIGIL_IDLE_TIMEOUT_SECONDS = envint("VIGIL_IDLE_TIMEOUT_MINUTES", 15) * 60
#: How long a break-glass grant opens one case outside the reader's sites.
VIGIL_BREAK_GLASS_MINUTES = envint("VIGIL_BREAK_GLASS_MINUTES", 60)
# The idle check is the middleware (it audits the timeout); the server-side expiry is a backstop.
SESSION_COOKIE_AGE = VIGIL_IDLE_TIMEOUT_SECONDS + 3600
SESSION_SAVE_EVERY_REQUEST = True
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
# Lock-out: this many failed logins for one username within the window locks it for the window.
VIGIL_LOCKOUT_THRESHOLD = envint("VIGIL_LOCKOUT_THRESHOLD", 5)
VIGIL_LOCKOUT_WINDOW_SECONDS = envint("VIGIL_LOCKOUT_MINUTES", 15) * 60

# Key for pseudonymising case keys (HMAC); defaults to a derivation of SECRET_KEY.
VIGIL_PSEUDONYM_KEY = envsecret("VIGIL_PSEUDONYM_KEY") or f"pseudonym:{SECRET_KEY}"

# --- Security (production) ------------------------------------------------------------------
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
if PRODUCTION:
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_SSL_REDIRECT = envbool("SECURE_SSL_REDIRECT", True)
    SECURE_HSTS_SECONDS = envint("SECURE_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = envbool("SECURE_HSTS_PRELOAD", True)
    if envbool("SECURE_PROXY_SSL_HEADER", False):
        SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# --- Static files (shipped with the project: hospitals are often air-gapped) ----------------
STATIC_URL = "static/"
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", BASE_DIR / "staticfiles"))
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
            if PRODUCTION
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}
MEDIA_ROOT = Path(os.environ.get("MEDIA_ROOT", VAR_DIR / "media"))

# --- i18n / time ----------------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- E-mail ---------------------------------------------------------------------------------
EMAIL_BACKEND = os.environ.get(
    "EMAIL_BACKEND",
    "django.core.mail.backends.smtp.EmailBackend"
    if PRODUCTION
    else "django.core.mail.backends.console.EmailBackend",
)
EMAIL_HOST = os.environ.get("EMAIL_HOST", "localhost")
EMAIL_PORT = envint("EMAIL_PORT", 25)
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = envsecret("EMAIL_HOST_PASSWORD") or ""
# Alerts and incidents also go to a paging tool's webhook, signed with HMAC-SHA256 (optional).
VIGIL_ALERT_WEBHOOK_URL = os.environ.get("VIGIL_ALERT_WEBHOOK_URL", "")
VIGIL_ALERT_WEBHOOK_SECRET = envsecret("VIGIL_ALERT_WEBHOOK_SECRET") or ""
EMAIL_USE_TLS = envbool("EMAIL_USE_TLS", False)
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "vigil@localhost")

# --- Celery ---------------------------------------------------------------------------------
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "")
# No broker configured: run tasks eagerly in-process (the embedded demo and unit tests).
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_RESULT_BACKEND = os.environ.get("CELERY_RESULT_BACKEND", CELERY_BROKER_URL or None)
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
# The queue tasks go to (and sub-tasks a worker sends, e.g. the monitoring fan-out).
CELERY_TASK_DEFAULT_QUEUE = os.environ.get("CELERY_TASK_DEFAULT_QUEUE", "celery")

# A bulk request carries up to 10,000 predictions (several MB of JSON); Django's 2.5 MB default
# would refuse it before the API could answer per item.
DATA_UPLOAD_MAX_MEMORY_SIZE = envint("VIGIL_MAX_REQUEST_MB", 50) * 1024 * 1024

# --- REST API -------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.ServiceTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["accounts.permissions.RolePermission"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "rest_framework.filters.OrderingFilter",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "accounts.api.exception_handler",
    "DEFAULT_THROTTLE_RATES": {},
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Vigil API",
    "DESCRIPTION": "Registry, gate, monitoring, incidents and audit of clinical ML models.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # The schema maps the whole system: logged-in people only, never anonymous or a token.
    "SERVE_PERMISSIONS": ["accounts.api_permissions.IsHumanUser"],
    # No call home: Swagger UI would otherwise send the schema to validator.swagger.io.
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "validatorUrl": None},
    # Several records have a "status" field with different choices: name each enum.
    "ENUM_NAME_OVERRIDES": {
        "ModelStatusEnum": "registry.models.ModelStatus",
        "VersionStatusEnum": "registry.models.VersionStatus",
        "ReleaseKindEnum": "governance.models.ReleaseKind",
        "EvidenceKindEnum": "governance.models.EvidenceFile.Kind",
    },
}

# --- Logging: never patient identifiers; structured enough to grep --------------------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

SIMPLE_HISTORY_HISTORY_CHANGE_REASON_USE_TEXT_FIELD = True

# --- Retention (issue 7) --------------------------------------------------------------------
# How long each kind of record is kept, in days. Only prediction events are ever purged (by
# ``governance.retention.purge_due``, daily, honouring legal holds); their outcomes, overrides
# and review cases go with them, since they are facts about that event and cannot outlive it.
# Daily profiles, metric results, alerts, incidents and the audit trail are aggregates or
# governance records and are never purged by Vigil.
#
# * prediction_event, default 7 years (2557 days): above HIPAA's six-year documentation rule and
#   the common adult medical-record periods of US states, with a year's margin for late outcomes
#   and litigation notices. Below a year is refused (a "7" meant as years would purge all but
#   a week).
# * governance (releases, signatures, RACI, reviews, legal holds) and audit (the audit trail),
#   default 10 years: at least six years is required (ImproperlyConfigured below that), and they
#   must outlive the events whose decisions they explain.
RETENTION_MIN_GOVERNANCE_DAYS = 6 * 365
RETENTION_MIN_EVENT_DAYS = 365


def retention_days(periods: dict[str, int]) -> dict[str, int]:
    """Check the retention periods in force; return them unchanged or raise."""
    for kind in ("governance", "audit"):
        if periods.get(kind, 0) < RETENTION_MIN_GOVERNANCE_DAYS:
            raise ImproperlyConfigured(
                f"VIGIL_RETENTION_{kind.upper()}_DAYS must be at least "
                f"{RETENTION_MIN_GOVERNANCE_DAYS} days (six years), got {periods.get(kind)}"
            )
    if periods.get("prediction_event", 0) < RETENTION_MIN_EVENT_DAYS:
        raise ImproperlyConfigured(
            f"VIGIL_RETENTION_PREDICTION_EVENT_DAYS must be at least {RETENTION_MIN_EVENT_DAYS} "
            f"days, got {periods.get('prediction_event')}"
        )
    return periods


VIGIL_RETENTION_DAYS = retention_days(
    {
        "prediction_event": envint("VIGIL_RETENTION_PREDICTION_EVENT_DAYS", 2557),
        "governance": envint("VIGIL_RETENTION_GOVERNANCE_DAYS", 3653),
        "audit": envint("VIGIL_RETENTION_AUDIT_DAYS", 3653),
    }
)
# Events deleted per transaction by the purge: bounded memory and short locks.
VIGIL_RETENTION_PURGE_CHUNK = envint("VIGIL_RETENTION_PURGE_CHUNK", 2000)
# --- end of retention -----------------------------------------------------------------------
