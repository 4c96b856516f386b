#!/usr/bin/env python3
"""Unit test of bench/report.py: the rows, ratio table and targets of
bench/compare.sh on synthetic rows (no server, no gnuplot).
Usage: test_report.py PATH/TO/report.py"""
import importlib.util
import json
import sys
import unittest

spec = importlib.util.spec_from_file_location("report", sys.argv.pop(1))
report = importlib.util.module_from_spec(spec)
spec.loader.exec_module(report)


def row(label, config, rps, **kw):
    system, durability, durable = report.CONFIGS[config]
    r = {"bench": system, "system": system, "label": label, "config": config, "durability": durability,
         "durable": durable, "records_per_s": rps, "mb_per_s": rps * 1024 / 1e6, "raw_mb_per_s": 500.0,
         "ratio_to_raw": rps * 1024 / 1e6 / 500.0, "pub_p50_us": 100, "pub_p99_us": 900, "e2e_p50_us": 200,
         "e2e_p99_us": 1500, "e2e_p999_us": 3000, "missing": 0, "failed": 0, "error": "", "note": "",
         "broker_cpu": 0.5, "backlog_bytes": 0}
    r.update(kw)
    return r


class MakeRow(unittest.TestCase):
    def test_own_row_is_kept(self):
        out = json.dumps({"bench": "redis", "records_per_s": 5, "failed": 0})
        r = report.make_row("a-max-1k", "redis-always", 0, "noise\n" + out + "\n", "")
        self.assertEqual(r["records_per_s"], 5)
        self.assertEqual(r["config"], "redis-always")
        self.assertNotIn("run_failed", r)

    def test_blocked_row_says_why(self):
        err = "runnel-bench nats: BLOCKED: nats-server v2.9.10 rejects sync_interval\nkept /tmp/x\n"
        r = report.make_row("a-max-1k", "nats-always", 3, "", err)
        self.assertEqual(r["blocked"], "nats-server v2.9.10 rejects sync_interval")
        self.assertTrue(r["durable"])
        self.assertEqual(r["durability"], "sync_always")

    def test_failure_without_output(self):
        r = report.make_row("c-max-100b", "redis-everysec", 1, "", "connect refused\n")
        self.assertEqual(r["run_failed"], "connect refused")
        self.assertEqual(r["exit_status"], 1)

    def test_failure_with_output_keeps_the_row(self):
        r = report.make_row("a-max-1k", "runnel-sync", 1, json.dumps({"records_per_s": 7, "missing": 3}),
                            "runnel-bench broker: working directory kept: /x\nrunneld exited 1\n")
        self.assertEqual(r["records_per_s"], 7)
        self.assertEqual(r["run_failed"], "runneld exited 1")


class Tables(unittest.TestCase):
    def setUp(self):
        self.rows = [
            row("a-max-1k", "runnel-sync", 300000),
            row("a-max-1k", "redis-always", 50000, e2e_p99_us=9000),
            dict(report.make_row("a-max-1k", "nats-always", 3, "", "BLOCKED: no sync_interval\n")),
            row("a-max-1k", "runnel-interval", 400000),
            row("a-max-1k", "redis-everysec", 100000),
            row("a-max-1k", "nats-default", 80000),
            row("b-rate-25", "runnel-sync", 75000, e2e_p99_us=2000),
            row("b-rate-25", "redis-always", 30000, e2e_p99_us=800000),
            row("e-catchup", "runnel-sync", 90000, backlog_bytes=1 << 30, read_records_per_s=600000,
                read_mb_per_s=614.4),
            row("e-catchup", "redis-always", 10000, backlog_bytes=1 << 30, read_records_per_s=200000,
                read_mb_per_s=204.8),
        ]

    def test_ratios(self):
        t = report.ratio_table(self.rows)
        self.assertIn("| a-max-1k | durable | 300,000 | 6.00× | blocked |", t)
        self.assertIn("| a-max-1k | relaxed | 400,000 | 4.00× | 5.00× |", t)
        # catch-up compares reading the backlog, not the fill
        self.assertIn("| e-catchup | durable | 600,000 | 3.00× |", t)

    def test_targets(self):
        t = report.targets(self.rows)
        self.assertIn("runnel ≥ 3× Redis Streams (durable, 1 KiB, records/s): 6.00× — met", t)
        self.assertIn("runnel ≥ 5× NATS JetStream (durable): blocked — no sync_interval", t)
        self.assertIn("0.7× the raw fdatasync limit: 0.61× — NOT met", t)
        self.assertIn("b-rate-25, e2e p99: runnel 2.00 ms vs redis-always 800.00 ms (lower)", t)

    def test_results_table_marks_blocked_and_problems(self):
        rows = self.rows + [row("x", "runnel-sync", 1, missing=4)]
        t = report.results_table(rows, "a-max-1k")
        self.assertEqual(t.count("\n| "), 6)
        self.assertIn("| nats | sync_always | yes | — |", t)
        self.assertIn("blocked: no sync_interval", t)
        self.assertIn("4 missing", report.results_table(rows, "x"))

    def test_render_has_the_command_and_quick_warning(self):
        md = report.render(self.rows, {"command": "bench/compare.sh --quick", "quick": 1}, ["throughput.png"])
        self.assertIn("bench/compare.sh --quick", md)
        self.assertIn("Quick mode", md)
        self.assertIn("![throughput](results/throughput.png)", md)


if __name__ == "__main__":
    unittest.main(verbosity=2)
