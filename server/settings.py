"""Settings, read once from the environment at startup (the table in docs/configuration.md).

A bad value stops the server at startup with one sentence naming the variable and what it
expects; nothing is re-read while serving.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from engine.durations import parse_duration

STARTER_RULESETS = Path(__file__).resolve().parents[1] / "rulesets"


class SettingsError(ValueError):
    """A setting has a value Frontline cannot use."""


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    data_dir: Path = Path("var")
    starter_rulesets: Path | None = STARTER_RULESETS
    api_keys: str | None = None  # "role:principal:secret,..." (secret may be sha256:<hex>)
    redis_url: str | None = None
    database_url: str | None = None  # PostgreSQL: the spool under data_dir ships there
    masking_key: bytes | None = None  # None: generated once under the data directory
    signing_key: Path | None = None  # the ledger's Ed25519 key file; None: made in data_dir
    clear_classifications: frozenset[str] = frozenset()
    show_pii_to_agents: bool = False  # agents see pii in clear (the ledger still masks it)
    require_approval: bool = False  # a deploy serves only once another author approves it
    max_body_bytes: int = 1_000_000
    max_ruleset_bytes: int = 1_000_000
    max_concurrency: int = 256  # requests in flight before new ones get 503
    admission_delay: float = 0.005  # seconds requests may wait in the event loop (503 beyond)
    rate_limit_per_minute: int = 6_000  # per key
    ledger_max_pending: int = 20_000
    ledger_wait: timedelta = timedelta(seconds=2)
    retention: timedelta | None = None  # None: keep every record
    log_level: str = "info"
    redis_prefix: str = "frontline:"  # every key and channel Frontline uses in Redis
    redis_timeout: float = 0.25  # seconds a Redis command may take before it counts as failed
    context_cache_ttl: float = 5.0  # seconds a context read from Redis is reused in process
    context_ttl: timedelta | None = None  # how long Redis keeps a context nobody writes
    context_source_url: str | None = None  # GET, with {customer_id}, for a missing context
    context_source_timeout: float = 0.2
    context_source_refresh: timedelta | None = None  # refetch fields the source gave when older
    alert_repeat: timedelta = timedelta(minutes=10)  # a repeat of one alert is suppressed
    alert_history: int = 100  # alerts kept per agent for desktops that reconnect
    alert_retain: timedelta = timedelta(hours=12)  # how long those are kept, and acks accepted
    max_head_bytes: int = 16_384  # a request's URL and headers, in all (431 beyond)
    max_headers: int = 100  # headers in a request (431 beyond)
    head_timeout: float = 10.0  # seconds for a request's head to arrive (408 after)
    idle_timeout: int = 5  # seconds a kept-alive connection may sit idle
    streams_per_agent: int = 5  # alert streams one agent (or supervisor) may hold open
    max_streams: int = 10_000  # alert streams one instance holds open, in all
    instance: str = field(default_factory=lambda: os.environ.get("HOSTNAME", "local"))

    @property
    def ledger_dir(self) -> Path:
        """Every instance's segments, and the query index beside them."""
        return self.data_dir / "ledger"

    @property
    def signing_key_path(self) -> Path:
        """The file holding the key that signs the ledger's tree heads (outside the ledger)."""
        return self.signing_key or self.data_dir / "signing.key"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Settings from ``FRONTLINE_*``, ``REDIS_URL`` and ``DATABASE_URL``."""
        env = os.environ if env is None else env

        def get(name: str) -> str | None:
            value = env.get(name)
            return value if value not in (None, "") else None

        def integer(name: str, default: int, low: int, high: int) -> int:
            raw = get(name)
            if raw is None:
                return default
            try:
                value = int(raw)
            except ValueError:
                raise SettingsError(f"{name} must be a whole number, not {raw!r}") from None
            if not low <= value <= high:
                raise SettingsError(f"{name} must be between {low} and {high}, not {value}")
            return value

        def duration(name: str, default: timedelta | None) -> timedelta | None:
            raw = get(name)
            if raw is None:
                return default
            try:
                return parse_duration(raw)
            except ValueError as exc:
                raise SettingsError(f"{name}: {exc}") from None

        key = get("FRONTLINE_MASKING_KEY")
        if key is not None and len(key) < 16:
            raise SettingsError("FRONTLINE_MASKING_KEY must be at least 16 characters")
        clear = frozenset(
            c.strip()
            for c in (get("FRONTLINE_CLEAR_CLASSIFICATIONS") or "").split(",")
            if c.strip()
        )
        unknown = clear - {"public", "internal", "pii"}
        if unknown:
            raise SettingsError(
                f"FRONTLINE_CLEAR_CLASSIFICATIONS: unknown classification {sorted(unknown)[0]!r};"
                " expected public, internal or pii"
            )
        show_pii = get("FRONTLINE_SHOW_PII_TO_AGENTS") or "0"
        if show_pii not in ("0", "1"):
            raise SettingsError(f"FRONTLINE_SHOW_PII_TO_AGENTS must be 0 or 1, not {show_pii!r}")
        approval = get("FRONTLINE_REQUIRE_APPROVAL") or "0"
        if approval not in ("0", "1"):
            raise SettingsError(f"FRONTLINE_REQUIRE_APPROVAL must be 0 or 1, not {approval!r}")
        starter = get("FRONTLINE_STARTER_RULESETS")
        level = (get("FRONTLINE_LOG_LEVEL") or "info").lower()
        if level not in ("debug", "info", "warning", "error"):
            raise SettingsError("FRONTLINE_LOG_LEVEL must be debug, info, warning or error")
        source_url = get("FRONTLINE_CONTEXT_SOURCE_URL")
        if source_url is not None and (
            "{customer_id}" not in source_url or not source_url.startswith(("http://", "https://"))
        ):
            raise SettingsError(
                "FRONTLINE_CONTEXT_SOURCE_URL must be an http(s) URL containing {customer_id}"
            )
        ledger_wait = duration("FRONTLINE_LEDGER_WAIT", timedelta(seconds=2))
        assert ledger_wait is not None
        return cls(
            host=get("FRONTLINE_HOST") or "127.0.0.1",
            port=integer("FRONTLINE_PORT", 8000, 1, 65535),
            workers=integer("FRONTLINE_WORKERS", 1, 1, 64),
            data_dir=Path(get("FRONTLINE_DATA_DIR") or "var"),
            starter_rulesets=(
                None if starter == "none" else Path(starter) if starter else STARTER_RULESETS
            ),
            api_keys=get("FRONTLINE_API_KEYS"),
            redis_url=get("REDIS_URL"),
            database_url=get("DATABASE_URL"),
            masking_key=key.encode() if key else None,
            signing_key=Path(signing) if (signing := get("FRONTLINE_SIGNING_KEY")) else None,
            clear_classifications=clear,
            show_pii_to_agents=show_pii == "1",
            require_approval=approval == "1",
            max_body_bytes=integer("FRONTLINE_MAX_BODY_BYTES", 1_000_000, 1_024, 100_000_000),
            max_ruleset_bytes=integer("FRONTLINE_MAX_RULESET_BYTES", 1_000_000, 1_024, 100_000_000),
            max_concurrency=integer("FRONTLINE_MAX_CONCURRENCY", 256, 1, 100_000),
            admission_delay=integer("FRONTLINE_ADMISSION_DELAY_MS", 5, 1, 600_000) / 1000,
            rate_limit_per_minute=integer("FRONTLINE_RATE_LIMIT", 6_000, 1, 10_000_000),
            ledger_max_pending=integer("FRONTLINE_LEDGER_MAX_PENDING", 20_000, 100, 10_000_000),
            ledger_wait=ledger_wait,
            retention=duration("FRONTLINE_RETENTION", None),
            log_level=level,
            redis_prefix=get("FRONTLINE_REDIS_PREFIX") or "frontline:",
            redis_timeout=integer("FRONTLINE_REDIS_TIMEOUT_MS", 250, 10, 60_000) / 1000,
            context_cache_ttl=integer("FRONTLINE_CONTEXT_CACHE_MS", 5000, 0, 3_600_000) / 1000,
            context_ttl=duration("FRONTLINE_CONTEXT_TTL", None),
            context_source_url=source_url,
            context_source_timeout=integer("FRONTLINE_CONTEXT_SOURCE_TIMEOUT_MS", 200, 1, 60_000)
            / 1000,
            context_source_refresh=duration("FRONTLINE_CONTEXT_SOURCE_REFRESH", None),
            alert_repeat=duration("FRONTLINE_ALERT_REPEAT", timedelta(minutes=10))
            or timedelta(minutes=10),
            alert_history=integer("FRONTLINE_ALERT_HISTORY", 100, 1, 100_000),
            max_head_bytes=integer("FRONTLINE_MAX_HEADER_BYTES", 16_384, 1_024, 1_048_576),
            max_headers=integer("FRONTLINE_MAX_HEADERS", 100, 10, 10_000),
            head_timeout=integer("FRONTLINE_HEADER_TIMEOUT_MS", 10_000, 100, 600_000) / 1000,
            idle_timeout=integer("FRONTLINE_IDLE_TIMEOUT", 5, 1, 3_600),
            streams_per_agent=integer("FRONTLINE_STREAMS_PER_AGENT", 5, 1, 1_000),
            max_streams=integer("FRONTLINE_MAX_STREAMS", 10_000, 1, 1_000_000),
            alert_retain=duration("FRONTLINE_ALERT_RETAIN", timedelta(hours=12))
            or timedelta(hours=12),
            instance=get("FRONTLINE_INSTANCE") or get("HOSTNAME") or "local",
        )
