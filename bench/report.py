#!/usr/bin/env python3
"""report.py — rows, tables and plots of bench/compare.sh (issues 6 and 12).

Pure functions over the JSON rows that runnel-bench prints (one per line),
so the table logic is unit-tested (tests/unit/bench/test_report.py) without
running any server. Subcommands:

  row     wrap one subcommand run (its stdout, stderr, exit status) into
          exactly one JSON row: the subcommand's own row, or a "blocked" /
          "failed" row that says why there is none
  skip    the row of a config that was not run because its peer could not
          be installed: {"skipped": reason}
  get     print a field of the row with a given label and config
  report  write RESULTS.md and the PNG plots (gnuplot) from results.jsonl
"""
import argparse
import json
import os
import shutil
import subprocess
import sys

# config name -> (system, durability, durable); the subcommands state the same
CONFIGS = {
    "runnel-sync": ("runnel", "sync", True),
    "runnel-interval": ("runnel", "interval", False),
    "redis-always": ("redis", "always", True),
    "redis-everysec": ("redis", "everysec", False),
    "nats-always": ("nats", "sync_always", True),
    "nats-default": ("nats", "default", False),
    "kafka-always": ("kafka", "flush_every_message", True),
    "kafka-default": ("kafka", "default", False),
}
# which config of each peer has the same durability class as runnel's
PAIRS = {"runnel-sync": ("redis-always", "nats-always", "kafka-always"),
         "runnel-interval": ("redis-everysec", "nats-default", "kafka-default")}

WORKLOADS = [
    ("a-max-1k", "(a) max throughput, 1 KiB records, 16 shards/streams, 4 producers, 4 consumers"),
    ("b-rate-25", "(b) fixed rate, 25 % of runnel's durable max from (a); latency from the intended send time"),
    ("b-rate-50", "(b) fixed rate, 50 % of runnel's durable max from (a); latency from the intended send time"),
    ("c-max-100b", "(c) max records/s, 100-byte records"),
    ("d-fanout-4", "(d) fan-out: 4 independent consumer groups reading every record"),
    ("e-catchup", "(e) catch-up read of a backlog (records/s = reading the backlog)"),
    ("f-group-rebalance", "(f) runnel only: a 4-member consumer group over 16 shards at 25 % of the durable max; "
                          "member 0 abandoned (like kill -9) mid-run"),
]


def make_row(label, config, rc, stdout, stderr):
    """One JSON row (a dict) for one subcommand run."""
    system, durability, durable = CONFIGS.get(config, (config, "?", False))
    row = None
    for line in stdout.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                row = json.loads(line)
            except ValueError:
                pass
    errlines = [l for l in stderr.splitlines() if l.strip()]
    if row is None:
        row = {"bench": system, "system": system, "label": label, "durability": durability, "durable": durable}
        why = next((l for l in errlines if "BLOCKED" in l), None)
        if rc == 3 or why:
            row["blocked"] = (why or (errlines[-1] if errlines else "blocked")).split("BLOCKED: ", 1)[-1]
        else:
            row["run_failed"] = errlines[-1] if errlines else "exit status %d, no output" % rc
    elif rc:
        row["run_failed"] = next((l for l in errlines if "kept" not in l), "exit status %d" % rc)
    row["label"] = label
    row["config"] = config
    row["exit_status"] = rc
    return row


def skip_row(label, config, reason, shards=None):
    """The row of a config whose peer could not be installed."""
    system, durability, durable = CONFIGS.get(config, (config, "?", False))
    row = {"bench": system, "system": system, "label": label, "config": config, "durability": durability,
           "durable": durable, "skipped": reason}
    if shards:
        row["shards"] = shards
    return row


def not_run(r):
    """Why a row has no measurement ("blocked: ..." / "skipped: ..."), or None."""
    if r is None:
        return None
    if "blocked" in r:
        return "blocked"
    if "skipped" in r:
        return "skipped"
    return None


def load(path):
    rows = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                rows.append(json.loads(line))
    return rows


def find(rows, label, config):
    return next((r for r in rows if r.get("label") == label and r.get("config") == config), None)


def main_value(row):
    """records/s that the workload is about (reading for the catch-up)."""
    if row is None or "blocked" in row or "skipped" in row or "records_per_s" not in row:
        return None
    if row.get("backlog_bytes"):
        return row.get("read_records_per_s") or None
    return row.get("records_per_s") or None


def ratio(a, b):
    if a is None or b is None or not b:
        return None
    return a / b


def fmt_ratio(x):
    return "—" if x is None else "%.2f×" % x


def fmt_us(us):
    if us is None:
        return "—"
    return "%.2f ms" % (us / 1000.0) if us >= 1000 else "%d µs" % us


def fmt_num(x, digits=0):
    return "—" if x is None else ("{:,.%df}" % digits).format(x)


def row_status(r):
    if "blocked" in r:
        return "blocked: " + r["blocked"]
    if "skipped" in r:
        return "skipped: " + r["skipped"]
    if "run_failed" in r and "records_per_s" not in r:
        return "FAILED: " + r["run_failed"]
    bits = []
    if "run_failed" in r:
        bits.append("FAILED: " + r["run_failed"])
    if r.get("missing"):
        bits.append("%d missing" % r["missing"])
    if r.get("failed"):
        bits.append("%d failed" % r["failed"])
    if r.get("error"):
        bits.append("error " + r["error"])
    return "; ".join(bits)


def results_table(rows, label, shards_col=False):
    """Markdown table of one workload's rows (label None: every row given)."""
    out = ["| %ssystem | durability | durable | records/s | MB/s | raw MB/s | ×raw | publish p50 / p99 | "
           "e2e p50 / p99 / p99.9 | server CPU | note |" % ("shards | load | " if shards_col else ""),
           "|%s---|---|---|---:|---:|---:|---:|---|---|---:|---|" % ("---:|---|" if shards_col else "")]
    for r in rows:
        if label is not None and r.get("label") != label:
            continue
        lead = ""
        if shards_col:
            lead = "%s | %s | " % (r.get("shards", "?"),
                                   "max" if not r.get("rate") else "%s/s (¼ max)" % fmt_num(r.get("rate")))
        note = "; ".join(x for x in (r.get("note", ""), row_status(r)) if x)
        if "records_per_s" not in r:
            out.append("| %s%s | %s | %s | — | — | — | — | — | — | — | %s |" % (
                lead, r.get("system"), r.get("durability"), "yes" if r.get("durable") else "no", note))
            continue
        catchup = bool(r.get("backlog_bytes"))
        rps = main_value(r)
        mbs = r.get("read_mb_per_s") if catchup else r.get("mb_per_s")
        e2e = "—" if catchup else "%s / %s / %s" % (fmt_us(r.get("e2e_p50_us")), fmt_us(r.get("e2e_p99_us")),
                                                   fmt_us(r.get("e2e_p999_us")))
        out.append("| %s%s | %s | %s | %s | %s | %s | %s | %s / %s | %s | %s | %s |" % (
            lead, r.get("system"), r.get("durability"), "yes" if r.get("durable") else "no", fmt_num(rps),
            fmt_num(mbs, 1), fmt_num(r.get("raw_mb_per_s"), 1), "—" if catchup else "%.3f" % r.get("ratio_to_raw", 0),
            fmt_us(r.get("pub_p50_us")), fmt_us(r.get("pub_p99_us")), e2e,
            "%.2f" % r["broker_cpu"] if r.get("broker_cpu", -1) >= 0 else "—", note))
    return "\n".join(out)


def ratio_table(rows):
    """runnel / peer ratios per workload and durability class."""
    out = ["| workload | durability | runnel records/s | runnel/redis | runnel/nats | runnel/kafka | "
           "runnel/raw (MB/s) | e2e p99 runnel / redis / nats / kafka |", "|---|---|---:|---:|---:|---:|---:|---|"]
    for label, _ in WORKLOADS:
        for rcfg, peers in PAIRS.items():
            rr = find(rows, label, rcfg)
            if rr is None:
                continue
            prow = [find(rows, label, c) for c in peers]
            v = main_value(rr)
            catchup = bool(rr.get("backlog_bytes"))
            def rtxt(p):
                return not_run(p) or fmt_ratio(ratio(v, main_value(p)))
            raw = None if catchup or "records_per_s" not in rr else rr.get("ratio_to_raw")
            def p99(r):
                if r is None or "e2e_p99_us" not in r or catchup:
                    return not_run(r) or "—"
                return fmt_us(r["e2e_p99_us"])
            out.append("| %s | %s | %s | %s | %s | %s |" % (
                label, "durable" if CONFIGS[rcfg][2] else "relaxed", fmt_num(v),
                " | ".join(rtxt(p) for p in prow), fmt_ratio(raw), " / ".join(p99(r) for r in [rr] + prow)))
    return "\n".join(out)


def targets(rows):
    """The issue's targets, checked on the durable rows of this run."""
    a = find(rows, "a-max-1k", "runnel-sync")
    lines = []
    v = main_value(a)
    rd, rn = main_value(find(rows, "a-max-1k", "redis-always")), find(rows, "a-max-1k", "nats-always")
    def verdict(x, goal):
        return "—" if x is None else ("met" if x >= goal else "NOT met")
    x = ratio(v, rd)
    lines.append("- runnel ≥ 3× Redis Streams (durable, 1 KiB, records/s): %s — %s" % (fmt_ratio(x), verdict(x, 3)))
    if not_run(rn):
        lines.append("- runnel ≥ 5× NATS JetStream (durable): %s — %s" % (not_run(rn), rn[not_run(rn)]))
    else:
        x = ratio(v, main_value(rn))
        lines.append("- runnel ≥ 5× NATS JetStream (durable): %s — %s" % (fmt_ratio(x), verdict(x, 5)))
    x = a.get("ratio_to_raw") if a and "ratio_to_raw" in a else None
    lines.append("- runnel ≥ 0.7× the raw fdatasync limit: %s — %s" % (fmt_ratio(x), verdict(x, 0.7)))
    for label in ("b-rate-25", "b-rate-50"):
        r = find(rows, label, "runnel-sync")
        if r is None or "e2e_p99_us" not in r:
            continue
        peers = []
        for cfg in ("redis-always", "nats-always", "kafka-always"):
            p = find(rows, label, cfg)
            if p is None and cfg == "kafka-always":
                continue
            if p is None or "e2e_p99_us" not in p:
                peers.append("%s: %s" % (cfg, not_run(p) or "—"))
            else:
                peers.append("%s %s (%s)" % (cfg, fmt_us(p["e2e_p99_us"]),
                                             "lower" if r["e2e_p99_us"] < p["e2e_p99_us"] else "NOT lower"))
        lines.append("- %s, e2e p99: runnel %s vs %s" % (label, fmt_us(r["e2e_p99_us"]), ", ".join(peers)))
    return "\n".join(lines)


# ---- the shard sweep (issue 12) ---------------------------------------------------

def sweep_shards(rows):
    """Shard counts of the sweep rows (labels sweep-max-N / sweep-q25-N), ascending."""
    out = set()
    for r in rows:
        lab = r.get("label", "")
        if lab.startswith("sweep-"):
            try:
                out.add(int(lab.rsplit("-", 1)[1]))
            except ValueError:
                pass
    return sorted(out)


def sweep_configs(rows):
    seen = []
    for r in rows:
        if r.get("label", "").startswith("sweep-") and r.get("config") not in seen:
            seen.append(r.get("config"))
    return seen


def sweep_table(rows, config):
    """One config over the shard counts: max (×raw) and ¼ max (percentiles)."""
    out = ["| shards | max records/s | MB/s | raw MB/s | ×raw | server CPU | ¼-max rate | e2e p50 / p99 / p99.9 | "
           "publish p50 / p99 / p99.9 | note |", "|---:|---:|---:|---:|---:|---:|---:|---|---|---|"]
    for n in sweep_shards(rows):
        m, q = find(rows, "sweep-max-%d" % n, config), find(rows, "sweep-q25-%d" % n, config)
        if m is None and q is None:
            continue
        note = "; ".join(x for x in (row_status(m) if m else "", ("¼: " + row_status(q)) if q and row_status(q)
                                     else "") if x)
        def pct(r, k):
            if r is None or k + "_p50_us" not in r:
                return "—"
            return "%s / %s / %s" % (fmt_us(r[k + "_p50_us"]), fmt_us(r[k + "_p99_us"]), fmt_us(r[k + "_p999_us"]))
        has = m is not None and "records_per_s" in m
        out.append("| %d | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            n, fmt_num(main_value(m)), fmt_num(m.get("mb_per_s"), 1) if has else "—",
            fmt_num(m.get("raw_mb_per_s"), 1) if has else "—", "%.3f" % m["ratio_to_raw"] if has else "—",
            "%.2f" % m["broker_cpu"] if has and m.get("broker_cpu", -1) >= 0 else "—",
            fmt_num(q.get("rate")) if q else "—", pct(q, "e2e"), pct(q, "pub"), note))
    return "\n".join(out)


def sweep_targets(rows):
    """The issue-12 targets on this run (runnel in sync)."""
    lines = []
    def verdict(ok):
        return "—" if ok is None else ("met" if ok else "NOT met")
    p99 = {}
    for n in sweep_shards(rows):
        q = find(rows, "sweep-q25-%d" % n, "runnel-sync")
        if q is not None and "e2e_p99_us" in q and not row_status(q):
            p99[n] = q["e2e_p99_us"]
    for n in sorted(p99):
        if n <= 64:
            lines.append("- ¼ max, %d shard(s): e2e p99 %s ≤ 5 ms — %s" % (n, fmt_us(p99[n]), verdict(p99[n] <= 5000)))
    if 256 in p99:
        base = p99.get(1)
        lines.append("- ¼ max, 256 shards: e2e p99 %s ≤ 2× the 1-shard p99 (%s) — %s" % (
            fmt_us(p99[256]), fmt_us(base), verdict(None if base is None else p99[256] <= 2 * base)))
    m16 = find(rows, "sweep-max-16", "runnel-sync")
    if m16 is not None and "ratio_to_raw" in m16:
        x = m16["ratio_to_raw"]
        lines.append("- max, 16 shards: %.2f× the raw loop ≥ 0.8× — %s" % (x, verdict(x >= 0.8)))
    # peers: the 16-shard max rows (a-max-1k), runnel from (a) or else the sweep's 16-shard row
    a = find(rows, "a-max-1k", "runnel-sync")
    v = main_value(a) if a is not None else main_value(m16)
    for cfg, goal, what in (("kafka-always", 2, "Kafka's durable row (log.flush.interval.messages=1)"),
                            ("kafka-default", 1, "Kafka's relaxed row (defaults)"),
                            ("nats-always", 5, "NATS's durable row (sync_interval: always)")):
        p = find(rows, "a-max-1k", cfg)
        if p is None:
            continue
        if not_run(p):
            lines.append("- max, 16 shards: runnel ≥ %d× %s: %s — %s" % (goal, what, not_run(p), p[not_run(p)]))
            continue
        x = ratio(v, main_value(p))
        lines.append("- max, 16 shards: runnel ≥ %d× %s: %s — %s" % (goal, what, fmt_ratio(x),
                                                                   verdict(None if x is None else x >= goal)))
    return "\n".join(lines) if lines else "- no sweep rows in this run"


def write_sweep_plots(rows, resdir):
    """sweep-p99.gp (e2e and publish p99 at ¼ max vs shards) and
    sweep-ratio.gp (×raw at max vs shards), one series per config.
    Returns the script names written."""
    cfgs = sweep_configs(rows)
    if not cfgs or not sweep_shards(rows):
        return []
    p99_series, ratio_series = [], []
    for c in cfgs:
        dq, dm = "sweep-q25-%s.dat" % c, "sweep-max-%s.dat" % c
        nq = nm = 0
        with open(os.path.join(resdir, dq), "w") as fq, open(os.path.join(resdir, dm), "w") as fm:
            fq.write("# shards e2e_p99_us pub_p99_us e2e_p50_us\n")
            fm.write("# shards ratio_to_raw records_per_s\n")
            for n in sweep_shards(rows):
                q, m = find(rows, "sweep-q25-%d" % n, c), find(rows, "sweep-max-%d" % n, c)
                if q is not None and "e2e_p99_us" in q:
                    fq.write("%d %d %d %d\n" % (n, max(q["e2e_p99_us"], 1), max(q["pub_p99_us"], 1),
                                                max(q["e2e_p50_us"], 1)))
                    nq += 1
                if m is not None and "ratio_to_raw" in m:
                    fm.write("%d %.4f %.0f\n" % (n, m["ratio_to_raw"], m["records_per_s"]))
                    nm += 1
        if nq:
            p99_series += ["'%s' using 1:($2/1000) with linespoints lw 2 title '%s e2e p99'" % (dq, c),
                           "'%s' using 1:($3/1000) with linespoints dt 2 title '%s publish p99'" % (dq, c)]
        if nm:
            ratio_series.append("'%s' using 1:2 with linespoints lw 2 title '%s'" % (dm, c))
    scripts = []
    ns = sweep_shards(rows)
    xt = "set xtics (%s)\nset xrange [%g:%g]" % (", ".join("'%d' %d" % (n, n) for n in ns), ns[0] / 1.4, ns[-1] * 1.4)
    if p99_series:
        with open(os.path.join(resdir, "sweep-p99.gp"), "w") as f:
            f.write("\n".join(["set terminal pngcairo size 1000,600 noenhanced", "set output 'sweep-p99.png'",
                               "set title 'p99 latency at a quarter of each shard count''s maximum (sync)'",
                               "set logscale x 2", "set logscale y", "set grid", xt,
                               "set xlabel 'shards'", "set ylabel 'milliseconds'", "set key top left",
                               "set arrow from graph 0, first 5 to graph 1, first 5 nohead dt 3",
                               "plot " + ", ".join(p99_series)]) + "\n")
        scripts.append("sweep-p99.gp")
    if ratio_series:
        with open(os.path.join(resdir, "sweep-ratio.gp"), "w") as f:
            f.write("\n".join(["set terminal pngcairo size 1000,600 noenhanced", "set output 'sweep-ratio.png'",
                               "set title 'maximum throughput / raw write+fdatasync loop of the same row'",
                               "set logscale x 2", "set grid", xt, "set yrange [0:*]",
                               "set xlabel 'shards'", "set ylabel 'x raw'", "set key top right",
                               "set arrow from graph 0, first 0.8 to graph 1, first 0.8 nohead dt 3",
                               "plot " + ", ".join(ratio_series)]) + "\n")
        scripts.append("sweep-ratio.gp")
    return scripts


# ---- plots --------------------------------------------------------------------

def write_plots(rows, resdir):
    """gnuplot data + scripts into resdir (paths relative to it, so
    `cd results && gnuplot throughput.gp` redraws); PNGs when gnuplot is
    there. Returns the list of PNG file names written."""
    made = []
    gp = shutil.which("gnuplot")
    # throughput bars: one cluster per workload, one bar per config
    cfgs = [c for c in CONFIGS if any(r.get("config") == c for r in rows)] or list(CONFIGS)
    with open(os.path.join(resdir, "throughput.dat"), "w") as f:
        f.write("# workload " + " ".join(cfgs) + "\n")
        for label, _ in WORKLOADS:
            vals = [main_value(find(rows, label, c)) for c in cfgs]
            if any(v is not None for v in vals):
                f.write(label + " " + " ".join("%.0f" % v if v is not None else "0" for v in vals) + "\n")
    script = ["set terminal pngcairo size 1200,600 noenhanced",
              "set output 'throughput.png'",
              "set title 'records/s per workload (catch-up: reading the backlog); blocked rows are 0'",
              "set style data histograms", "set style histogram cluster gap 1", "set style fill solid 0.8 border -1",
              "set boxwidth 0.9", "set ylabel 'records/s'", "set grid ytics", "set key top right",
              "set xtics rotate by -20",
              "plot " + ", ".join("'throughput.dat' using %d:xtic(1) title '%s'" % (i + 2, c)
                                  for i, c in enumerate(cfgs))]
    with open(os.path.join(resdir, "throughput.gp"), "w") as f:
        f.write("\n".join(script) + "\n")
    scripts = ["throughput.gp"]
    # latency-percentile curves at the fixed rates
    for label in ("b-rate-25", "b-rate-50"):
        series = []
        for c in cfgs:
            r = find(rows, label, c)
            if r is None or "e2e_pct_us" not in r or not r.get("pct_q"):
                continue
            dat = "latency-%s-%s.dat" % (label, c)
            with open(os.path.join(resdir, dat), "w") as f:
                f.write("# percentile e2e_us pub_us\n")
                for q, e, p in zip(r["pct_q"], r["e2e_pct_us"], r["pub_pct_us"]):
                    f.write("%.4f %d %d\n" % (100 * q, max(e, 1), max(p, 1)))
            series.append((c, dat))
        if not series:
            continue
        png = "latency-%s.png" % label
        rate = next((find(rows, label, c) for c, _ in series), {}).get("rate", 0)
        script = ["set terminal pngcairo size 1000,600 noenhanced", "set output '%s'" % png,
                  "set title 'end-to-end latency from the intended send time, %s (%.0f records/s)'" % (label, rate),
                  "set logscale x", "set logscale y", "set grid",
                  "set xlabel 'percentile'", "set ylabel 'microseconds'", "set key top left",
                  "set xtics ('50' 2, '90' 10, '99' 100, '99.9' 1000, '99.99' 10000)",
                  "plot " + ", ".join("'%s' using (1/(1-$1/100)):2 with linespoints title '%s'" % (d, c)
                                      for c, d in series)]
        name = "latency-%s.gp" % label
        with open(os.path.join(resdir, name), "w") as f:
            f.write("\n".join(script) + "\n")
        scripts.append(name)
    scripts += write_sweep_plots(rows, resdir)
    if gp:
        for s in scripts:
            if subprocess.call([gp, s], cwd=resdir) == 0:
                made.append(s[:-3] + ".png")
    return made


def render(rows, meta, pngs):
    """The whole RESULTS.md text."""
    out = ["# runnel side by side: Redis Streams, NATS JetStream, Apache Kafka, the machine's limit", "",
           "Produced by `bench/compare.sh` (see bench/README.md); every figure below comes from one run on one "
           "machine. Ratios, not absolute times, are the point: the machine is shared and noisy.", ""]
    if meta.get("quick"):
        out += ["**Quick mode (`--quick`): smoke-test sizes (%s s per row, backlog %s). These figures are too short "
                "to quote; run `bench/compare.sh` without `--quick` for the real table.**" % (
                    meta.get("duration_s"), meta.get("backlog")), ""]
    out += ["## Run", "", "```", meta.get("command", "?"), "```", "",
            "| fact | value |", "|---|---|"]
    for k in ("date", "os", "kernel", "nproc", "cpu", "memory", "disk", "loadavg_before", "loadavg_after"):
        out.append("| %s | %s |" % (k, meta.get(k, "?")))
    for p, v in sorted(meta.get("packages", {}).items()):
        out.append("| %s | %s |" % (p, v))
    for p, v in meta.get("peers", {}).items():
        out.append("| %s | %s |" % (p, v))
    versions = {}
    for r in rows:
        if r.get("server_version") and r.get("system") not in versions:
            versions[r["system"]] = r["server_version"]
    for k, v in sorted(versions.items()):
        out.append("| %s server (as measured) | %s |" % (k, v))
    for k, v in sorted(meta.get("skipped", {}).items()):
        out.append("| skipped: %s | %s |" % (k, v))
    for n in meta.get("peer_notes", []):
        out.append("| peer note | %s |" % n)
    tcp = [r for r in rows if r.get("bench") == "tcp"]
    out += ["", "## Physical limit", "",
            "- raw sequential write + fdatasync (pwrite of the row's `raw_write_size`, 1 MiB, then fdatasync, in a "
            "loop, alternating with the system in every row): see the `raw MB/s` column",
           ]
    for r in tcp:
        out.append("- loopback TCP, %d stream(s), writes of %d B: %.0f MB/s" % (r["streams"], r["write_size"],
                                                                               r["mb_per_s"]))
    shards = sweep_shards(rows)
    if shards:
        out += ["", "## Shard sweep (issue 12)", "",
                "Each shard count runs at its maximum (records/s, ×raw = MB/s over the raw write+fdatasync loop "
                "measured in the same row's alternating slices), then at a quarter of that maximum (latency from the "
                "intended send time). 1 KiB records, 4 producers, min(4, shards) consumers in one group.", ""]
        for c in sweep_configs(rows):
            out += ["### %s over the shard counts" % c, "", sweep_table(rows, c), ""]
        out += ["### Targets of issue 12", "", sweep_targets(rows), ""]
        for n in shards:
            sel = [r for r in rows if r.get("label") in ("sweep-max-%d" % n, "sweep-q25-%d" % n)]
            out += ["### %d shard%s" % (n, "" if n == 1 else "s"), "", results_table(sel, None, shards_col=True), ""]
    if any(r.get("label") in dict(WORKLOADS) for r in rows):
        out += ["", "## Ratios", "", ratio_table(rows), "", "## Targets of issue 6 (durable rows)", "",
                targets(rows), ""]
    for label, title in WORKLOADS:
        if any(r.get("label") == label for r in rows):
            out += ["## %s" % title, "", results_table(rows, label), ""]
    for r in rows:
        if r.get("label") == "f-group-rebalance" and "rebalance_resume_ms" in r:
            out += ["Rebalance after the member was abandoned (session timeout %s ms excluded): survivors hold every "
                    "shard after **%.0f ms**, first record of a moved shard after **%.0f ms**." % (
                        r.get("session_timeout_ms"), r.get("rebalance_assign_ms", -1), r.get("rebalance_resume_ms", -1)),
                    ""]
    if pngs:
        out += ["## Plots", ""] + ["![%s](results/%s)" % (p[:-4], p) for p in pngs] + [""]
    out += ["## How to read it", "",
            "- durability: runnel `sync` acks after fdatasync (group commit), `interval` acks from the page cache "
            "and syncs every interval; Redis `always` = `appendonly yes` + `appendfsync always`, `everysec` = "
            "`appendfsync everysec`; NATS `sync_always` = `sync_interval: always` (nats-server >= 2.10, installed "
            "with `go install`; Debian's 2.9.10 refuses it and the row is blocked there), `default` = JetStream's "
            "default (acks from the page cache, fsync every 2 min); Kafka `flush_every_message` = "
            "`log.flush.interval.messages=1` on one KRaft broker (fsync of the partition after every append, "
            "before the ack; acks=all, no replication), `default` = Kafka's defaults (page cache, no fsync: "
            "Kafka relies on replication, which one broker does not have).",
            "- skipped rows: the peer could not be installed on this machine (the reason is in the row and in the "
            "Run table); blocked rows: the installed server refused the durability mode.",
            "- records/s counts acknowledged records over the measured slices (catch-up: records read / time to "
            "read the whole backlog); MB = 10^6 bytes of record data.",
            "- latencies are from each record's *intended* send time: publish = acknowledgement, e2e = a consumer "
            "receiving it; at max rate they are mostly the producer's queue.",
            "- ×raw = the row's MB/s over the raw write+fdatasync loop measured in the same row's alternating slices.",
            "- consumers: runnel reads through consumer groups (4 members over 16 shards, broker-side assignment, "
            "checkpoints every second), Redis through XREADGROUP groups, NATS through durable pull consumers, "
            "Kafka through consumer groups (librdkafka, range assignment, auto-commit every second); fan-out (d) "
            "runs 4 such groups. Kafka's rows get a longer unmeasured warm-up (a JVM: JIT and start-up).",
            "- rebalance (f): from the moment the abandoned member's session ran out (its last answered heartbeat "
            "or commit + the session timeout) until the survivors hold every shard, and until the first record "
            "of one of its shards reached a survivor. The e2e percentiles of that row include the records that "
            "waited for the session timeout and the ones delivered twice (at least once).", "",
            "Raw rows: `results/results.jsonl` (one JSON object per row; the fields are listed in bench/README.md).",
            ""]
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("row")
    a.add_argument("--label", required=True)
    a.add_argument("--config", required=True)
    a.add_argument("--rc", type=int, required=True)
    a.add_argument("--stdout", required=True)
    a.add_argument("--stderr", required=True)
    k = sub.add_parser("skip")
    k.add_argument("--label", required=True)
    k.add_argument("--config", required=True)
    k.add_argument("--reason", required=True)
    k.add_argument("--shards", type=int)
    g = sub.add_parser("get")
    g.add_argument("--label", required=True)
    g.add_argument("--config", required=True)
    g.add_argument("--field", required=True)
    r = sub.add_parser("report")
    r.add_argument("--results", required=True)
    r.add_argument("--md", required=True)
    args = ap.parse_args()
    if args.cmd == "row":
        with open(args.stdout) as f1, open(args.stderr) as f2:
            row = make_row(args.label, args.config, args.rc, f1.read(), f2.read())
        print(json.dumps(row, separators=(",", ":")))
    elif args.cmd == "skip":
        print(json.dumps(skip_row(args.label, args.config, args.reason, args.shards), separators=(",", ":")))
    elif args.cmd == "get":
        rows = [json.loads(l) for l in sys.stdin if l.strip()]
        row = find(rows, args.label, args.config)
        if row is not None and args.field in row:
            print(row[args.field])
    else:
        rows = load(os.path.join(args.results, "results.jsonl"))
        meta_path = os.path.join(args.results, "meta.json")
        meta = json.load(open(meta_path)) if os.path.exists(meta_path) else {}
        pngs = write_plots(rows, args.results)
        with open(args.md, "w") as f:
            f.write(render(rows, meta, pngs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
