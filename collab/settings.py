"""Django settings: every value read from the environment here, and only here."""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from whitenoise.compress import Compressor

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("PALIMPSEST_VAR_DIR", BASE_DIR / "var"))
VAR_DIR.mkdir(parents=True, exist_ok=True)


def _env_bool(name: str, default: bool) -> bool:
    """Read a yes/no environment variable."""
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _env_int(name: str, default: int) -> int:
    """Read an integer environment variable."""
    value = os.environ.get(name)
    return default if value in (None, "") else int(value)


DEBUG = _env_bool("DEBUG", False)
# A fixed development key is public: `collab.server` refuses to serve anything but loopback
# with it unless DEBUG is on (see `PUBLIC_DEVELOPMENT_KEY`).
DEVELOPMENT_SECRET_KEY = "palimpsest-insecure-development-key-change-me"
SECRET_KEY = os.environ.get("SECRET_KEY") or DEVELOPMENT_SECRET_KEY
ALLOWED_HOSTS = [
    h.strip() for h in os.environ.get("ALLOWED_HOSTS", "127.0.0.1,localhost,[::1]").split(",")
]
HOST = os.environ.get("HOST", "127.0.0.1")
PORT = _env_int("PORT", 8000)
# The browser origins (scheme://host[:port], exactly as a browser sends them) whose pages may
# post forms and open WebSockets with their session: Django's CSRF check and the WebSocket
# Origin check (collab/realtime/auth.py) read this one list.
CSRF_TRUSTED_ORIGINS = [
    o.strip().lower()
    for o in os.environ.get(
        "CSRF_TRUSTED_ORIGINS", f"http://localhost:{PORT},http://127.0.0.1:{PORT}"
    ).split(",")
    if o.strip()
]
REDIS_URL = os.environ.get("REDIS_URL", "")
# Every Redis client (the channel layer, Celery's broker) gives up on a silent server after
# these many seconds (connecting, and waiting for an answer).
REDIS_CONNECT_TIMEOUT_SECONDS = float(os.environ.get("REDIS_CONNECT_TIMEOUT_SECONDS", "2"))
REDIS_SOCKET_TIMEOUT_SECONDS = float(os.environ.get("REDIS_SOCKET_TIMEOUT_SECONDS", "3"))

# -- HTTPS in production (README, "Production settings"); all off by default, for local HTTP.
# Cookies only over HTTPS.
SESSION_COOKIE_SECURE = _env_bool("SESSION_COOKIE_SECURE", False)
CSRF_COOKIE_SECURE = _env_bool("CSRF_COOKIE_SECURE", False)
# Tell browsers to use HTTPS only, for this long (0: no Strict-Transport-Security header).
SECURE_HSTS_SECONDS = _env_int("SECURE_HSTS_SECONDS", 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = _env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = _env_bool("SECURE_HSTS_PRELOAD", False)
SECURE_SSL_REDIRECT = _env_bool("SECURE_SSL_REDIRECT", False)
# The load balancer's health check and Prometheus's scrape speak plain HTTP to the process.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^metrics$"]
# Behind a TLS-terminating proxy: "HEADER=value", e.g. "HTTP_X_FORWARDED_PROTO=https". Only set
# it when the proxy always sets (or strips) that header, or clients could claim HTTPS.
_proxy_ssl = os.environ.get("SECURE_PROXY_SSL_HEADER", "")
SECURE_PROXY_SSL_HEADER = tuple(_proxy_ssl.split("=", 1)) if "=" in _proxy_ssl else None

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "django_celery_beat",
    "django_celery_results",
    "collab",
    "events",
    "tasks",
    "frontend",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Serves the built bundle (hashed names, precompressed) from STATIC_ROOT: no CDN, no
    # separate web server needed, and under daphne Django serves no static files itself.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "collab.urls"
ASGI_APPLICATION = "collab.asgi.application"

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

_default_db = f"sqlite:///{VAR_DIR / 'palimpsest.sqlite3'}"
DATABASES = {
    # CONN_MAX_AGE=0: under ASGI each request thread must not keep a connection alive.
    "default": dj_database_url.parse(os.environ.get("DATABASE_URL", _default_db), conn_max_age=0)
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["OPTIONS"] = {
        # IMMEDIATE takes the write lock at BEGIN, so concurrent appenders queue instead of
        # failing with "database is locked" on lock upgrade; WAL lets readers run meanwhile.
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        # No automatic checkpoints: one would run inside whichever commit crosses the
        # threshold and fsync there (~11 ms spikes at p99 on the append path). The hub
        # checkpoints from a thread of its own instead (events/storage.py, collab/realtime/hub.py).
        # journal_size_limit: a WAL reset after a checkpoint truncates the file to 64 MiB
        # (fan-out runs left it at 118-208 MB otherwise; events.storage.checkpoint).
        "init_command": (
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA wal_autocheckpoint=0;"
            " PRAGMA journal_size_limit=67108864;"
        ),
    }
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test.sqlite3")}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            # Pub/sub delivery measured far faster than RedisChannelLayer for fan-out; it is
            # at most once, so rooms catch up from the event log (see collab/realtime/hub.py).
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            # Timeouts: a Redis that stops answering fails a publish or a subscribe in
            # seconds instead of holding it for good (redis-py waits forever by default).
            "CONFIG": {
                "hosts": [
                    {
                        "address": REDIS_URL,
                        "socket_connect_timeout": REDIS_CONNECT_TIMEOUT_SECONDS,
                        "socket_timeout": REDIS_SOCKET_TIMEOUT_SECONDS,
                    }
                ]
            },
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/accounts/login/"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)  # WhiteNoise warns at start when it is missing
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    # `collectstatic` (run by `make run`) writes content-hashed, gzipped copies; pages link the
    # hashed names, so a new build is never mixed with a cached old one.
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
# Source maps (3 MB) are fetched only by a developer's tools: compressing them with brotli at
# its best level took half of collectstatic's 12 s, which every `make stack` start pays.
WHITENOISE_SKIP_COMPRESS_EXTENSIONS = (*Compressor.SKIP_COMPRESS_EXTENSIONS, "map")

# PALIMPSEST_LOG_FORMAT=json: one JSON object per line, for a log shipper; realtime records
# carry `document_id` and `connection_id` fields.
PALIMPSEST_LOG_FORMAT = os.environ.get("PALIMPSEST_LOG_FORMAT", "text")
if PALIMPSEST_LOG_FORMAT not in ("text", "json"):
    raise ImproperlyConfigured("PALIMPSEST_LOG_FORMAT must be text or json")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(process)d %(message)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            **({"formatter": "json"} if PALIMPSEST_LOG_FORMAT == "json" else {}),
        }
    },
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {
        "daphne": {"level": "WARNING"},
        "django.channels.server": {"level": "WARNING"},
        # Celery logs each task's return value on success; export steps return the document
        # itself, which does not belong in logs. Failures are still logged (tasks/signals.py).
        "celery.app.trace": {"level": "WARNING"},
    },
}

# Realtime limits: what one client may cost, so a hostile or slow one never hurts the others.
# Largest message a client may send (a 5 MB paste is one update); `collab.server` also sets
# daphne's message and frame limits from it. Bigger ones are refused with 4413; the server's
# own messages (a large document's state) are never refused for size.
PALIMPSEST_MAX_FRAME_BYTES = _env_int("PALIMPSEST_MAX_FRAME_BYTES", 16 * 1024 * 1024)
# Bytes queued for one socket beyond Twisted's buffer, and how long a reader may stay over
# that before it is closed with 4508 and its queue freed: a slow phone catches up within
# seconds, while a socket that never reads would otherwise hold memory without end.
PALIMPSEST_SEND_BUFFER_BYTES = _env_int("PALIMPSEST_SEND_BUFFER_BYTES", 8 * 1024 * 1024)
PALIMPSEST_SLOW_READER_SECONDS = float(os.environ.get("PALIMPSEST_SLOW_READER_SECONDS", "10"))
# Bytes a socket has delivered that its consumer has not handled yet; past this the socket
# is not read, so TCP pushes back on a client that floods faster than its edits are stored.
PALIMPSEST_RECEIVE_BUFFER_BYTES = _env_int("PALIMPSEST_RECEIVE_BUFFER_BYTES", 4 * 1024 * 1024)
# Answers carrying much of the document (SyncStep1 from a state vector more than
# PALIMPSEST_FAR_BEHIND_CLOCKS behind, query-awareness) go out at most once per interval per
# connection; requests in between are merged into the next answer (each costs the whole
# document in CPU and in the send queue, so asking in a loop must not multiply that).
PALIMPSEST_FULL_STATE_SECONDS = float(os.environ.get("PALIMPSEST_FULL_STATE_SECONDS", "1"))
PALIMPSEST_FAR_BEHIND_CLOCKS = _env_int("PALIMPSEST_FAR_BEHIND_CLOCKS", 10_000)
# Open document sockets per user per process: many sockets times large frames is memory.
PALIMPSEST_CONNECTIONS_PER_USER = _env_int("PALIMPSEST_CONNECTIONS_PER_USER", 32)
# Awareness: client ids one connection may speak for, and the size of one state (a caret and
# a name take a few hundred bytes). Over either: 4400.
PALIMPSEST_AWARENESS_CLIENTS_MAX = _env_int("PALIMPSEST_AWARENESS_CLIENTS_MAX", 8)
PALIMPSEST_AWARENESS_STATE_BYTES = _env_int("PALIMPSEST_AWARENESS_STATE_BYTES", 16 * 1024)
# Updates held per document while a dependency is missing (honest clients almost never cause
# one): bounded in count and bytes, since each is kept and re-tried until the dependency comes.
PALIMPSEST_PARKED_MAX_UPDATES = _env_int("PALIMPSEST_PARKED_MAX_UPDATES", 200)
PALIMPSEST_PARKED_MAX_BYTES = _env_int("PALIMPSEST_PARKED_MAX_BYTES", 4 * 1024 * 1024)
# Appends queued per process before readers are paused: bounds memory under a flood.
PALIMPSEST_APPEND_QUEUE_MAX = _env_int("PALIMPSEST_APPEND_QUEUE_MAX", 20_000)
# ... and their bytes: while the database stalls, large updates must not pile up without end.
PALIMPSEST_APPEND_QUEUE_BYTES = _env_int("PALIMPSEST_APPEND_QUEUE_BYTES", 64 * 1024 * 1024)
# Largest batch one commit takes; bigger batches amortise the commit, smaller ones relay sooner.
PALIMPSEST_APPEND_BATCH_MAX = _env_int("PALIMPSEST_APPEND_BATCH_MAX", 2_000)
# How often a presence row's last_seen is refreshed while its socket is open.
PALIMPSEST_HEARTBEAT_SECONDS = _env_int("PALIMPSEST_HEARTBEAT_SECONDS", 30)
# On SIGTERM or SIGINT a web process drains (collab/realtime/drain.py) and exits within this
# many seconds; an orchestrator's grace period must be longer (compose: stop_grace_period).
PALIMPSEST_DRAIN_SECONDS = float(os.environ.get("PALIMPSEST_DRAIN_SECONDS", "10"))
# With several processes, how often each open room checks the log for updates it missed.
# Pending TCP connections the web server's listening socket queues (the kernel caps it at
# net.core.somaxconn): a burst of joins past it has its SYNs dropped and resent seconds later.
PALIMPSEST_LISTEN_BACKLOG = _env_int("PALIMPSEST_LISTEN_BACKLOG", 4096)
# How long a web process reuses an API token's lookup for WebSocket handshakes (a burst of
# one user's joins is one query). Revoking a token drops it; admission re-checks it anyway.
PALIMPSEST_TOKEN_CACHE_SECONDS = float(os.environ.get("PALIMPSEST_TOKEN_CACHE_SECONDS", "10"))
# The bearer token Prometheus scrapes /metrics with; unset, /metrics is 404 for everyone.
PALIMPSEST_METRICS_TOKEN = os.environ.get("PALIMPSEST_METRICS_TOKEN", "")
PALIMPSEST_CATCHUP_SECONDS = float(os.environ.get("PALIMPSEST_CATCHUP_SECONDS", "2"))
# Awareness updates a room receives within this window are relayed together, one frame per
# member; cursor moves are shown this much later at most.
PALIMPSEST_AWARENESS_RELAY_SECONDS = float(
    os.environ.get("PALIMPSEST_AWARENESS_RELAY_SECONDS", "0.02")
)
# How long a room nobody is connected to stays in memory before it is dropped.
PALIMPSEST_ROOM_IDLE_SECONDS = float(os.environ.get("PALIMPSEST_ROOM_IDLE_SECONDS", "60"))

# Presence rows whose heartbeat is older than this are purged by beat (a crashed server's
# rows included); several missed heartbeats, so a slow server is not taken for a dead one.
PALIMPSEST_PRESENCE_STALE_SECONDS = _env_int("PALIMPSEST_PRESENCE_STALE_SECONDS", 300)
# A document's log tail (events after its newest snapshot) that asks for a compaction.
PALIMPSEST_COMPACT_TAIL_EVENTS = _env_int("PALIMPSEST_COMPACT_TAIL_EVENTS", 1000)
# Snapshots kept for time travel are spaced by cost (events.compaction.checkpoint_gap): one
# every (its size / BYTES_PER_EVENT) events, so they cost about that many bytes per event, and
# never more than MAX_EVENTS apart (the most a read of the past folds onto one), nor fewer than
# MIN_EVENTS.
PALIMPSEST_CHECKPOINT_BYTES_PER_EVENT = _env_int("PALIMPSEST_CHECKPOINT_BYTES_PER_EVENT", 8)
PALIMPSEST_CHECKPOINT_MAX_EVENTS = _env_int("PALIMPSEST_CHECKPOINT_MAX_EVENTS", 8192)
PALIMPSEST_CHECKPOINT_MIN_EVENTS = _env_int("PALIMPSEST_CHECKPOINT_MIN_EVENTS", 256)
# An authorship checkpoint every this many events: attribution replays at most this many.
PALIMPSEST_AUTHOR_CHECKPOINT_EVENTS = _env_int("PALIMPSEST_AUTHOR_CHECKPOINT_EVENTS", 2048)
# Cold events (under the newest snapshot) are packed this many to a segment; a segment's rows
# are deleted once it is GRACE_SECONDS old (readers that missed the segment still find them).
PALIMPSEST_SEGMENT_EVENTS = _env_int("PALIMPSEST_SEGMENT_EVENTS", 1024)
PALIMPSEST_PACK_GRACE_SECONDS = _env_int("PALIMPSEST_PACK_GRACE_SECONDS", 60)
# Attribution and diffs replay a log from its start (~10 s for 137k events): at most this many
# at once per process; more callers get 429 (the API) or a message (the admin) meanwhile.
PALIMPSEST_HISTORY_REPLAYS = _env_int("PALIMPSEST_HISTORY_REPLAYS", 2)
# How long a finished export's file can be downloaded before beat deletes it.
PALIMPSEST_EXPORT_KEEP_SECONDS = _env_int("PALIMPSEST_EXPORT_KEEP_SECONDS", 24 * 3600)
# Exports are stored here (a Django storage location; the admin and the API serve them).
PALIMPSEST_EXPORT_DIR = Path(os.environ.get("PALIMPSEST_EXPORT_DIR", VAR_DIR / "exports"))
# Exports one user may have pending or running at once; more are a 429 with Retry-After (one
# reader's burst of requests would otherwise queue ahead of everyone else's export).
PALIMPSEST_EXPORTS_PER_USER = _env_int("PALIMPSEST_EXPORTS_PER_USER", 3)
# Exports running at once (the rest wait their turn, fairly between users): set it to the
# renders your workers can run together. The embedded worker renders one at a time.
PALIMPSEST_EXPORTS_AT_ONCE = _env_int("PALIMPSEST_EXPORTS_AT_ONCE", 1 if not REDIS_URL else 2)
# Largest document an export renders, in characters: WeasyPrint's time and memory grow with it.
PALIMPSEST_EXPORT_MAX_CHARS = _env_int("PALIMPSEST_EXPORT_MAX_CHARS", 2_000_000)

# -- Celery ----------------------------------------------------------------------------------
# With REDIS_URL: a Redis broker, and the worker and beat are processes of their own
# (`celery -A collab worker`, `celery -A collab beat`). Without it (the embedded default) the
# server process runs a worker and beat on threads over an in-memory broker (collab/embedded.py).
CELERY_EMBEDDED = not REDIS_URL
CELERY_BROKER_URL = REDIS_URL or "memory://"
# Render PDFs in a child process: needed when the worker is a thread of the server (embedded),
# where WeasyPrint would otherwise hold the GIL the event loop needs (tasks/render/isolated.py).
PALIMPSEST_EXPORT_RENDER_IN_CHILD = _env_bool("PALIMPSEST_EXPORT_RENDER_IN_CHILD", CELERY_EMBEDDED)
# Results go to the database so an admin sees them (django-celery-results).
CELERY_RESULT_BACKEND = "django-db"
CELERY_RESULT_EXTENDED = True
CELERY_RESULT_EXPIRES = _env_int("CELERY_RESULT_EXPIRES_SECONDS", 7 * 24 * 3600)
# JSON only: a pickled message from the broker would be code execution.
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_TIMEZONE = TIME_ZONE
# Acknowledge after the task ran, and put a task back if its worker died under it: every task
# here is idempotent, so running twice is safe and never running is not.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = _env_int("CELERY_TASK_SOFT_TIME_LIMIT", 120)
CELERY_TASK_TIME_LIMIT = _env_int("CELERY_TASK_TIME_LIMIT", 180)
# A running export that stays this long in one stage (longer than any step may run) lost its
# queued step, e.g. to a Redis that restarted empty: the dispatcher (beat) queues it again.
PALIMPSEST_EXPORT_STUCK_SECONDS = _env_int(
    "PALIMPSEST_EXPORT_STUCK_SECONDS", CELERY_TASK_TIME_LIMIT + 60
)
# WeasyPrint's caches grow with every document; a renderer process is replaced now and then
# (the worker's pool processes, and the embedded server's render child).
CELERY_WORKER_MAX_TASKS_PER_CHILD = _env_int("CELERY_WORKER_MAX_TASKS_PER_CHILD", 50)
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_TASK_TRACK_STARTED = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Queueing a task from a request (an export) tries twice, then the caller decides (an export
# stays pending and beat dispatches it later): a request never waits long on a silent broker.
CELERY_BROKER_CONNECTION_TIMEOUT = REDIS_CONNECT_TIMEOUT_SECONDS
CELERY_TASK_PUBLISH_RETRY_POLICY = {
    "max_retries": 1,
    "interval_start": 0,
    "interval_step": 0.5,
    "interval_max": 0.5,
}
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
# How often beat runs each periodic task, in seconds (`manage.py setup_periodic_tasks` writes
# them to the database schedule).
PALIMPSEST_BEAT_SECONDS = {
    "purge stale presence": _env_int("PALIMPSEST_BEAT_PURGE_SECONDS", 60),
    "expire exports": _env_int("PALIMPSEST_BEAT_EXPIRE_SECONDS", 600),
    "dispatch exports": _env_int("PALIMPSEST_BEAT_DISPATCH_SECONDS", 30),
    "compaction sweep": _env_int("PALIMPSEST_BEAT_COMPACTION_SECONDS", 300),
}
CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, object] = (
    # With acks_late a task taken by a worker that vanished comes back after this long.
    {
        "visibility_timeout": _env_int("CELERY_VISIBILITY_TIMEOUT", 3600),
        "socket_connect_timeout": REDIS_CONNECT_TIMEOUT_SECONDS,
        "socket_timeout": REDIS_SOCKET_TIMEOUT_SECONDS,
    }
    if REDIS_URL
    # The in-memory broker is polled; its default second would delay every task.
    else {"polling_interval": 0.05}
)
