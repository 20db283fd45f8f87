"""One immutable Settings object, read from BPO_* environment variables.

Every problem with a setting is reported as a `SettingsError` that names the variable, so
a process that cannot start says exactly which knob is wrong.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, TypeVar
from urllib.parse import urlsplit

T = TypeVar("T")

DATABASE_SCHEMES = ("postgresql", "postgres", "postgresql+asyncpg")
BROKER_SCHEMES = ("redis", "rediss", "unix", "amqp", "amqps")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


class SettingsError(ValueError):
    """A BPO_* variable is missing or malformed."""

    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(f"{variable}: {problem}")
        self.variable = variable
        self.problem = problem


Environment = Literal["development", "test", "production"]
DEV_WEBHOOK_ALLOWLIST = ("localhost", "127.0.0.0/8", "::1/128")


@dataclass(frozen=True, slots=True)
class Settings:
    """Process configuration. Build with `Settings.from_env()`; never mutate."""

    # None means "not configured": `bpo up` starts embedded services, `bpo serve` refuses.
    database_url: str | None = None
    broker_url: str | None = None
    data_dir: Path = field(default_factory=lambda: Path(".bpo"))
    host: str = "127.0.0.1"
    port: int = 8000
    environment: Environment = "development"
    log_level: str = "INFO"
    log_json: bool = True
    secret_key: str | None = None
    # Sized for the concurrent requests one API process serves, with no overflow: overflow
    # connections are opened and closed around each request under load (authentication,
    # codecs and an empty statement cache every time), which made the slowest requests.
    db_pool_size: int = 32
    db_max_overflow: int = 0
    db_connect_timeout: float = 5.0
    # Per-statement budget for API transactions (ms); workers get their own later.
    api_statement_timeout_ms: int = 15_000
    max_body_bytes: int = 1_048_576
    worker_threads: int = 8
    # How long an idle Redis consumer blocks before polling again (ms): §8 of DESIGN.md.
    worker_timeout_ms: int = 100
    # Messages a worker holds ahead of its threads (Dramatiq's default is 2 per thread,
    # which left the threads idle between refills: benchmarks/jobs.py).
    worker_prefetch: int = 64
    # A worker's own Prometheus /metrics (jobs done and failed) on this port; unset: none.
    worker_metrics_port: int | None = None
    # OpenTelemetry traces (requests, SQL, jobs) over OTLP/HTTP to this endpoint, e.g.
    # http://otel-collector:4318; unset: no traces, and the SDK is not even imported.
    otel_endpoint: str | None = None
    otel_service_name: str = "bpo"
    docs_enabled: bool = True
    tenant_pool_size: int = 5
    # Memory guard: a pooled connection that served this many tenants is closed on check-in.
    tenants_per_connection: int = 200
    # Broker key namespace (tests use their own so runs sharing a Redis never meet).
    broker_namespace: str = "bpo"
    # The URL clients use to reach the API: the OAuth issuer and token audience.
    public_base_url: str | None = None
    # Redis for rate limits (default: the broker's, when it is Redis; else per process).
    redis_url: str | None = None
    # Token endpoint requests per minute, per client and per client IP address.
    token_rate_per_client: int = 600
    token_rate_per_ip: int = 1200
    # Failed sign-ins allowed per 15 minutes, per email and per IP address.
    login_failures_per_email: int = 5
    login_failures_per_ip: int = 30
    # Workers also run the periodic-job scheduler (one holds the lock; others stand by).
    worker_scheduler: bool = True
    # Redis broker: a worker silent this long is dead and its messages are delivered again
    # (consumers beat every second, busy or not: jobs/broker.py).
    broker_heartbeat_timeout_ms: int = 5_000
    # Webhook URLs may resolve to private, loopback or link-local addresses only when their
    # host (name, address or CIDR) is listed here. Unset: loopback in development (a local
    # receiver while trying bpo out), nothing otherwise.
    webhook_allowlist: tuple[str, ...] = ()
    # Reverse proxies (addresses or CIDRs) whose X-Forwarded-For/-Proto are believed: behind
    # nginx or an Ingress, rate limits and sign-in throttles then see the caller, not the
    # proxy. Unset: the peer address is the client (no header is trusted).
    trusted_proxies: tuple[str, ...] = ()
    webhook_timeout_s: float = 10.0
    # Stripe (billing/gateway.py). No key: nothing is sent to Stripe, usage still counts.
    stripe_api_key: str | None = None
    stripe_webhook_secret: str | None = None
    # Where the SDK sends requests: Stripe itself unless a stand-in is named (tests, dev).
    stripe_api_base: str | None = None
    # Dunning: a tenant whose invoice payment failed is suspended after this long unpaid.
    billing_grace_hours: int = 168
    # Outgoing mail (invites): smtp://[user:password@]host[:port] (STARTTLS when offered) or
    # smtps://. Unset: mail is written to the log instead (development; a warning otherwise).
    smtp_url: str | None = None
    mail_from: str = "bpo <no-reply@localhost>"
    # Record keeping's store: unset, files under the data dir; file:///path; or
    # s3://bucket/prefix (with the endpoint and credentials below; Object Lock used if on).
    records_url: str | None = None
    records_s3_endpoint: str | None = None
    records_s3_region: str = "us-east-1"
    records_s3_access_key: str | None = None
    records_s3_secret_key: str | None = None
    # The largest document version accepted (bytes); bigger bodies are a 413, unread.
    records_max_bytes: int = 5 << 30
    # How long an auditor's export stays downloadable.
    records_export_hours: int = 24

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        reader = _Reader(env)
        environment: Environment = reader.get("BPO_ENV", _environment, "development")
        settings = cls(
            database_url=reader.get("BPO_DATABASE_URL", _database_url, None),
            broker_url=reader.get("BPO_BROKER_URL", _broker_url, None),
            data_dir=reader.get("BPO_DATA_DIR", Path, Path(".bpo")),
            host=reader.get("BPO_HOST", _non_empty, "127.0.0.1"),
            port=reader.get("BPO_PORT", _int_between(1, 65535), 8000),
            environment=environment,
            log_level=reader.get("BPO_LOG_LEVEL", _log_level, "INFO"),
            log_json=reader.get("BPO_LOG_JSON", _bool, True),
            secret_key=reader.get("BPO_SECRET_KEY", _secret_key, None),
            db_pool_size=reader.get("BPO_DB_POOL_SIZE", _int_between(1, 500), 32),
            db_max_overflow=reader.get("BPO_DB_MAX_OVERFLOW", _int_between(0, 500), 0),
            db_connect_timeout=reader.get("BPO_DB_CONNECT_TIMEOUT", _positive_float, 5.0),
            api_statement_timeout_ms=reader.get(
                "BPO_API_STATEMENT_TIMEOUT_MS", _int_between(100, 600_000), 15_000
            ),
            max_body_bytes=reader.get("BPO_MAX_BODY_BYTES", _int_between(1024, 1 << 30), 1_048_576),
            worker_threads=reader.get("BPO_WORKER_THREADS", _int_between(1, 256), 8),
            worker_timeout_ms=reader.get("BPO_WORKER_TIMEOUT_MS", _int_between(10, 60_000), 100),
            worker_prefetch=reader.get("BPO_WORKER_PREFETCH", _int_between(1, 65_535), 64),
            worker_metrics_port=reader.get(
                "BPO_WORKER_METRICS_PORT", _int_between(1, 65_535), None
            ),
            otel_endpoint=reader.get("BPO_OTEL_ENDPOINT", _http_url, None),
            otel_service_name=reader.get("BPO_OTEL_SERVICE_NAME", _non_empty, "bpo"),
            docs_enabled=reader.get("BPO_DOCS_ENABLED", _bool, True),
            tenant_pool_size=reader.get("BPO_TENANT_POOL_SIZE", _int_between(0, 1000), 5),
            tenants_per_connection=reader.get(
                "BPO_TENANTS_PER_CONNECTION", _int_between(1, 100_000), 200
            ),
            broker_namespace=reader.get("BPO_BROKER_NAMESPACE", _non_empty, "bpo"),
            public_base_url=reader.get("BPO_PUBLIC_URL", _http_url, None),
            redis_url=reader.get("BPO_REDIS_URL", _redis_url, None),
            token_rate_per_client=reader.get(
                "BPO_TOKEN_RATE_PER_CLIENT", _int_between(1, 10_000_000), 600
            ),
            token_rate_per_ip=reader.get(
                "BPO_TOKEN_RATE_PER_IP", _int_between(1, 10_000_000), 1200
            ),
            login_failures_per_email=reader.get(
                "BPO_LOGIN_FAILURES_PER_EMAIL", _int_between(1, 10_000), 5
            ),
            login_failures_per_ip=reader.get(
                "BPO_LOGIN_FAILURES_PER_IP", _int_between(1, 100_000), 30
            ),
            worker_scheduler=reader.get("BPO_WORKER_SCHEDULER", _bool, True),
            broker_heartbeat_timeout_ms=reader.get(
                "BPO_BROKER_HEARTBEAT_TIMEOUT_MS", _int_between(1_000, 3_600_000), 5_000
            ),
            webhook_allowlist=reader.get(
                "BPO_WEBHOOK_ALLOWLIST",
                _host_list,
                DEV_WEBHOOK_ALLOWLIST if environment == "development" else (),
            ),
            webhook_timeout_s=reader.get("BPO_WEBHOOK_TIMEOUT_S", _positive_float, 10.0),
            trusted_proxies=reader.get("BPO_TRUSTED_PROXIES", _host_list, ()),
            stripe_api_key=reader.get("BPO_STRIPE_API_KEY", _non_empty, None),
            stripe_webhook_secret=reader.get("BPO_STRIPE_WEBHOOK_SECRET", _non_empty, None),
            stripe_api_base=reader.get("BPO_STRIPE_API_BASE", _http_url, None),
            billing_grace_hours=reader.get(
                "BPO_BILLING_GRACE_HOURS", _int_between(0, 24 * 90), 168
            ),
            smtp_url=reader.get("BPO_SMTP_URL", _smtp_url, None),
            mail_from=reader.get("BPO_MAIL_FROM", _non_empty, "bpo <no-reply@localhost>"),
            records_url=reader.get("BPO_RECORDS_URL", _records_url, None),
            records_s3_endpoint=reader.get("BPO_RECORDS_S3_ENDPOINT", _http_url, None),
            records_s3_region=reader.get("BPO_RECORDS_S3_REGION", _non_empty, "us-east-1"),
            records_s3_access_key=reader.get("BPO_RECORDS_S3_ACCESS_KEY", _non_empty, None),
            records_s3_secret_key=reader.get("BPO_RECORDS_S3_SECRET_KEY", _non_empty, None),
            records_max_bytes=reader.get(
                "BPO_RECORDS_MAX_BYTES", _int_between(1, 1 << 40), 5 << 30
            ),
            records_export_hours=reader.get(
                "BPO_RECORDS_EXPORT_HOURS", _int_between(1, 24 * 30), 24
            ),
        )
        if settings.environment == "production":
            for name, value in (
                ("BPO_DATABASE_URL", settings.database_url),
                ("BPO_BROKER_URL", settings.broker_url),
                ("BPO_SECRET_KEY", settings.secret_key),
            ):
                if value is None:
                    raise SettingsError(name, "is required when BPO_ENV=production")
        return settings

    def with_services(self, database_url: str, broker_url: str) -> Settings:
        """A copy pointing at concrete services (used once embedded ones are running)."""
        from dataclasses import replace

        return replace(
            self,
            database_url=_database_url(database_url),
            broker_url=_broker_url(broker_url),
        )

    @property
    def limiter_redis_url(self) -> str | None:
        """Where rate-limit counters live: BPO_REDIS_URL, else a Redis broker."""
        if self.redis_url:
            return self.redis_url
        broker = self.broker_url or ""
        return broker if broker.startswith(("redis://", "rediss://", "unix://")) else None

    @property
    def embedded(self) -> bool:
        """True when no external database is configured: `bpo up` runs its own."""
        return self.database_url is None

    @property
    def public_url(self) -> str:
        return self.public_base_url or f"http://{self.host}:{self.port}"

    @property
    def issuer(self) -> str:
        """The OAuth issuer (RFC 8414) and the `aud` of access tokens."""
        return self.public_url.rstrip("/")


class _Reader:
    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env

    def get(self, name: str, parse: Callable[[str], T], default: T) -> T:
        raw = self._env.get(name)
        if raw is None or raw.strip() == "":
            return default
        try:
            return parse(raw.strip())
        except SettingsError:
            raise
        except (ValueError, TypeError) as exc:
            raise SettingsError(name, f"{exc} (got {raw!r})") from exc


def _non_empty(value: str) -> str:
    if not value:
        raise ValueError("must not be empty")
    return value


def _int_between(low: int, high: int) -> Callable[[str], int]:
    def parse(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            raise ValueError("must be a whole number") from None
        if not low <= number <= high:
            raise ValueError(f"must be between {low} and {high}")
        return number

    return parse


def _positive_float(value: str) -> float:
    number = float(value)
    if number <= 0:
        raise ValueError("must be greater than zero")
    return number


def _http_url(value: str) -> str | None:
    if not value.startswith(("https://", "http://")) or "?" in value or "#" in value:
        raise ValueError("must be an http(s) URL without query or fragment")
    return value.rstrip("/")


def _records_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme == "s3" and parts.netloc and "?" not in value:
        return value
    if parts.scheme == "file" and parts.path.startswith("/") and not parts.netloc:
        return value
    raise ValueError("must be s3://bucket[/prefix] or file:///absolute/path")


def _smtp_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise ValueError("must be smtp://[user:password@]host[:port] or smtps://...")
    return value


def _bool(value: str) -> bool:
    lowered = value.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError("must be one of true/false, 1/0, yes/no, on/off")


def _environment(value: str) -> Literal["development", "test", "production"]:
    if value == "development":
        return "development"
    if value == "test":
        return "test"
    if value == "production":
        return "production"
    raise ValueError("must be development, test or production")


def _log_level(value: str) -> str:
    if value.upper() not in LOG_LEVELS:
        raise ValueError(f"must be one of {', '.join(LOG_LEVELS)}")
    return value.upper()


def _secret_key(value: str) -> str:
    if len(value) < 32:
        raise ValueError("must be at least 32 characters")
    return value


def _database_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in DATABASE_SCHEMES:
        raise ValueError(f"scheme must be one of {', '.join(DATABASE_SCHEMES)}")
    if not parts.path.strip("/"):
        raise ValueError("must name a database (postgresql://user@host:5432/dbname)")
    if not parts.hostname and "host=" not in parts.query:
        raise ValueError("must name a host (or a socket directory with ?host=/path)")
    return value


def _broker_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in BROKER_SCHEMES:
        raise ValueError(f"scheme must be one of {', '.join(BROKER_SCHEMES)}")
    if parts.scheme == "unix" and not parts.path:
        raise ValueError("a unix:// URL must give the socket path")
    return value


def _host_list(value: str) -> tuple[str, ...]:
    hosts = tuple(part.strip().lower() for part in value.split(",") if part.strip())
    for host in hosts:
        if "/" in host:
            try:
                ipaddress.ip_network(host, strict=False)
            except ValueError:
                raise ValueError(f"{host!r} is not a network (CIDR)") from None
    return hosts


def _redis_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise ValueError("scheme must be one of redis, rediss, unix")
    return value
