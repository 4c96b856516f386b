#!/usr/bin/env python3
"""report.py — rows, table and plots of bench/compare.sh (issue 6).

Pure functions over the JSON rows that runnel-bench prints (one per line),
so the table logic is unit-tested (tests/unit/bench/test_report.py) without
running any server. Subcommands:

  row     wrap one subcommand run (its stdout, stderr, exit status) into
          exactly one JSON row: the subcommand's own row, or a "blocked" /
          "failed" row that says why there is none
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
}
# which config of each peer has the same durability class as runnel's
PAIRS = {"runnel-sync": ("redis-always", "nats-always"), "runnel-interval": ("redis-everysec", "nats-default")}

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
    if row is None or "blocked" in row or "records_per_s" not in row:
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


def results_table(rows, label):
    """Markdown table of one workload's rows."""
    out = ["| system | durability | durable | records/s | MB/s | raw MB/s | ×raw | publish p50 / p99 | "
           "e2e p50 / p99 / p99.9 | server CPU | note |",
           "|---|---|---|---:|---:|---:|---:|---|---|---:|---|"]
    for r in rows:
        if r.get("label") != label:
            continue
        note = "; ".join(x for x in (r.get("note", ""), row_status(r)) if x)
        if "records_per_s" not in r:
            out.append("| %s | %s | %s | — | — | — | — | — | — | — | %s |" % (
                r.get("system"), r.get("durability"), "yes" if r.get("durable") else "no", note))
            continue
        catchup = bool(r.get("backlog_bytes"))
        rps = main_value(r)
        mbs = r.get("read_mb_per_s") if catchup else r.get("mb_per_s")
        e2e = "—" if catchup else "%s / %s / %s" % (fmt_us(r.get("e2e_p50_us")), fmt_us(r.get("e2e_p99_us")),
                                                   fmt_us(r.get("e2e_p999_us")))
        out.append("| %s | %s | %s | %s | %s | %s | %s | %s / %s | %s | %s | %s |" % (
            r.get("system"), r.get("durability"), "yes" if r.get("durable") else "no", fmt_num(rps),
            fmt_num(mbs, 1), fmt_num(r.get("raw_mb_per_s"), 1), "—" if catchup else "%.3f" % r.get("ratio_to_raw", 0),
            fmt_us(r.get("pub_p50_us")), fmt_us(r.get("pub_p99_us")), e2e,
            "%.2f" % r["broker_cpu"] if r.get("broker_cpu", -1) >= 0 else "—", note))
    return "\n".join(out)


def ratio_table(rows):
    """runnel / peer ratios per workload and durability class."""
    out = ["| workload | durability | runnel records/s | runnel/redis | runnel/nats | runnel/raw (MB/s) | "
           "e2e p99 runnel / redis / nats |", "|---|---|---:|---:|---:|---:|---|"]
    for label, _ in WORKLOADS:
        for rcfg, (redis_cfg, nats_cfg) in PAIRS.items():
            rr, rd, rn = find(rows, label, rcfg), find(rows, label, redis_cfg), find(rows, label, nats_cfg)
            if rr is None:
                continue
            v = main_value(rr)
            catchup = bool(rr.get("backlog_bytes"))
            nats_ratio = ratio(v, main_value(rn))
            nats_txt = "blocked" if rn is not None and "blocked" in rn else fmt_ratio(nats_ratio)
            raw = None if catchup or "records_per_s" not in rr else rr.get("ratio_to_raw")
            def p99(r):
                if r is None or "e2e_p99_us" not in r or catchup:
                    return "blocked" if r is not None and "blocked" in r else "—"
                return fmt_us(r["e2e_p99_us"])
            out.append("| %s | %s | %s | %s | %s | %s | %s / %s / %s |" % (
                label, "durable" if CONFIGS[rcfg][2] else "relaxed", fmt_num(v),
                fmt_ratio(ratio(v, main_value(rd))), nats_txt, fmt_ratio(raw), p99(rr), p99(rd), p99(rn)))
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
    if rn is not None and "blocked" in rn:
        lines.append("- runnel ≥ 5× NATS JetStream (durable): blocked — %s" % rn["blocked"])
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
        for cfg in ("redis-always", "nats-always"):
            p = find(rows, label, cfg)
            if p is None or "e2e_p99_us" not in p:
                peers.append("%s: %s" % (cfg, "blocked" if p is not None and "blocked" in p else "—"))
            else:
                peers.append("%s %s (%s)" % (cfg, fmt_us(p["e2e_p99_us"]),
                                             "lower" if r["e2e_p99_us"] < p["e2e_p99_us"] else "NOT lower"))
        lines.append("- %s, e2e p99: runnel %s vs %s" % (label, fmt_us(r["e2e_p99_us"]), ", ".join(peers)))
    return "\n".join(lines)


# ---- plots --------------------------------------------------------------------

def write_plots(rows, resdir):
    """gnuplot data + scripts into resdir (paths relative to it, so
    `cd results && gnuplot throughput.gp` redraws); PNGs when gnuplot is
    there. Returns the list of PNG file names written."""
    made = []
    gp = shutil.which("gnuplot")
    # throughput bars: one cluster per workload, one bar per config
    cfgs = list(CONFIGS)
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
    if gp:
        for s in scripts:
            if subprocess.call([gp, s], cwd=resdir) == 0:
                made.append(s[:-3] + ".png")
    return made


def render(rows, meta, pngs):
    """The whole RESULTS.md text."""
    out = ["# runnel side by side: Redis Streams, NATS JetStream, the machine's limit", "",
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
    tcp = [r for r in rows if r.get("bench") == "tcp"]
    out += ["", "## Physical limit", "",
            "- raw sequential write + fdatasync (pwrite of the row's `raw_write_size`, 1 MiB, then fdatasync, in a "
            "loop, alternating with the system in every row): see the `raw MB/s` column",
           ]
    for r in tcp:
        out.append("- loopback TCP, %d stream(s), writes of %d B: %.0f MB/s" % (r["streams"], r["write_size"],
                                                                               r["mb_per_s"]))
    out += ["", "## Ratios", "", ratio_table(rows), "", "## Targets of issue 6 (durable rows)", "", targets(rows), ""]
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
            "`appendfsync everysec`; NATS `sync_always` = `sync_interval: always` (not supported by nats-server "
            "2.9.10 — the row is blocked there), `default` = JetStream's default (acks from the page cache, fsync "
            "every 2 min).",
            "- records/s counts acknowledged records over the measured slices (catch-up: records read / time to "
            "read the whole backlog); MB = 10^6 bytes of record data.",
            "- latencies are from each record's *intended* send time: publish = acknowledgement, e2e = a consumer "
            "receiving it; at max rate they are mostly the producer's queue.",
            "- ×raw = the row's MB/s over the raw write+fdatasync loop measured in the same row's alternating slices.",
            "- consumers: runnel reads through consumer groups (4 members over 16 shards, broker-side assignment, "
            "checkpoints every second), Redis through XREADGROUP groups, NATS through durable pull consumers; "
            "fan-out (d) runs 4 such groups.",
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
