"""Settings for one Ferry region, from FERRY_* environment variables or a TOML file."""

from __future__ import annotations

import functools
import ipaddress
import secrets
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
_WILDCARD = frozenset({"0.0.0.0", "::", ""})


def _authorities(names: set[str] | frozenset[str], port: int, default_port: int) -> set[str]:
    """How a Host header spells these names on this port (IPv6 in brackets; no default port)."""
    result = set()
    for name in names:
        spelled = f"[{name}]" if ":" in name else name
        result.add(f"{spelled}:{port}")
        if port == default_port:
            result.add(spelled)
    return result


@functools.lru_cache(maxsize=64)
def _parsed_networks(networks: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(network, strict=False) for network in networks)


def in_networks(address: str, networks: list[str]) -> bool:
    """Whether an address (a peer's, as the socket gives it) lies in one of these networks (as the
    settings list them); an IPv4 address mapped into IPv6 counts as itself."""
    if not networks:
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in network for network in _parsed_networks(tuple(networks)))


_RATE_UNITS = {
    "": 1,
    "b": 1,
    "kb": 1000,
    "kib": 1024,
    "mb": 1000**2,
    "mib": 1024**2,
    "gb": 1000**3,
    "gib": 1024**3,
}


def byte_rate(value: object) -> int:
    """Bytes per second from a number or a size such as "20MiB" or "500 kB" (per second)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        number, unit = float(value), ""
    elif isinstance(value, str):
        text = value.strip().lower().removesuffix("/s")
        digits = text.rstrip("abcdefghijklmnopqrstuvwxyz ").strip()
        number, unit = float(digits or "nan"), text[len(digits) :].strip()
    else:
        raise ValueError(f"a byte rate is a number or a size like 20MiB, not {value!r}")
    if unit not in _RATE_UNITS or not number > 0:
        raise ValueError(f"a byte rate is a positive size like 20MiB or 500kB (per second), not {value!r}")
    return int(number * _RATE_UNITS[unit])


def _clock(value: str) -> int:
    """Minutes after midnight of "HH:MM"."""
    hours, sep, minutes = value.partition(":")
    if not (sep and hours.isdigit() and minutes.isdigit() and int(hours) < 24 and int(minutes) < 60):
        raise ValueError(f"a time of day is HH:MM (UTC), not {value!r}")
    return int(hours) * 60 + int(minutes)


class BandwidthWindow(BaseModel):
    """From `start` to `end` (UTC, HH:MM; past midnight when end < start) the cap is `bandwidth`."""

    start: str
    end: str
    bandwidth: int

    @field_validator("start", "end")
    @classmethod
    def _time_of_day(cls, value: str) -> str:
        _clock(value)
        return value

    @field_validator("bandwidth", mode="before")
    @classmethod
    def _rate(cls, value: object) -> int:
        return byte_rate(value)

    def covers(self, minute_of_day: int) -> bool:
        start, end = _clock(self.start), _clock(self.end)
        if start <= end:
            return start <= minute_of_day < end
        return minute_of_day >= start or minute_of_day < end


class Peer(BaseModel):
    """Another region: where it is and the credential used for every call to it."""

    id: str
    url: str
    ak: str = ""
    sk: SecretStr = SecretStr("")
    user: str = ""
    password: SecretStr = SecretStr("")
    # CA certificates (PEM) that verify this peer's HTTPS certificate; empty: the system's.
    ca_file: str = ""
    # Bytes per second the sync may send this peer (None: no cap), and windows of the day with
    # another cap (README, "Bandwidth caps"). `ferry serve --workers N` gives each process 1/N.
    bandwidth: int | None = None
    bandwidth_windows: list[BandwidthWindow] = Field(default_factory=list)
    # Jobs each process runs at once to this peer (None: as many as it has slots), lowered while
    # the peer throttles (sync/concurrency.py); connections each process keeps open to it.
    max_jobs: int | None = Field(default=None, ge=1)
    max_connections: int = Field(default=100, ge=1)

    @field_validator("bandwidth", mode="before")
    @classmethod
    def _rate(cls, value: object) -> int | None:
        return None if value is None or value == "" else byte_rate(value)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FERRY_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 5000
    data_dir: Path = Path("./ferry-data")
    # Empty means an embedded SQLite database inside data_dir.
    database_url: str = ""
    region: str = "cn-north-4"
    # Public base URL clients see; empty means derived from each request's Host header (or what
    # a trusted proxy forwards: X-Forwarded-Proto/-Host, Forwarded).
    public_url: str = ""
    # HTTPS: a PEM certificate (chain) and its key; both or neither (README, "TLS").
    tls_cert_file: str = ""
    tls_key_file: str = ""
    # HMAC key for registry tokens; empty means one is generated once and kept in data_dir.
    secret_key: str = ""
    registry_token_ttl: int = Field(default=900, ge=60)
    # The bootstrap account administrator, created on first start when missing.
    admin_account: str = "ferry"
    admin_user: str = "admin"
    admin_password: str = ""
    # Blob storage: empty means the filesystem under data_dir; "s3://bucket/prefix" means S3.
    storage_url: str = ""
    s3_endpoint: str = ""
    s3_region: str = ""
    s3_access_key_id: str = ""
    s3_secret_access_key: SecretStr = SecretStr("")
    # Seconds a pre-signed blob URL stays valid; 0 serves blob bytes through Ferry instead.
    s3_redirect_seconds: int = Field(default=0, ge=0)
    # Optional fixed credentials for the bootstrap admin, so every region of `ferry dev` shares them.
    admin_access_key: str = ""
    admin_secret_key: str = ""
    admin_project_id: str = ""
    # Peer regions, as JSON in FERRY_PEERS: [{"id": "cn-east-3", "url": "http://…", "ak": …, "sk": …}].
    peers: list[Peer] = Field(default_factory=list)
    # HTTP server processes of `ferry serve` on the one port (FERRY_HTTP_WORKERS); 0 = one per
    # CPU core: a Python process uses one core, and the processes share nothing but the
    # database and the store (README, "Performance").
    http_workers: int = Field(default=0, ge=0)
    # A small image's job spends most of its time waiting on round trips and the two regions'
    # writers, not on CPU: 8 slots drained a 300-image burst at 29-33 img/s behind 46-53 img/s
    # of pushes (p95 3.3-3.7 s); 32 kept up (p95 0.59 s). A job streams, so a slot costs little.
    sync_workers: int = Field(default=32, ge=0)
    sync_retry_seconds: float = Field(default=3600, gt=0)
    sync_lease_seconds: float = Field(default=15, gt=1)
    # A peer silent this long on a call (other than the wait for a streamed upload's answer) is
    # unreachable: a hung process is noticed in seconds, not after a 120 s socket timeout.
    sync_stall_seconds: float = Field(default=15, gt=0)
    sync_poll_seconds: float = Field(default=1.0, gt=0)
    sync_chunk_bytes: int = Field(default=32 * 1024 * 1024, ge=1024 * 1024)
    # How many processes send to the peers at once and share each peer's bandwidth cap (each
    # takes 1/N): `ferry serve --workers N` sets N for its children; set it when several
    # `ferry worker` processes serve one region.
    sync_bandwidth_share: int = Field(default=1, ge=1)
    max_manifest_bytes: int = 4 * 1024 * 1024
    # Garbage collection (README, "Garbage collection"): nothing linked, uploaded or pushed
    # within the grace period is collected; untagged manifests go unless kept; upload sessions
    # older than the expiry are abandoned; a background run every interval seconds (0: never).
    gc_grace_seconds: float = Field(default=3600, ge=0)
    gc_keep_untagged: bool = False
    gc_interval_seconds: float = Field(default=0, ge=0)
    upload_expiry_seconds: float = Field(default=24 * 3600, gt=0)
    # Backup before overwrite (README, "Backup before overwrite and rollback"): an image a sync
    # copy replaced under a tag survives garbage collection this long, for `ferry sync rollback`.
    override_keep_seconds: float = Field(default=7 * 24 * 3600, ge=0)
    # Retention policies (README, "Retention"): each runs when set and then every interval
    # seconds (0: only when set or asked, POST …/retentions/{id}/run).
    retention_interval_seconds: float = Field(default=3600, ge=0)
    # Audit and self-repair (README, "Audit and self-repair"): the background reconciler audits
    # every repository with sync rules every interval seconds (0: never; only `ferry sync audit`)
    # and queues repairs; audit requests to each peer are paced to `audit_rate` per second; a
    # fraction of the blobs found present is read back and re-hashed (0: none).
    audit_interval_seconds: float = Field(default=3600, ge=0)
    audit_rate: float = Field(default=100, gt=0)
    audit_verify_sample: float = Field(default=0, ge=0, le=1)
    # Webhooks (README, "Webhooks"): each POST waits at most timeout seconds; a failed delivery
    # is tried again after about base * 2^(attempt-1) seconds (with jitter, at most an hour),
    # up to max_attempts tries or give_up seconds after the event, then it is failed. Targets
    # on loopback, link-local, multicast or unspecified addresses are refused unless allowed
    # (tests); `webhook_slots` deliveries run at once per process (0: this process delivers none).
    webhook_timeout_seconds: float = Field(default=10, gt=0)
    webhook_retry_base_seconds: float = Field(default=5, gt=0)
    webhook_max_attempts: int = Field(default=10, ge=1)
    webhook_give_up_seconds: float = Field(default=24 * 3600, gt=0)
    webhook_allow_private: bool = False
    webhook_slots: int = Field(default=4, ge=0)
    # Finished deliveries (and their attempts) older than this are deleted by the delivery loop.
    webhook_keep_days: float = Field(default=30, gt=0)
    # Logs (stderr): "text" or "json" lines, the level, and one access line per request.
    log_format: Literal["text", "json"] = "text"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    access_log: bool = False

    @model_validator(mode="after")
    def _tls_pair(self) -> Settings:
        if bool(self.tls_cert_file) != bool(self.tls_key_file):
            given, missing = ("cert", "key") if self.tls_cert_file else ("key", "cert")
            raise ValueError(
                f"FERRY_TLS_{given.upper()}_FILE is set without FERRY_TLS_{missing.upper()}_FILE"
            )
        return self

    @property
    def tls(self) -> bool:
        return bool(self.tls_cert_file)

    @field_validator("log_level", mode="before")
    @classmethod
    def _level_name(cls, level: object) -> object:
        return level.upper() if isinstance(level, str) else level

    # Proxies (addresses or networks, e.g. ["10.0.0.0/8"]) whose X-Forwarded-For names the
    # client; login throttling goes by the client's address.
    trusted_proxies: list[str] = Field(default_factory=list)

    @field_validator("trusted_proxies", "metrics_allow")
    @classmethod
    def _networks(cls, networks: list[str]) -> list[str]:
        for network in networks:
            ipaddress.ip_network(network, strict=False)  # ValueError names the bad entry
        return networks

    # Who may scrape /metrics without credentials (addresses or networks); anyone else gets 403.
    metrics_allow: list[str] = Field(default_factory=lambda: ["127.0.0.0/8", "::1/128"])

    # Retry-After when storage is full: when clients (and peers' sync) should come back.
    storage_full_retry_seconds: int = Field(default=60, ge=1)
    namespace_quota: int = Field(default=100, ge=1)

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{self.data_dir.resolve() / 'ferry.db'}"

    def resolved_secret_key(self) -> str:
        """Returns the configured key, or the one persisted in data_dir (made on first use)."""
        if self.secret_key:
            return self.secret_key
        path = self.data_dir / "secret.key"
        if not path.exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(secrets.token_hex(32))
            tmp.chmod(0o600)
            tmp.replace(path)
        return path.read_text().strip()

    def accepts_host(self, host: str) -> bool:
        """Whether `host` (a Host header) names this region: its public URL or listen address.

        A signed request carries the host it was meant for; checking it stops a request signed
        for one region from replaying against another that shares the key.
        """
        host = host.strip().lower()
        if host in self._own_hosts():
            return True
        # Listening on every interface without a public URL: only the port is known to be ours.
        listens_everywhere = self.host in _WILDCARD and not self.public_url
        return listens_everywhere and host.rpartition(":")[2] == str(self.port)

    def _own_hosts(self) -> set[str]:
        hosts: set[str] = set()
        if self.public_url:
            url = urlsplit(self.public_url)
            default = 443 if url.scheme == "https" else 80
            hosts |= _authorities({(url.hostname or "").lower()}, url.port or default, default)
        names = _LOOPBACK if self.host.lower() in _LOOPBACK else {self.host.lower()}
        return hosts | _authorities(names, self.port, 443 if self.tls else 80)

    def peer_regions(self) -> list[Peer]:
        """The other regions: FERRY_PEERS without this region itself (one list may serve all)."""
        return [peer for peer in self.peers if peer.id != self.region]

    def peer(self, region_id: str) -> Peer | None:
        return next((p for p in self.peers if p.id == region_id), None)
