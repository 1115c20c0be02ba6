#!/usr/bin/env python3
"""Regenerates the results of `cargo bench --bench bridge` as ratios.

Reads criterion's `target/criterion/**/new/{benchmark,estimates}.json` and the
extras the bench binary writes (`target/criterion/bridge-extra.json`: idle CPU,
allocations per operation, core count, load), then

* prints a markdown results table: each of ours beside its best peer and the
  floor, as ratios of medians from the same run, and the issue-3 targets;
* writes an SVG plot of round-trip latency vs number of calling threads;
* with `--readme PATH`, replaces the text between the `<!-- results:begin -->`
  and `<!-- results:end -->` markers of that file with the table;
* if `target/criterion/e2e.json` is there (`cargo bench --bench e2e`), the
  end-to-end table (between the `<!-- e2e:begin -->` and `<!-- e2e:end -->`
  markers) and its plot (`--e2e-svg`, default `benches/e2e.svg`).

Standard library only. Usage (from the repository root):

    cargo bench --bench bridge
    python3 benches/report.py --readme benches/README.md --svg benches/contention.svg
"""

import argparse
import glob
import json
import math
import os
import sys

# The floor every hand-off is compared with: crossbeam bounded(1) ping-pong.
FLOOR = "floor/crossbeam_bounded1"
PARK_FLOOR = "floor/park_unpark"

# Which peers are like-for-like for an entry of ours, where not all of the
# group's peers are (a ready future against ready futures, a fresh loop per
# call against a fresh runtime per call, a sync wait against a sync wait).
PEERS = {
    "inline/ours/block_on_safe_ready": [
        "inline/peer/pollster_ready",
        "inline/peer/futures_executor_ready",
        "inline/peer/tokio_reused_rt_ready",
    ],
    "inline/ours/block_on_safe_yield": [
        "inline/peer/pollster_yield",
        "inline/peer/futures_executor_yield",
        "inline/peer/tokio_reused_rt_yield",
    ],
    "inline/ours/run_ready": ["inline/peer/tokio_new_rt_per_call"],
    "submit/ours/run_coroutine_threadsafe_wait": ["submit/peer/tokio_spawn_join_wait"],
    "submit/ours/run_coroutine_threadsafe_await": ["submit/peer/tokio_spawn_join_await"],
}

GROUP_ORDER = ["floor", "handoff", "inline", "submit", "loop_paths", "executor", "contention"]
# Groups of other bench binaries that are not ours-vs-peers comparisons.
SKIP_GROUPS = {"debug"}
# The groups of benches/streams.rs: their own table (`streams_table`).
STREAM_GROUPS = ["iter_blocking/ready", "iter_blocking/yielding", "stream_in_executor"]
# The groups of benches/bridge.rs; the rest come from other bench binaries.
BRIDGE_GROUPS = {"floor", "handoff", "inline", "submit", "loop_paths", "contention"}
# A whole `cargo bench --bench bridge` run takes about 5 minutes: an entry of
# its groups written longer than this before its extras is from another run.
SAME_RUN_SECONDS = 420


def load(root):
    """full_id -> {group, function, median_ns, lo_ns, hi_ns, mtime}"""
    out = {}
    for bench in glob.glob(os.path.join(root, "**", "new", "benchmark.json"), recursive=True):
        est_path = os.path.join(os.path.dirname(bench), "estimates.json")
        if not os.path.exists(est_path):
            continue
        with open(bench) as f:
            meta = json.load(f)
        with open(est_path) as f:
            est = json.load(f)
        med = est["median"]
        out[meta["full_id"]] = {
            "mtime": os.path.getmtime(est_path),
            "group": meta["group_id"],
            "function": meta["function_id"] or "",
            "value": meta.get("value_str"),
            "median": med["point_estimate"],
            "lo": med["confidence_interval"]["lower_bound"],
            "hi": med["confidence_interval"]["upper_bound"],
        }
    return {k: v for k, v in out.items() if v["group"].split("/")[0] not in SKIP_GROUPS}


def mark_other_runs(data, extra_mtime):
    """Flags entries not measured in the same run as the bridge extras: the
    groups of other bench binaries, and any left over from an older run."""
    for v in data.values():
        ours = v["group"].split("/")[0] in BRIDGE_GROUPS
        v["other_run"] = not ours or (
            extra_mtime is not None
            and not extra_mtime - SAME_RUN_SECONDS <= v["mtime"] <= extra_mtime
        )


def name(fid, data):
    return f"`{fid}`" + (" (other run)" if data[fid].get("other_run") else "")


def fmt_time(ns):
    if ns is None:
        return "-"
    if ns >= 1e6:
        return f"{ns / 1e6:.2f} ms"
    if ns >= 1e3:
        return f"{ns / 1e3:.2f} us"
    return f"{ns:.1f} ns"


def fmt_ratio(r):
    if r is None:
        return "-"
    if r >= 100:
        return f"{r:.0f}x"
    if r >= 10:
        return f"{r:.1f}x"
    return f"{r:.2f}x"


def is_ours(fid):
    """`group/ours/name`, or (the executor bench's style) `group/bridge ...`."""
    parts = fid.split("/")
    return "ours" in parts[1:-1] or parts[-1].startswith("bridge ")


def is_peer(fid):
    parts = fid.split("/")
    return "peer" in parts[1:-1] or (
        not is_ours(fid) and not any(p in ("ours", "peer") for p in parts)
    )


def tail(fid):
    """What an entry measures, without whose it is: `bridge run_in_executor
    round trip` and `tokio spawn_blocking round trip` both give `round trip`."""
    words = fid.split("/")[-1].split(" ")
    return " ".join(words[2:]) if len(words) > 2 else None


def group_key(group):
    head = group.split("/")[0]
    rank = GROUP_ORDER.index(head) if head in GROUP_ORDER else len(GROUP_ORDER)
    tail = group.split("/", 1)[1] if "/" in group else ""
    return (rank, int(tail) if tail.isdigit() else 0, group)


def peers_for(fid, entry, data):
    if fid in PEERS:
        return [p for p in PEERS[fid] if p in data]
    same_group = [
        k for k, v in data.items() if v["group"] == entry["group"] and is_peer(k)
    ]
    t = tail(fid)
    if t is not None:
        return [k for k in same_group if tail(k) == t]
    return same_group


def allocs_of(extra, fid):
    a = extra.get("allocs_per_op", {}).get(fid)
    if a is None:
        return "-"
    return f"{a:.2f}".rstrip("0").rstrip(".") if a != int(a) else str(int(a))


def table(data, extra):
    floor = data.get(FLOOR, {}).get("median")
    park = data.get(PARK_FLOOR, {}).get("median")
    lines = []
    lines.append(
        "| benchmark | median | best like-for-like peer | peer median | ours / peer "
        "| ours / crossbeam floor | ours / park floor | allocs/op (ours, peer) |"
    )
    lines.append("|---|---:|---|---:|---:|---:|---:|---:|")
    groups = sorted({v["group"] for v in data.values()}, key=group_key)
    for g in groups:
        if g in ("floor", "loop_paths") or g in STREAM_GROUPS:
            continue
        for fid in sorted(k for k, v in data.items() if v["group"] == g and is_ours(k)):
            e = data[fid]
            peers = peers_for(fid, e, data)
            best = min(peers, key=lambda p: data[p]["median"]) if peers else None
            pm = data[best]["median"] if best else None
            # Contention figures are per call over all threads: per-thread
            # round trip is N times that; the floor compares round trips.
            n = int(g.split("/")[1]) if g.startswith("contention/") else 1
            rt = e["median"] * n
            # Floor ratios only for a round trip between two threads.
            hop = g in ("handoff", "submit") or g == "contention/1"
            lines.append(
                "| {} | {} | {} | {} | {} | {} | {} | {} |".format(
                    name(fid, data),
                    fmt_time(e["median"]),
                    f"`{best.split('/')[-1]}`" if best else "-",
                    fmt_time(pm),
                    fmt_ratio(e["median"] / pm) if pm else "-",
                    fmt_ratio(rt / floor) if floor and hop else "-",
                    fmt_ratio(rt / park) if park and hop else "-",
                    "{}, {}".format(allocs_of(extra, fid), allocs_of(extra, best) if best else "-"),
                )
            )
    return "\n".join(lines)


def floor_table(data):
    lines = ["| floor (round trip between two threads) | median |", "|---|---:|"]
    for fid in ["floor/spin", "floor/crossbeam_bounded1", "floor/park_unpark"]:
        if fid in data:
            lines.append(f"| {name(fid, data)} | {fmt_time(data[fid]['median'])} |")
    return "\n".join(lines)


def peers_table(data, extra):
    lines = ["| peer | median | allocs/op |", "|---|---:|---:|"]
    for g in sorted({v["group"] for v in data.values()}, key=group_key):
        if g.startswith("contention/") or g in ("floor", "loop_paths") or g in STREAM_GROUPS:
            continue
        for fid in sorted(k for k, v in data.items() if v["group"] == g and not is_ours(k)):
            if not is_peer(fid):
                continue
            lines.append(
                f"| {name(fid, data)} | {fmt_time(data[fid]['median'])} | {allocs_of(extra, fid)} |"
            )
    return "\n".join(lines)


def streams_table(data):
    """benches/streams.rs: time per item of each stream direction beside the
    hand-written pattern it replaces, at each item count."""
    lines = ["| group | items | `bridge` per item | peer | peer per item | bridge / peer |",
             "|---|---:|---:|---|---:|---:|"]
    for g in STREAM_GROUPS:
        sizes = sorted({int(v["value"]) for k, v in data.items()
                        if v["group"] == g and (v["value"] or "").isdigit()})
        for n in sizes:
            ours = data.get(f"{g}/bridge/{n}")
            if not ours:
                continue
            for fid in sorted(k for k, v in data.items() if v["group"] == g
                              and v["value"] == str(n) and v["function"] != "bridge"):
                peer = data[fid]
                lines.append("| `{}` | {} | {} | `{}` | {} | {} |".format(
                    g, n, fmt_time(ours["median"] / n), peer["function"],
                    fmt_time(peer["median"] / n), fmt_ratio(ours["median"] / peer["median"])))
    return "\n".join(lines) if len(lines) > 2 else None


def check(name, value, limit, better_low=True, unit="x"):
    if value is None:
        return f"| {name} | not measured | {limit}{unit} | - |"
    ok = value <= limit if better_low else value >= limit
    return f"| {name} | {value:.2f}{unit} | {'<=' if better_low else '>='} {limit}{unit} | {'met' if ok else '**missed**'} |"


def targets(data, extra):
    def med(k):
        return data.get(k, {}).get("median")

    lines = ["| issue 3 target | measured | target | |", "|---|---:|---:|---|"]
    cb, fl, pk = med("handoff/ours/call_blocking"), med(FLOOR), med(PARK_FLOOR)
    if fl and pk and fl >= pk:
        lines.insert(0, "**The floor of this run is disturbed** (the crossbeam ping-pong, which "
                        "spins before it parks, was not faster than park/unpark): another process "
                        "took the cores; ratios against the floor mean nothing. Run again on a "
                        "quiet machine.\n")
    lines.append(check("`call_blocking(ready)` / crossbeam bounded(1) ping-pong",
                       cb / fl if cb and fl else None, 2.0))
    lines.append(check("fallback: `call_blocking(ready)` / park-unpark ping-pong",
                       cb / pk if cb and pk else None, 1.0))
    a = extra.get("allocs_per_op", {}).get("handoff/ours/call_blocking")
    lines.append(check("`call_blocking(ready)` allocations per call", a, 1.0, unit=""))
    bs, rt = med("inline/ours/block_on_safe_ready"), med("inline/peer/tokio_reused_rt_ready")
    lines.append(check("`block_on_safe(ready)`, no loop / reused current-thread `Runtime::block_on`",
                       bs / rt if bs and rt else None, 1.0))
    a = extra.get("allocs_per_op", {}).get("inline/ours/block_on_safe_ready")
    lines.append(check("`block_on_safe(ready)` allocations per call (warm)", a, 0.0, unit=""))
    o8, p8 = med("contention/8/ours/call_blocking"), med("contention/8/peer/tokio_spawn_oneshot")
    lines.append(check("8 threads: `call_blocking` throughput / `Handle::spawn`+`oneshot` throughput",
                       p8 / o8 if o8 and p8 else None, 1.5, better_low=False))
    if "idle_cpu_ns" in extra:
        idle_us = extra["idle_cpu_ns"] / 1e3
        base_us = extra["idle_baseline_cpu_ns"] / 1e3
        win = extra["idle_window_ms"]
        lines.append(
            f"| process CPU over {win} ms of idleness after a burst of hand-offs "
            f"(the measurement's own cost in an idle process: {base_us:.0f} us) "
            f"| {idle_us:.0f} us ({idle_us / 10 / win:.3f}% of a core) "
            f"| ~0 | {'met' if idle_us - base_us < 1000 else '**missed**'} |"
        )
        q = extra.get("idle_quiet_after_ns")
        sweep = extra["idle_sweep_ns"] / 1e3
        lines.append(
            f"| time until no other thread runs after the burst (the spin winding down; "
            f"resolution {sweep:.0f} us) "
            f"| {'> 20 ms' if q is None else f'{q / 1e3:.0f} us'} "
            f"| tens of us (spin <= 50 us) "
            f"| {'met' if q is not None and q / 1e3 <= 50 + 2 * sweep else '**missed**'} |"
        )
    return "\n".join(lines)


# ---------------------------------------------------------------------------
# Issue 14: every way into a Loop beside call_blocking; the cold hand-off.

# (entry, what it is, allocation budget per call)
LOOP_PATHS = [
    ("loop_paths/ours/loop_spawn_wait", "`LoopHandle::spawn(ready).wait()`", 2),
    ("loop_paths/ours/run_coroutine_threadsafe_wait", "`run_coroutine_threadsafe(ready, &h).wait()`", 2),
    ("loop_paths/ours/loop_handle_block_on", "`LoopHandle::block_on(ready)`", 1),
    ("loop_paths/ours/call_soon_threadsafe_and_wait",
     "`call_soon_threadsafe` + its completion (a promise it fulfils, waited on)", 2),
]
# Where the allocation counts of the entries above are recorded.
ALLOC_KEYS = {
    "loop_paths/ours/run_coroutine_threadsafe_wait": "submit/ours/run_coroutine_threadsafe_wait",
    "loop_paths/ours/loop_handle_block_on": "handoff/ours/loop_handle_block_on",
    "loop_paths/ours/call_blocking": "handoff/ours/call_blocking",
}


def loop_paths_table(data, extra):
    cbs = [data[k]["median"] for k in ("loop_paths/ours/call_blocking",
                                       "loop_paths/ours/call_blocking_again") if k in data]
    if not cbs:
        return None
    cb = min(cbs)
    lines = [
        f"Reference: `call_blocking(ready)` to the worker loop, measured before and after "
        f"the paths below: {', '.join(fmt_time(c) for c in cbs)}; the ratios use the faster "
        f"({fmt_time(cb)}), allocations {allocs_of(extra, ALLOC_KEYS['loop_paths/ours/call_blocking'])} per call.",
        "",
        "| from a plain thread to a warm `Loop` | median | / `call_blocking` | target | allocs/op | budget | |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for fid, what, budget in LOOP_PATHS:
        if fid not in data:
            continue
        m = data[fid]["median"]
        a = extra.get("allocs_per_op", {}).get(ALLOC_KEYS.get(fid, fid))
        ok = m / cb <= 1.5 and (a is None or a <= budget + 0.05)
        lines.append(
            f"| {what} | {fmt_time(m)} | {fmt_ratio(m / cb)} | <= 1.5x "
            f"| {allocs_of(extra, ALLOC_KEYS.get(fid, fid))} | {budget} | {'met' if ok else '**missed**'} |"
        )
    return "\n".join(lines)


COLD_COLUMNS = [
    ("cold/ours/call_blocking", "`call_blocking`"),
    ("cold/ours/loop_handle_block_on", "`Loop` `block_on`"),
    ("cold/ours/block_on_safe_inline", "`block_on_safe` (inline)"),
    ("cold/floor/unpark_parked_thread_spin_reply", "floor: wake a parked thread, spin for its reply"),
    ("cold/floor/park_unpark", "floor: park/unpark ping-pong (both sleep)"),
]


def cold_table(extra):
    cold = extra.get("cold")
    if not cold:
        return None
    by = {(c["name"], c["idle_ms"]): c for c in cold}
    idles = sorted({c["idle_ms"] for c in cold})
    head = "| idle before the call | " + " | ".join(t for _, t in COLD_COLUMNS) + \
        " | `call_blocking` / one wake-up |"
    lines = [head, "|---|" + "---:|" * (len(COLD_COLUMNS) + 1)]
    for ms in idles:
        cells = []
        for k, _ in COLD_COLUMNS:
            c = by.get((k, ms))
            cells.append("-" if c is None else
                         f"{fmt_time(c['median_ns'])} (p90 {fmt_time(c['p90_ns'])})")
        cb, fl = by.get(("cold/ours/call_blocking", ms)), by.get(
            ("cold/floor/unpark_parked_thread_spin_reply", ms))
        r = fmt_ratio(cb["median_ns"] / fl["median_ns"]) if cb and fl else "-"
        label = "none (warm)" if ms == 0 else f"{ms} ms"
        n = by.get(("cold/ours/call_blocking", ms), {}).get("samples", "?")
        lines.append(f"| {label} ({n} samples) | " + " | ".join(cells) + f" | {r} |")
    return "\n".join(lines)


# ---------------------------------------------------------------------------
# Issue 14: end to end (benches/e2e.rs).

E2E_WAYS = [
    ("bridge_call_blocking", "bridge `call_blocking`", True),
    ("bridge_block_on_safe", "bridge `block_on_safe`", True),
    ("runtime_per_thread", "a runtime per handler thread", False),
    ("runtime_thread_channel", "one runtime thread + channel (`reqwest::blocking`)", False),
    ("axum_native", "axum, async handler (ceiling)", False),
]


def e2e_table(e2e):
    rows = {(r["way"], r["clients"]): r for r in e2e["results"]}
    clients = sorted({r["clients"] for r in e2e["results"]})
    lines = [
        f"{e2e['cores']} cores; {e2e['handlers']} `tiny_http` handler threads; "
        f"{e2e['secs']} s measured per cell after 0.3 s of warm-up; medians over "
        f"{e2e['rounds']} rounds (the ways take turns); load average before "
        f"{e2e['load_before']}, after {e2e['load_after']}.",
        "",
        "| clients | way | requests/s | p50 | p99 | CPU per request | / best hand-written | / axum |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    verdicts = []
    for n in clients:
        hand = [rows[(w, n)] for w in ("runtime_per_thread", "runtime_thread_channel") if (w, n) in rows]
        best_hand = max(hand, key=lambda r: r["throughput"]) if hand else None
        axum = rows.get(("axum_native", n))
        for w, label, _ in E2E_WAYS:
            r = rows.get((w, n))
            if r is None:
                continue
            vs_hand = fmt_ratio(r["throughput"] / best_hand["throughput"]) if best_hand else "-"
            vs_axum = fmt_ratio(r["throughput"] / axum["throughput"]) if axum else "-"
            cpu = r.get("cpu_us_per_request")
            lines.append(
                f"| {n} | {label} | {r['throughput']:.0f} | {fmt_time(r['p50_us'] * 1e3)} "
                f"| {fmt_time(r['p99_us'] * 1e3)} | {fmt_time(cpu * 1e3) if cpu else '-'} "
                f"| {vs_hand} | {vs_axum} |"
            )
        ours = [rows[(w, n)] for w, _, o in E2E_WAYS if o and (w, n) in rows]
        if ours and best_hand and axum:
            best = max(ours, key=lambda r: r["throughput"])
            t1 = best["throughput"] / best_hand["throughput"]
            p99 = best["p99_us"] / min(h["p99_us"] for h in hand)
            t2 = best["throughput"] / axum["throughput"]
            verdicts.append(
                f"| {n} | `{best['way']}` | {fmt_ratio(t1)} ({'met' if t1 >= 1 else '**missed**'}) "
                f"| {fmt_ratio(p99)} ({'met' if p99 <= 1.1 else '**missed**'}) "
                f"| {fmt_ratio(t2)} ({'met' if t2 >= 0.8 else '**missed**'}) |"
            )
    if verdicts:
        lines += [
            "",
            "| clients | bridge's best way | throughput / best hand-written (>= 1x) "
            "| p99 / best hand-written p99 (<= 1.1x) | throughput / axum (>= 0.8x) |",
            "|---:|---|---:|---:|---:|",
        ] + verdicts
    return "\n".join(lines)


# The peers' bars, faded beside ours.
FADED = ' fill-opacity="0.55"'


def e2e_svg(e2e):
    rows = {(r["way"], r["clients"]): r for r in e2e["results"]}
    clients = sorted({r["clients"] for r in e2e["results"]})
    ways = [w for w in E2E_WAYS if any((w[0], n) in rows for n in clients)]
    W, H, L, R, T, B = 820, 420, 70, 300, 40, 50
    pw, ph = W - L - R, H - T - B
    top = max(r["throughput"] for r in e2e["results"]) * 1.1
    step = 10 ** math.floor(math.log10(top))
    if top / step < 3:
        step /= 2
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
        f'font-family="sans-serif" font-size="12">',
        f'<rect width="{W}" height="{H}" fill="white"/>',
        f'<text x="{L}" y="22" font-size="14">sync web handler calling an async upstream: '
        f'requests/s (bars), p99 (label)</text>',
    ]
    y = 0.0
    while y <= top:
        py = T + ph * (1 - y / top)
        out.append(f'<line x1="{L}" y1="{py:.1f}" x2="{L + pw}" y2="{py:.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{L - 6}" y="{py + 4:.1f}" text-anchor="end">{y:.0f}</text>')
        y += step
    gw = pw / len(clients)
    bw = gw * 0.8 / max(len(ways), 1)
    for gi, n in enumerate(clients):
        x0 = L + gi * gw + gw * 0.1
        for wi, (w, label, ours) in enumerate(ways):
            r = rows.get((w, n))
            if r is None:
                continue
            h = ph * r["throughput"] / top
            x = x0 + wi * bw
            color = COLORS[wi % len(COLORS)]
            out.append(f'<rect x="{x:.1f}" y="{T + ph - h:.1f}" width="{bw * 0.9:.1f}" '
                       f'height="{h:.1f}" fill="{color}"'
                       f'{"" if ours else FADED}/>')
            out.append(f'<text x="{x + bw * 0.45:.1f}" y="{T + ph - h - 4:.1f}" font-size="9" '
                       f'text-anchor="middle">{r["p99_us"] / 1e3:.1f}ms</text>')
        out.append(f'<text x="{L + gi * gw + gw / 2:.1f}" y="{T + ph + 18}" '
                   f'text-anchor="middle">{n} client{"s" if n > 1 else ""}</text>')
    out.append(f'<rect x="{L}" y="{T}" width="{pw}" height="{ph}" fill="none" stroke="#333"/>')
    for wi, (w, label, ours) in enumerate(ways):
        ly = T + 14 + 20 * wi
        color = COLORS[wi % len(COLORS)]
        out.append(f'<rect x="{L + pw + 15}" y="{ly - 10}" width="20" height="10" fill="{color}"'
                   f'{"" if ours else FADED}/>')
        out.append(f'<text x="{L + pw + 42}" y="{ly}">{label.replace("`", "")}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------
# The plot: per-thread round-trip latency vs calling threads, log y axis.

COLORS = ["#d62728", "#ff7f0e", "#1f77b4", "#2ca02c", "#9467bd", "#8c564b", "#17becf"]


def svg_plot(data):
    series = {}
    for fid, e in data.items():
        if not e["group"].startswith("contention/"):
            continue
        n = int(e["group"].split("/")[1])
        name = fid.split("/", 2)[2]  # "ours/call_blocking"
        # Per call over all threads times N: what one calling thread waits.
        series.setdefault(name, []).append((n, e["median"] * n))
    if not series:
        return None
    for s in series.values():
        s.sort()
    xs = sorted({n for s in series.values() for n, _ in s})
    ys = [v for s in series.values() for _, v in s]
    ymin, ymax = min(ys), max(ys)
    lo = 10 ** math.floor(math.log10(ymin))
    hi = 10 ** math.ceil(math.log10(ymax))
    W, H, L, R, T, B = 760, 460, 70, 250, 40, 50
    pw, ph = W - L - R, H - T - B

    def px(n):
        i = xs.index(n)
        return L + (pw * i / (len(xs) - 1) if len(xs) > 1 else pw / 2)

    def py(v):
        return T + ph * (1 - (math.log10(v) - math.log10(lo)) / (math.log10(hi) - math.log10(lo)))

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
        f'font-family="sans-serif" font-size="12">',
        f'<rect width="{W}" height="{H}" fill="white"/>',
        f'<text x="{L}" y="22" font-size="14">Round-trip latency per calling thread '
        f'(median; log scale) vs calling threads</text>',
    ]
    d = lo
    while d <= hi * 1.0001:
        y = py(d)
        out.append(f'<line x1="{L}" y1="{y:.1f}" x2="{L + pw}" y2="{y:.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{L - 6}" y="{y + 4:.1f}" text-anchor="end">{fmt_time(d)}</text>')
        d *= 10
    for n in xs:
        x = px(n)
        out.append(f'<line x1="{x:.1f}" y1="{T}" x2="{x:.1f}" y2="{T + ph}" stroke="#eee"/>')
        out.append(f'<text x="{x:.1f}" y="{T + ph + 18}" text-anchor="middle">{n}</text>')
    out.append(f'<text x="{L + pw / 2}" y="{H - 10}" text-anchor="middle">calling threads</text>')
    out.append(f'<rect x="{L}" y="{T}" width="{pw}" height="{ph}" fill="none" stroke="#333"/>')
    for i, (name, pts) in enumerate(sorted(series.items())):
        color = COLORS[i % len(COLORS)]
        dash = "" if name.startswith("ours") else ' stroke-dasharray="6,4"'
        path = " ".join(f"{px(n):.1f},{py(v):.1f}" for n, v in pts)
        out.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2"{dash}/>')
        for n, v in pts:
            out.append(f'<circle cx="{px(n):.1f}" cy="{py(v):.1f}" r="3" fill="{color}"/>')
        ly = T + 14 + 20 * i
        out.append(f'<line x1="{L + pw + 15}" y1="{ly - 4}" x2="{L + pw + 40}" y2="{ly - 4}" '
                   f'stroke="{color}" stroke-width="2"{dash}/>')
        out.append(f'<text x="{L + pw + 46}" y="{ly}">{name}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--criterion", default=os.environ.get("CRITERION_HOME") or os.path.join(
        os.environ.get("CARGO_TARGET_DIR", "target"), "criterion"))
    ap.add_argument("--svg", default="benches/contention.svg")
    ap.add_argument("--readme", help="rewrite the results section of this file")
    ap.add_argument("--only", help="rewrite only these sections (comma-separated: results, "
                    "streams, e2e), e.g. after running one bench binary")
    ap.add_argument("--e2e-svg", default="benches/e2e.svg")
    args = ap.parse_args()

    data = load(args.criterion)
    if not data:
        sys.exit(f"no criterion results under {args.criterion}: run `cargo bench --bench bridge`")
    extra = {}
    extra_path = os.path.join(args.criterion, "bridge-extra.json")
    if os.path.exists(extra_path):
        with open(extra_path) as f:
            extra = json.load(f)
    mark_other_runs(data, os.path.getmtime(extra_path) if extra else None)

    parts = []
    if extra:
        parts.append(
            f"Machine: {extra.get('cores', '?')} cores ({extra.get('cpu_model', '?')}); "
            f"load average (1/5/15 min) before the run {extra.get('load_before', '?')}, "
            f"after {extra.get('load_after', '?')}."
        )
    lp = loop_paths_table(data, extra)
    if lp:
        parts += ["### Every way into a `Loop` (issue 14)", lp]
    cold = cold_table(extra)
    if cold:
        parts += ["### The first call after a pause (issue 14)",
                  "Medians (and 90th percentiles) of the first call after the caller and the "
                  "loops were idle that long, each way taking turns, in the same run. The floor "
                  "columns are two threads of this process: one wakes the other, which answers.",
                  cold]
    parts += ["### Targets", targets(data, extra), "### Floor", floor_table(data),
              "### Ours beside the peers",
              "Medians. *ours / peer* below 1 means ours is faster. Contention rows: time per "
              "call over all threads (inverse throughput); the plot shows per-thread round trips. "
              "*(other run)*: from another run (another bench binary such as `executor`, or an "
              "older run), not comparable with the floor of this run.",
              table(data, extra), "### Peers", peers_table(data, extra)]
    text = "\n\n".join(parts) + "\n"
    print(text)

    svg = svg_plot(data)
    if svg and args.svg:
        with open(args.svg, "w") as f:
            f.write(svg)
        print(f"plot written: {args.svg}", file=sys.stderr)

    sections = [("results", text)]
    streams = streams_table(data)
    if streams:
        print(streams)
        sections.append(("streams", streams + "\n"))
    e2e_path = os.path.join(args.criterion, "e2e.json")
    if os.path.exists(e2e_path):
        with open(e2e_path) as f:
            e2e = json.load(f)
        e2e_text = e2e_table(e2e) + "\n"
        print(e2e_text)
        sections.append(("e2e", e2e_text))
        if args.e2e_svg:
            with open(args.e2e_svg, "w") as f:
                f.write(e2e_svg(e2e))
            print(f"plot written: {args.e2e_svg}", file=sys.stderr)

    if args.readme:
        with open(args.readme) as f:
            readme = f.read()
        only = set(args.only.split(",")) if args.only else None
        for marker, body in sections:
            if only is not None and marker not in only:
                continue
            begin, end = f"<!-- {marker}:begin -->", f"<!-- {marker}:end -->"
            if begin not in readme or end not in readme:
                print(f"{args.readme} has no {begin} ... {end} markers: {marker} not written",
                      file=sys.stderr)
                continue
            head, rest = readme.split(begin, 1)
            _, tail = rest.split(end, 1)
            readme = head + begin + "\n" + body + end + tail
        with open(args.readme, "w") as f:
            f.write(readme)
        print(f"results written into {args.readme}", file=sys.stderr)


if __name__ == "__main__":
    main()
