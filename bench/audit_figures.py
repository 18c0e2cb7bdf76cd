"""The figures of bench/sync_audit.py: counters scraped from /metrics, CPU seconds, the summary
(percentiles, ratios, requests per tag) and the markdown table it prints."""

from __future__ import annotations

import os
import statistics
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

AIM = 1.2  # push-to-visible p50 during the audit, at most this times the baseline's
COUNTERS = (
    "ferry_http_requests_total",
    "ferry_sync_jobs_created_total",
    "ferry_sync_jobs_finished_total",
    "ferry_audit_requests_total",
)


def request_counts(text: str) -> dict[str, float]:
    """The counters above from a /metrics page, keyed `name{label=value,…}`."""
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in COUNTERS:
                labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
                found[f"{sample.name}{{{labels}}}"] = sample.value
    return found


def cpu_seconds(pids: dict[str, list[int]]) -> dict[str, float]:
    """User + system CPU seconds so far of each region's processes (/proc/<pid>/stat)."""
    tick = os.sysconf("SC_CLK_TCK")
    totals: dict[str, float] = {}
    for side, numbers in pids.items():
        total = 0.0
        for pid in numbers:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
        totals[side] = round(total, 2)
    return totals


def delta(before: dict[str, float], after: dict[str, float], prefix: str) -> dict[str, float]:
    keys = {k for k in after if k.startswith(prefix)}
    changed = {k: after[k] - before.get(k, 0.0) for k in keys}
    return {k: v for k, v in sorted(changed.items()) if v}


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1))))]


def _latency(samples: list[dict[str, Any]]) -> dict[str, Any]:
    values = [s["visible_s"] for s in samples if s["visible_s"] is not None]
    if not values:
        return {"pushes": len(samples), "visible": 0}
    figures = {
        "pushes": len(samples),
        "visible": len(values),
        "p50_s": round(statistics.median(values), 4),
        "p95_s": round(percentile(values, 95), 4),
        "max_s": round(max(values), 4),
    }
    # Where the time goes (from the job records): waiting to be claimed, and the copy itself.
    for part in ("wait_s", "copy_s"):
        parts = [s[part] for s in samples if part in s]
        if parts:
            figures[f"{part[:-2]}_p50_s"] = round(statistics.median(parts), 4)
    return figures


def _run_figures(run: dict[str, Any]) -> dict[str, Any]:
    before, after = run["before"], run["after"]
    target_http = delta(before["target"], after["target"], "ferry_http_requests_total")
    registry = {k: v for k, v in target_http.items() if "api=ops" not in k}  # not the scrapes
    figures: dict[str, Any] = {
        "kind": run["kind"],
        "number": run["number"],
        "seconds": run["seconds"],
        "load_start": run["load_start"],
        "load_end": run["load_end"],
        "cpu_s": {s: round(after["cpu"][s] - before["cpu"][s], 2) for s in after["cpu"]},
        "target_requests": int(sum(registry.values())),
        "our_target_requests": after["client_target_requests"] - before["client_target_requests"],
        "target_requests_by_route": {k: int(v) for k, v in registry.items()},
        "source_audit_requests_metric": int(
            sum(delta(before["source"], after["source"], "ferry_audit_requests_total").values())
        ),
        "live": _latency(run["samples"]),
    }
    if "audit" in run:
        audit = run["audit"]
        figures["audit"] = audit
        if audit.get("tagsChecked"):
            figures["requests_per_tag"] = round(audit["requests"] / audit["tagsChecked"], 3)
    return figures


def _pooled(runs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    return _latency([s for r in runs if r["kind"] == kind for s in r["samples"]])


def summarize(document: dict[str, Any]) -> dict[str, Any]:
    runs = [_run_figures(r) for r in document["runs"]]
    baselines = [r for r in runs if r["kind"] == "baseline" and r["live"].get("pushes")]
    # Requests the live sync itself sends to the target per pushed image (baseline runs, where
    # nothing else talks to it): to tell the audit's share of a with-audit run's counter delta.
    per_push = [(r["target_requests"] - r["our_target_requests"]) / r["live"]["pushes"] for r in baselines]
    live_per_push = statistics.mean(per_push) if per_push else 0.0
    for run in runs:
        if run["kind"] == "audit-alone" or not run.get("audit"):
            continue
        run["target_requests_from_audit_estimate"] = round(
            run["target_requests"] - run["our_target_requests"] - live_per_push * run["live"]["pushes"]
        )
    base, during = _pooled(document["runs"], "baseline"), _pooled(document["runs"], "with-audit")
    ratio = during["p50_s"] / base["p50_s"] if base.get("p50_s") and during.get("p50_s") else None
    by_round = []
    for number in sorted({r["number"] for r in runs if r["number"]}):
        pair = {r["kind"]: r for r in runs if r["number"] == number}
        b, w = pair.get("baseline", {}).get("live", {}), pair.get("with-audit", {}).get("live", {})
        if b.get("p50_s") and w.get("p50_s"):
            by_round.append(round(w["p50_s"] / b["p50_s"], 3))
    return {
        "tags": document["seed"]["tags"],
        "seed": document["seed"],
        "audit_rate": document["settings"].get("ferry_audit_rate"),
        "jobs_created_by_rules": document.get("jobs_created_by_rules"),
        "history": document.get("history"),
        "live_sync_requests_per_push": round(live_per_push, 1),
        "runs": runs,
        "baseline": base,
        "with_audit": during,
        "p50_ratio": round(ratio, 3) if ratio else None,
        "p50_ratio_by_round": by_round,
        "aim_met": ratio is not None and ratio <= AIM,
    }


def _fmt(value: Any, unit: str = "") -> str:
    return "n/a" if value is None else f"{value}{unit}"


def table(summary: dict[str, Any]) -> str:
    lines = [
        "| run | load start → end | audit wall time | audit requests (per tag) | target requests Δ "
        "| live pushes | p50 push→visible | p95 | p50 wait / copy | CPU-s source / target |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for run in summary["runs"]:
        audit = run.get("audit", {})
        per_tag = f" ({run['requests_per_tag']})" if "requests_per_tag" in run else ""
        live = run["live"]
        lines.append(
            f"| {run['kind']} {run['number']} | {run['load_start'][0]} → {run['load_end'][0]} "
            f"| {_fmt(audit.get('seconds'), ' s')} | {_fmt(audit.get('requests'))}{per_tag} "
            f"| {run['target_requests']} | {live['pushes']} | {_fmt(live.get('p50_s'), ' s')} "
            f"| {_fmt(live.get('p95_s'), ' s')} | {_fmt(live.get('wait_p50_s'))} / "
            f"{_fmt(live.get('copy_p50_s'))} | {run['cpu_s']['source']} / {run['cpu_s']['target']} |"
        )
    base, during = summary["baseline"], summary["with_audit"]
    lines += [
        "",
        f"pooled p50 / p95 push→visible: baseline {_fmt(base.get('p50_s'), ' s')} / "
        f"{_fmt(base.get('p95_s'), ' s')} ({base.get('visible')} pushes), during the audit "
        f"{_fmt(during.get('p50_s'), ' s')} / {_fmt(during.get('p95_s'), ' s')} ({during.get('visible')} "
        f"pushes); p50 ratio {_fmt(summary['p50_ratio'])} (by round {summary['p50_ratio_by_round']}); "
        f"aim ≤ {AIM}: {'met' if summary['aim_met'] else 'NOT met'}",
        f"{summary['tags']} tags seeded in {summary['seed']['seconds']} s; audit pacing "
        f"FERRY_AUDIT_RATE={summary['audit_rate']} requests/s per peer; live sync sends "
        f"{summary['live_sync_requests_per_push']} requests to the target per pushed image; "
        f"jobs created by the rules: {summary['jobs_created_by_rules']}; manual sync jobs of the "
        f"seeded tags: {(summary['history'] or {}).get('statuses')} in "
        f"{(summary['history'] or {}).get('seconds')} s",
    ]
    return "\n".join(lines)
