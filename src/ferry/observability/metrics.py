"""Ferry's Prometheus metrics: every metric object, in one module, created at import.

Multi-process: `ferry serve --workers N` sets PROMETHEUS_MULTIPROC_DIR before it starts its
HTTP processes (fresh interpreters), so prometheus_client picks its file-backed values when it
is first imported there and `/metrics` sums every process's files. Without that variable the
values live in this process and the default registry is scraped.

Label values are always bounded: API names, route templates (never raw paths), status classes,
region names and short cause words. Other parts of Ferry append their own metrics below, each in
its own commented section.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, disable_created_metrics

# The *_created series double the output and mean nothing once processes restart.
disable_created_metrics()

# Latency buckets (seconds) for requests and storage/database operations.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
# Push-to-visible lag (seconds): from the source tag move to the verified target tag.
LAG_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)

# --- HTTP (metrics+health) ---------------------------------------------------------------
HTTP_REQUESTS = Counter(
    "ferry_http_requests_total",
    "HTTP requests answered, by API (registry, manage, iam, ops), route template, method and status class.",
    ["api", "route", "method", "status"],
)
HTTP_LATENCY = Histogram(
    "ferry_http_request_duration_seconds",
    "Time from a request's arrival to its answer, by API and route template.",
    ["api", "route", "method"],
    buckets=LATENCY_BUCKETS,
)
HTTP_IN_FLIGHT = Gauge(
    "ferry_http_requests_in_flight",
    "Requests being answered now, by API.",
    ["api"],
    multiprocess_mode="livesum",
)
HTTP_BYTES_IN = Counter("ferry_http_request_bytes_total", "Request body bytes received, by API.", ["api"])
HTTP_BYTES_OUT = Counter(
    "ferry_http_response_bytes_total",
    "Response bytes written (status line, headers and body), by API.",
    ["api"],
)

# --- Sync (metrics+health) ---------------------------------------------------------------
SYNC_JOBS_CREATED = Counter(
    "ferry_sync_jobs_created_total",
    "Sync jobs created, by trigger (push, manual, …) and target region.",
    ["trigger", "target_region"],
)
SYNC_JOBS_FINISHED = Counter(
    "ferry_sync_jobs_finished_total",
    "Sync jobs that reached a final status, by status and target region.",
    ["status", "target_region"],
)
SYNC_ATTEMPTS = Counter(
    "ferry_sync_attempts_total", "Sync attempts started, by target region.", ["target_region"]
)
SYNC_RETRIES = Counter(
    "ferry_sync_retries_total",
    "Sync attempts that failed and were put back to wait, by cause and target region.",
    ["cause", "target_region"],
)
SYNC_LAG = Histogram(
    "ferry_sync_push_to_visible_seconds",
    "For each synced tag, seconds from the source tag move to the verified target tag, by target region.",
    ["target_region"],
    buckets=LAG_BUCKETS,
)
SYNC_PEER_UP = Gauge(
    "ferry_sync_peer_up",
    "1 while a peer region answers, 0 while a process found it unreachable and probes it.",
    ["target_region"],
    multiprocess_mode="livemin",
)
SYNC_PEER_CONCURRENCY = Gauge(
    "ferry_sync_peer_concurrency",
    "Jobs each process may run at once to a peer region now: its cap, halved when the peer "
    "throttles (429/503, RateLimit-Remaining: 0) and grown back by one per that many successes (AIMD).",
    ["target_region"],
    multiprocess_mode="livemin",
)
SYNC_BYTES_SENT = Counter(
    "ferry_sync_bytes_sent_total", "Blob bytes uploaded to peers, by target region.", ["target_region"]
)
SYNC_BLOBS = Counter(
    "ferry_sync_blobs_total",
    "Blobs handled by sync, by outcome (skipped: the target had it; mounted; uploaded) and target region.",
    ["outcome", "target_region"],
)

# --- Storage and database (metrics+health) -------------------------------------------------
STORAGE_LATENCY = Histogram(
    "ferry_storage_operation_duration_seconds",
    "Blob store operation latency, by driver and operation.",
    ["driver", "operation"],
    buckets=LATENCY_BUCKETS,
)
STORAGE_ERRORS = Counter(
    "ferry_storage_errors_total",
    "Blob store operations that raised, by driver, operation and error type.",
    ["driver", "operation", "error"],
)
DB_LATENCY = Histogram(
    "ferry_db_operation_duration_seconds",
    "Database latency, by kind (read or write transaction, statement).",
    ["kind"],
    buckets=LATENCY_BUCKETS,
)
DB_ERRORS = Counter(
    "ferry_db_errors_total",
    "Database transactions (read, write) or statements that raised, by kind and error type.",
    ["kind", "error"],
)

# --- Processes (metrics+health) ------------------------------------------------------------
HTTP_SERVER_PROCESSES = Gauge(
    "ferry_http_server_processes",
    "HTTP server processes of this `ferry serve` that are alive (each counts itself once).",
    multiprocess_mode="livesum",
)

# --- Garbage collection (gc) ---------------------------------------------------------------
GC_RUNS = Counter("ferry_gc_runs_total", "Garbage collections (not dry runs), by outcome.", ["outcome"])
GC_FREED = Counter(
    "ferry_gc_freed_total",
    "Items garbage collection deleted, by kind (manifest, blob, upload, orphan).",
    ["kind"],
)
GC_FREED_BYTES = Counter(
    "ferry_gc_freed_bytes_total", "Bytes garbage collection freed, by kind of item.", ["kind"]
)
GC_DURATION = Histogram(
    "ferry_gc_duration_seconds",
    "How long a garbage collection took.",
    buckets=(0.1, 0.5, 1, 5, 15, 60, 300, 1800),
)
GC_LAST_SUCCESS = Gauge(
    "ferry_gc_last_success_timestamp_seconds",
    "When the last garbage collection finished (Unix time).",
    multiprocess_mode="max",
)

# --- Retention (retention) -----------------------------------------------------------------
RETENTION_RUNS = Counter(
    "ferry_retention_runs_total", "Retention policy runs, by trigger (set, demand, schedule).", ["trigger"]
)
RETENTION_DELETED_TAGS = Counter(
    "ferry_retention_deleted_tags_total", "Tags retention policies deleted (GC frees their bytes later)."
)

# --- Audit and self-repair (sync/audit.py, sync/reconciler.py, sync/copier.py) ---------------
SYNC_DRIFT_FOUND = Counter(
    "ferry_sync_drift_found_total",
    "Drift audits found between a source tag and a sync target, by kind and target (REGION/ORG).",
    ["kind", "target"],
)
SYNC_DRIFT_REPAIRED = Counter(
    "ferry_sync_drift_repaired_total",
    "What repair jobs restored at a target (a tag, a blob, a manifest, a referrer), by kind and target.",
    ["kind", "target"],
)
AUDIT_REQUESTS = Counter(
    "ferry_audit_requests_total",
    "Registry requests audits sent to peers, by target (REGION/ORG).",
    ["target"],
)

# --- Webhooks (webhooks/delivery.py) ---------------------------------------------------------
WEBHOOK_DELIVERIES = Counter(
    "ferry_webhook_deliveries_total",
    "Webhook delivery attempts, by result (success; retry: failed, tried again later; failed: given up).",
    ["result"],
)
WEBHOOK_OUTBOX_DEPTH = Gauge(
    "ferry_webhook_outbox_depth",
    "Webhook deliveries waiting or being sent (the region's outbox, as last counted by an idle loop).",
    multiprocess_mode="max",
)
