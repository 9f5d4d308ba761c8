"""Meterdesk settings: one module, read from the environment.

Defaults run the embedded mode (SQLite, no Redis, the bundled Stripe emulator, emails as files).
``PRODUCTION=true`` switches on the deployment checks; every switch is listed in ``.env.example``.
"""

from pathlib import Path

import dj_database_url
from celery.schedules import crontab
from csp.constants import NONCE, NONE, SELF
from django.core.exceptions import ImproperlyConfigured

from config.env import env_bool, env_choice, env_int, env_list, env_str
from config.secret_key import secret_key_read_or_create
from portal.observability.errors import admins_parse, sample_rate_parse, sentry_init

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("VAR_DIR", str(BASE_DIR / "var")))

PRODUCTION = env_bool("PRODUCTION", False)
DEBUG = env_bool("DEBUG", False)
if PRODUCTION and DEBUG:
    raise ImproperlyConfigured("DEBUG must be off when PRODUCTION=true")

SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY:
    if PRODUCTION:
        raise ImproperlyConfigured("SECRET_KEY must be set when PRODUCTION=true")
    # Not production: this install's own random key, made on first start and kept in
    # VAR_DIR/secret_key (0600), so sessions survive a restart of `make run`.
    SECRET_KEY = secret_key_read_or_create(VAR_DIR / "secret_key")

ALLOWED_HOSTS = env_list(
    "ALLOWED_HOSTS", [] if PRODUCTION else ["127.0.0.1", "localhost", "testserver"]
)
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")
# The address developers reach the portal at; used in emails and Stripe redirect URLs.
SITE_URL = env_str("SITE_URL", f"http://127.0.0.1:{env_int('PORT', 8000)}").rstrip("/")
# The name emails greet and sign with; kept in the Site row with SITE_URL's host at each migrate
# (portal/apps.py site_sync), where allauth's emails read both.
SITE_NAME = env_str("SITE_NAME", "Meterdesk")

INSTALLED_APPS = [
    # Django's admin with the operators' site: allauth login, TOTP required (portal/admin_site.py).
    "portal.apps.OperatorAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.sites",
    "django.contrib.humanize",
    "allauth",
    "allauth.account",
    "allauth.mfa",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "djstripe",
    "csp",
    "portal",
    "billing",
    "metering",
    # The operator's own API sold through a metering proxy (endpoints as data).
    "gateway",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # WhiteNoise's and django-ratelimit's middleware as async-capable subclasses: under ASGI a
    # sync-only middleware costs every request two thread hops (portal/asgi_middleware.py).
    "portal.asgi_middleware.WhiteNoiseMiddleware",
    # Inside WhiteNoise (static files need no policy), outside everything that may answer a
    # request itself (CSRF failures, the 429 page), so every page gets the header.
    "portal.csp.ContentSecurityPolicyMiddleware",
    # Django's session, authentication and messages middleware, skipped for /v1/ requests,
    # which use none of them (portal/api/middleware.py).
    "portal.api.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "portal.api.middleware.AuthenticationMiddleware",
    "portal.api.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "portal.asgi_middleware.RatelimitMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
SITE_ID = 1

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
                "portal.context_processors.portal",
                "portal.context_processors.organisations",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------

DATABASE_URL = env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'meterdesk.sqlite3'}")
# Persistent connections (60 s) for the WSGI web and the workers. The ASGI app (config/asgi.py,
# the gateway's server) defaults this to 0, as Django says to under ASGI: each request's sync
# code may run in a thread of its own, and a connection kept in a finished thread is never
# closed (docs.djangoproject.com/en/5.2/ref/databases/, "Persistent connections").
DATABASES = {
    "default": dj_database_url.parse(DATABASE_URL, conn_max_age=env_int("DB_CONN_MAX_AGE", 60))
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Web threads and the in-process beat write at once: WAL lets readers go on, IMMEDIATE makes
    # a writer wait for the lock up front instead of failing half-way through a transaction.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis, cache, Celery ---------------------------------------------------------------------

# Unset = the embedded mode: in-process limiter, local-memory cache, eager Celery tasks.
REDIS_URL = env_str("REDIS_URL")

if REDIS_URL:
    # The cache holds the login, signup and password-reset limits' counters (django-ratelimit's
    # and allauth's) and nothing Meterdesk reads for truth: the API key cache's versions go
    # through the limiter's Redis (metering/receivers.py). Its backend lets those counters fail
    # open, with a WARNING, when Redis is down; other keys still raise (portal/rate_limits.py).
    CACHES = {
        "default": {
            "BACKEND": "portal.rate_limits.FailOpenRedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "md",
            "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.05, "SOCKET_TIMEOUT": 0.5},
        }
    }
    # django-ratelimit warns of any backend it does not list; this one is django-redis's
    # RedisCache with its atomic incr, only failing open.
    SILENCED_SYSTEM_CHECKS = ["django_ratelimit.W001"]
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    if not PRODUCTION:
        # The embedded mode is one process by design, so a local-memory cache is exact there.
        # Production runs several processes and needs REDIS_URL; the check then says so.
        SILENCED_SYSTEM_CHECKS = ["django_ratelimit.E003", "django_ratelimit.W001"]

CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", REDIS_URL or "memory://")
# Embedded mode: tasks run in the process that queues them and the beat scheduler runs in a
# thread of `manage.py serve`, so counters held in that process are rolled up by it.
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", not REDIS_URL)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TIMEZONE = "UTC"
# Workers consume this queue and tasks go to it unless routed elsewhere; several installations
# (or test runs) can share one Redis by naming their own.
CELERY_TASK_DEFAULT_QUEUE = env_str("CELERY_TASK_DEFAULT_QUEUE", "celery")
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")

# --- Limiter ------------------------------------------------------------------------------------

# The limiter's counters are billing data: give them a Redis database (or server) that nothing
# flushes or evicts (maxmemory-policy noeviction). django-redis's cache.clear() is a FLUSHDB of
# the cache's database, so sharing REDIS_URL with the cache is for development only.
# One server (redis://, rediss://, unix://), a cluster (redis-cluster://h:p,h:p) or Sentinel
# (redis-sentinel://h:p,h:p/<master>?db=N): metering/limiter/topology.py, docs/deploy.md.
METERING_REDIS_URL = env_str("METERING_REDIS_URL", REDIS_URL)
# What the API does when Redis cannot be reached: each attempt waits METERING_REDIS_TIMEOUT_MS;
# an unanswered call is sent once more, then voided (at most 3 waits; metering/limiter/redis.py).
# "closed" refuses with 503 (nothing unmetered slips through), "open" admits without counting.
METERING_FAIL_MODE = env_choice("METERING_FAIL_MODE", "closed", ("open", "closed"))
METERING_REDIS_TIMEOUT_MS = env_int("METERING_REDIS_TIMEOUT_MS", 50, minimum=1)
# Prefix of the limiter's Redis keys; the test suite gives each run its own.
METERING_KEY_PREFIX = env_str("METERING_KEY_PREFIX", "md")
# How long a resolved API key is trusted in-process before it is read again.
API_KEY_CACHE_SECONDS = env_int("API_KEY_CACHE_SECONDS", 5, minimum=0)
# How often each web process writes its keys' last-used times in one UPDATE; 0: only when the
# flush_last_used command or task runs in that process.
API_KEY_LAST_USED_FLUSH_SECONDS = env_int("API_KEY_LAST_USED_FLUSH_SECONDS", 60, minimum=0)
# The gateway (gateway/): how long each process keeps its table of live endpoints before it
# reads it again (an admin edit or an archive holds everywhere within this), and the most
# connections each process keeps open to each upstream.
GATEWAY_ROUTES_SECONDS = env_int("GATEWAY_ROUTES_SECONDS", 5, minimum=0)
GATEWAY_MAX_CONNECTIONS = env_int("GATEWAY_MAX_CONNECTIONS", 100, minimum=1)

# --- Auth and accounts ----------------------------------------------------------------------

AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "portal:dashboard"
ACCOUNT_LOGOUT_REDIRECT_URL = "portal:home"
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_EMAIL_VERIFICATION = "mandatory"
ACCOUNT_CONFIRM_EMAIL_ON_GET = False
ACCOUNT_LOGIN_ON_EMAIL_CONFIRMATION = True
ACCOUNT_EMAIL_SUBJECT_PREFIX = "[Meterdesk] "
ACCOUNT_DEFAULT_HTTP_PROTOCOL = "https" if PRODUCTION else "http"
ACCOUNT_ADAPTER = "portal.adapters.AccountAdapter"
# Signup also asks the name of the developer's organisation (optional).
ACCOUNT_FORMS = {"signup": "portal.forms.SignupForm"}
# Developers are known by their email: signup never asks for a username, so pages and emails
# name the email allauth would otherwise greet by the username it made up ("Hello jane").
# https://docs.allauth.org/en/latest/account/templates.html (user_display, ACCOUNT_USER_DISPLAY)
ACCOUNT_USER_DISPLAY = "allauth.account.utils.user_email"
# Login and signup are limited by django-ratelimit in config/urls.py; allauth keeps its limits
# for the flows we do not wrap (password reset, re-sending confirmation).
ACCOUNT_RATE_LIMITS = {"login": None, "login_failed": None, "signup": None}
RATELIMIT_VIEW = "portal.views.pages.rate_limited"
# Login is limited per client address and per email as allauth normalises it (one count for
# every spelling of an account); signup per client address.
LOGIN_RATE = env_str("LOGIN_RATE", "10/m")
SIGNUP_RATE = env_str("SIGNUP_RATE", "5/m")
# How many X-Forwarded-For entries, counted from the right, our own proxies append: 0 when the
# app is reached directly, 1 behind nginx or an AWS ALB, 2 behind ALB + nginx (or a Google Cloud
# load balancer, which appends two). Every per-address limit reads the client address through
# portal/client_address.py; django-ratelimit's "ip" key does too, through this setting.
TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 0, minimum=0)
RATELIMIT_IP_META_KEY = "portal.client_address.client_address"
# (RATELIMIT_IPV6_MASK stays at django-ratelimit's 64: one /64 is one client.)
# The cache prefix of django-ratelimit's counters, which the cache lets fail open; a count it
# cannot read is no count (django_ratelimit/core.py get_usage) rather than a refusal.
RATELIMIT_CACHE_PREFIX = "rl:"
RATELIMIT_FAIL_OPEN = True

# Second factor (allauth.mfa, https://docs.allauth.org/en/latest/mfa/configuration.html): an
# authenticator app (TOTP) and recovery codes; no WebAuthn. Operators must enrol before the admin
# opens (portal/admin_site.py); for developers it is optional, at /accounts/2fa/.
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes"]
# The name authenticator apps show beside the account's email.
MFA_TOTP_ISSUER = env_str("MFA_TOTP_ISSUER", "Meterdesk")
# allauth counts wrong codes under its "login_failed" limit, which ACCOUNT_RATE_LIMITS turns off;
# these forms limit the codes (authenticator or recovery) one user may try (portal/mfa_forms.py).
MFA_FORMS = {
    "authenticate": "portal.mfa_forms.AuthenticateForm",
    "reauthenticate": "portal.mfa_forms.ReauthenticateForm",
}
SECOND_FACTOR_RATE = env_str("SECOND_FACTOR_RATE", "5/5m")

# --- Email ----------------------------------------------------------------------------------

EMAIL_FILE_PATH = env_str("EMAIL_FILE_PATH", str(VAR_DIR / "mail"))
EMAIL_BACKEND = env_str(
    "EMAIL_BACKEND",
    "django.core.mail.backends.smtp.EmailBackend"
    if PRODUCTION
    else "django.core.mail.backends.filebased.EmailBackend",
)
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", False)
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 10)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "Meterdesk <noreply@meterdesk.local>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL

# --- Stripe (dj-stripe) -------------------------------------------------------------------------

STRIPE_LIVE_MODE = env_bool("STRIPE_LIVE_MODE", False)
STRIPE_LIVE_SECRET_KEY = env_str("STRIPE_LIVE_SECRET_KEY")
STRIPE_TEST_SECRET_KEY = env_str("STRIPE_TEST_SECRET_KEY")
STRIPE_LIVE_PUBLIC_KEY = env_str("STRIPE_LIVE_PUBLIC_KEY")
STRIPE_TEST_PUBLIC_KEY = env_str("STRIPE_TEST_PUBLIC_KEY")
STRIPE_API_VERSION = "2026-05-27.dahlia"
# The bundled emulator stands in for Stripe when no key is configured (never in production).
STRIPE_EMULATOR_PORT = env_int("STRIPE_EMULATOR_PORT", 12111)
# Where `make run`'s emulator keeps its customers, subscriptions and invoices across restarts.
STRIPE_EMULATOR_STATE_FILE = env_str(
    "STRIPE_EMULATOR_STATE_FILE", str(VAR_DIR / "stripe-emulator.json")
)
STRIPE_USE_EMULATOR = not (STRIPE_LIVE_SECRET_KEY or STRIPE_TEST_SECRET_KEY) and not PRODUCTION
if STRIPE_USE_EMULATOR:
    # dj-stripe only accepts keys shaped like Stripe's (sk_test_ + 24 or more letters/digits).
    STRIPE_TEST_SECRET_KEY = "sk_test_MeterdeskEmulator000000000000"  # noqa: S105
STRIPE_API_BASE = env_str(
    "STRIPE_API_BASE",
    f"http://127.0.0.1:{STRIPE_EMULATOR_PORT}" if STRIPE_USE_EMULATOR else "",
)
# billing.apps points stripe.api_base at STRIPE_API_BASE when it is set.
if PRODUCTION and STRIPE_LIVE_MODE and not STRIPE_LIVE_SECRET_KEY:
    raise ImproperlyConfigured("STRIPE_LIVE_MODE=true needs STRIPE_LIVE_SECRET_KEY")
# Every Stripe call gets a deadline; a hung call must not hold a worker.
STRIPE_TIMEOUT_SECONDS = env_int("STRIPE_TIMEOUT_SECONDS", 10, minimum=1)
# Webhook bodies past this size get 413 before they are read (billing/services/deliveries.py
# says why 512 KiB); keep it at or under API_MAX_BODY_BYTES, which Django enforces first.
STRIPE_WEBHOOK_MAX_BYTES = env_int("STRIPE_WEBHOOK_MAX_BYTES", 512 * 1024, minimum=1024)
STRIPE_METER_EVENT_NAME = env_str("STRIPE_METER_EVENT_NAME", "meterdesk_api_units")
DJSTRIPE_FOREIGN_KEY_TO_FIELD = "id"
DJSTRIPE_WEBHOOK_VALIDATION = "verify_signature"
# dj-stripe's subscriber stays the user (accounts are one per user); Account.stripe_customer
# links the other way, which keeps dj-stripe's migrations free of a cycle through our apps.
# Days a past-due account keeps its paid tier before it drops to the default tier.
BILLING_GRACE_DAYS = env_int("BILLING_GRACE_DAYS", 7, minimum=0)
# Usage reporting (billing/services/reports/). A window is reported this long after it closes,
# which must exceed the rollup's lag (it runs every minute), so its rows are all in before it is
# claimed.
USAGE_REPORT_GRACE_SECONDS = env_int("USAGE_REPORT_GRACE_SECONDS", 300, minimum=60)
# First back-off step after a failed meter event call; doubles per try, with full jitter.
USAGE_REPORT_BACKOFF_MS = env_int("USAGE_REPORT_BACKOFF_MS", 500, minimum=0)

# --- Celery beat: the jobs (`celery -A config beat`; in `manage.py serve` when embedded) ---

# Each job is a thin task around a service, idempotent, with a management command of the same
# purpose. "expires" drops ticks a stopped worker missed instead of running them all at once.
CELERY_BEAT_SCHEDULE = {
    "rollup-usage": {
        "task": "metering.tasks.rollup_usage",
        "schedule": 60.0,
        "options": {"expires": 55},
    },
    "flush-api-key-last-used": {
        "task": "portal.tasks.flush_api_key_last_used",
        "schedule": 60.0,
        "options": {"expires": 55},
    },
    # Hourly, once the last hour's grace is over (the rollup has caught up with it).
    "report-usage": {
        "task": "billing.tasks.report_usage",
        "schedule": crontab(minute=(USAGE_REPORT_GRACE_SECONDS // 60 + 1) % 60),
        "options": {"expires": 50 * 60},
    },
    # A period's final window goes out minutes after the period ends, before Stripe finalizes
    # the invoice that bills it.
    "report-usage-closed-periods": {
        "task": "billing.tasks.report_usage_closed_periods",
        "schedule": 300.0,
        "options": {"expires": 280},
    },
    # A tier switch reaches Stripe once the usage before its minute is reported and confirmed.
    "apply-tier-switches": {
        "task": "billing.tasks.apply_tier_switches",
        "schedule": 60.0,
        "options": {"expires": 55},
    },
    "send-usage-alerts": {
        "task": "metering.tasks.send_usage_alerts",
        "schedule": 300.0,
        "options": {"expires": 280},
    },
    "send-budget-alerts": {
        "task": "billing.tasks.send_budget_alerts",
        "schedule": 300.0,
        "options": {"expires": 280},
    },
    "enforce-billing-grace": {
        "task": "billing.tasks.account_enforce_grace_task",
        "schedule": crontab(minute=23),
        "options": {"expires": 50 * 60},
    },
    # Daily, off the hour, in case a subscription webhook was lost.
    "reconcile-subscriptions": {
        "task": "billing.tasks.subscriptions_reconcile_task",
        "schedule": crontab(hour=3, minute=17),
        "options": {"expires": 12 * 3600},
    },
    # Daily, after the subscription reconcile: our usage reports against Stripe's meter summaries.
    "reconcile-usage": {
        "task": "billing.tasks.usage_reconcile_task",
        "schedule": crontab(hour=4, minute=41),
        "options": {"expires": 12 * 3600},
    },
}

# --- REST API -------------------------------------------------------------------------------

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": [],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    # Per-tier rate limit + quota + usage count in one limiter call (portal/api/throttling.py).
    "DEFAULT_THROTTLE_CLASSES": ["portal.api.throttling.TierThrottle"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
    # Every API error is an RFC 9457 application/problem+json document (portal/api/problems.py).
    "EXCEPTION_HANDLER": "portal.api.problems.problem_exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Meterdesk API",
    "DESCRIPTION": (
        "The metered REST API sold through this portal.\n\n"
        "**Keys.** Create one on the portal's API keys page and send it as "
        "`Authorization: Bearer <key>` or `X-API-Key: <key>`.\n\n"
        "**Units.** Each endpoint states its cost in units and the tiers that may call it; "
        "only successful (2xx) calls are billed.\n\n"
        "**Limits.** Every metered response carries `RateLimit-Policy` and `RateLimit` (IETF "
        "draft-ietf-httpapi-ratelimit-headers): the `minute` policy is the tier's rate limit in "
        "units, the `period` policy (where the quota can refuse calls) the billing period's "
        "units. `X-RateLimit-Limit`, `X-RateLimit-Remaining` and `X-RateLimit-Reset` (epoch "
        "seconds) describe the one closest to refusing: the one with fewer units left, or on a "
        "refused call the one that refused it (remaining 0, reset when `Retry-After` says).\n\n"
        "**Errors** are `application/problem+json` (RFC 9457): `type` links to an explanation, "
        "`detail` says what went wrong; 429s carry `Retry-After`; problems an upgrade solves "
        "carry the pricing page as `upgrade_url`."
    ),
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    # drf-spectacular's default hook, then the operator's own endpoints sold through the
    # gateway (gateway/schema.py), read from the database when the schema is generated.
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "gateway.schema.operator_endpoints_hook",
    ],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # validatorUrl None: Swagger UI would otherwise send the schema's URL to swagger.io.
    "SWAGGER_UI_SETTINGS": {
        # No deep links: Swagger UI puts each one as a link inside the operation's button, which
        # keyboards and screen readers cannot reach (axe: nested-interactive, serious).
        "deepLinking": False,
        "validatorUrl": None,
        "persistAuthorization": True,
    },
}
# Request bodies past this size get 413 before they are parsed.
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("API_MAX_BODY_BYTES", 1024 * 1024)

# --- Static files, i18n ---------------------------------------------------------------------

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if PRODUCTION
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
# Outside production, WhiteNoise serves the files where the apps keep them (Django's finders),
# read once at start-up, whatever DEBUG says: `make run` needs no collectstatic step and never
# serves a stale copy. A changed file is picked up on the next start (or at once with
# DEBUG=true, which makes WhiteNoise look again on every request). Production serves
# collectstatic's hashed, compressed copies from STATIC_ROOT only.
# (https://whitenoise.readthedocs.io/en/stable/django.html#WHITENOISE_USE_FINDERS)
WHITENOISE_USE_FINDERS = not PRODUCTION
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Security -------------------------------------------------------------------------------

SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False  # the copy-to-clipboard script never needs it; forms post it
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
# Enforced, never report-only (django-csp 4's format:
# https://django-csp.readthedocs.io/en/latest/configuration.html). Nothing is loaded from
# elsewhere: no inline script runs without the response's nonce, no inline style or event
# handler at all. portal/csp.py adds the nonce to every page and Stripe's hosted pages to
# form-action; /v1/ answers JSON and gets no header (the hot path builds no policy).
CONTENT_SECURITY_POLICY = {
    "EXCLUDE_URL_PREFIXES": ["/v1/"],
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF, NONCE],
        "style-src": [SELF],
        # data: for the MFA QR code allauth renders as a data: URI, and Swagger UI's icons.
        "img-src": [SELF, "data:"],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [NONE],
        "frame-ancestors": [NONE],
        "form-action": [SELF],
    },
}
# Where Stripe's hosted pages live (Checkout: checkout.stripe.com, the customer portal:
# billing.stripe.com); a custom Checkout domain goes here. Forms on our pages end there.
STRIPE_HOSTED_PAGE_ORIGINS = env_list(
    "STRIPE_HOSTED_PAGE_ORIGINS", ["https://checkout.stripe.com", "https://billing.stripe.com"]
)
if PRODUCTION:
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    # /healthz is probed by load balancers over plain HTTP inside the network.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$"]

# --- Errors, logs, metrics (portal/observability/) --------------------------------------------

# Sentry: API keys (their secret part), Stripe secrets, email addresses, credential headers and
# request bodies are scrubbed before an event leaves; no tracing unless a rate is given.
SENTRY_DSN = env_str("SENTRY_DSN")
if SENTRY_DSN:
    sentry_init(
        dsn=SENTRY_DSN,
        environment=env_str("SENTRY_ENVIRONMENT", "production" if PRODUCTION else "development"),
        release=env_str("SENTRY_RELEASE") or None,
        traces_sample_rate=sample_rate_parse(
            "SENTRY_TRACES_SAMPLE_RATE", env_str("SENTRY_TRACES_SAMPLE_RATE")
        ),
    )
# Without Sentry, who is emailed each 500 and each failed Celery task (plain text, scrubbed like
# a Sentry event): "Jane Doe <jane@example.com>, ops@example.com". Empty: nobody.
ADMINS = admins_parse(env_str("ADMINS"))
EMAIL_SUBJECT_PREFIX = "[Meterdesk] "
# Error emails (and DEBUG's error page) hide session and CSRF cookies too.
DEFAULT_EXCEPTION_REPORTER_FILTER = "portal.observability.errors.ReportFilter"
# /metrics answers "Authorization: Bearer <METRICS_TOKEN>" only; unset, it is a 404.
METRICS_TOKEN = env_str("METRICS_TOKEN")
if METRICS_TOKEN and len(METRICS_TOKEN) < 16:
    raise ImproperlyConfigured("METRICS_TOKEN must be at least 16 characters (e.g. 32 random hex)")
# The gauges read at scrape time (the portal reaches billing's and metering's through here).
METRICS_COLLECTORS = ["metering.metrics.RollupLagCollector", "billing.metrics.BillingCollector"]
# "json": one JSON object per line (portal/observability/logs.py).
LOG_FORMAT = env_choice("LOG_FORMAT", "plain", ("plain", "json"))
# Sentry's LoggingIntegration takes every ERROR record but Django's request logger's, which
# SentryRequestErrorHandler covers (the API's 500s); without Sentry, Django's and Celery's
# errors are mailed.
_ERROR_MAIL = [] if SENTRY_DSN else ["mail_admins"]
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "require_debug_false": {"()": "django.utils.log.RequireDebugFalse"},
        "one_report_per_request": {"()": "portal.observability.errors.OneReportPerRequest"},
        "unexpected_errors_only": {"()": "portal.observability.errors.UnexpectedErrorsOnly"},
    },
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
        "json": {"()": "portal.observability.logs.JsonLogFormatter"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT},
        "mail_admins": {
            "class": "portal.observability.errors.AdminEmailScrubbingHandler",
            "level": "ERROR",
            "filters": ["require_debug_false", "unexpected_errors_only"],
            "include_html": False,
        },
        "sentry": {
            "class": "portal.observability.errors.SentryRequestErrorHandler",
            "level": "ERROR",
        },
    },
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        # Replaces Django's default handlers for it (a DEBUG-only console, mail_admins).
        "django": {"handlers": _ERROR_MAIL},
        "django.request": {"handlers": ["sentry"], "filters": ["one_report_per_request"]},
        # A task that raised (Celery logs it here; CeleryIntegration reports it to Sentry).
        "celery.app.trace": {"handlers": _ERROR_MAIL},
        # stripe-python logs every request at INFO; our services log what matters.
        "django.server": {"level": "WARNING"},
        "stripe": {"level": "WARNING"},
    },
}
