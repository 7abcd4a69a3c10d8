"""check.py finds what it is for: each test breaks a copy of the files one way
and expects the check to name the break (and the real files to pass)."""

import json
import shutil
import sys
import tempfile
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import check  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
FILES = [
    "origin/src/metrics.rs",
    "ops/grafana/brook-origin.json",
    "ops/prometheus/brook.rules.yml",
    "ops/prometheus/brook.rules.test.yml",
    "docs/ops.md",
    "tests/ops/dashboard.schema.json",
]


class Check(unittest.TestCase):
    def setUp(self):
        self.dir = Path(tempfile.mkdtemp())
        for f in FILES:
            (self.dir / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(ROOT / f, self.dir / f)

    def tearDown(self):
        shutil.rmtree(self.dir)

    def edit(self, path, old, new):
        p = self.dir / path
        text = p.read_text()
        self.assertIn(old, text)
        p.write_text(text.replace(old, new, 1))

    def assertProblem(self, pattern):
        problems = check.check(self.dir)
        self.assertTrue(any(__import__("re").search(pattern, p) for p in problems), problems)

    def test_the_real_files_pass(self):
        self.assertEqual(check.check(self.dir), [])

    def test_a_metric_the_origin_does_not_export(self):
        self.edit("ops/grafana/brook-origin.json", "brook_srt_rtt_seconds{", "brook_srt_rtt_ms{")
        self.assertProblem(r"queries brook_srt_rtt_ms, which brook-origin does not export")

    def test_a_new_metric_not_on_the_dashboard(self):
        self.edit("origin/src/metrics.rs", '"brook_streams_active",', '"brook_streams_active",\n"brook_new_thing_total",')
        self.assertProblem(r"no panel shows brook_new_thing_total")

    def test_an_alert_without_a_unit_test(self):
        self.edit("ops/prometheus/brook.rules.test.yml", "alertname: BrookRungsDropped\n", "alertname: BrookSomethingElse\n")
        self.assertProblem(r"no test for BrookRungsDropped")

    def test_an_alert_on_a_renamed_metric(self):
        self.edit("ops/prometheus/brook.rules.yml", "brook_archive_errors_total[10m]", "brook_archive_failures_total[10m]")
        self.assertProblem(r"BrookArchiveFailing uses brook_archive_failures_total")

    def test_an_undocumented_alert(self):
        self.edit("docs/ops.md", "| `BrookPartDeliverySlow` |", "| `BrookPartSlow` |")
        self.assertProblem(r"docs/ops.md: BrookPartDeliverySlow is not documented")

    def test_a_dashboard_outside_the_schema(self):
        self.edit("ops/grafana/brook-origin.json", '"uid": "brook-origin"', '"uid": "brook origin!"')
        self.assertProblem(r"uid: 'brook origin!' does not match")

    def test_an_undefined_dashboard_variable(self):
        self.edit("ops/grafana/brook-origin.json", 'stream=~\\"$stream\\"', 'stream=~\\"$streams\\"')
        self.assertProblem(r"uses \$streams, not a dashboard variable")


if __name__ == "__main__":
    unittest.main()
