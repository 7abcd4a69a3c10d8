"""Structural check of ops/: the Grafana dashboard against its JSON schema,
and the dashboard and the Prometheus alert rules against what brook-origin
really exports (every metric they name is one of origin/src/metrics.rs's
families; every family is on the dashboard), every alert with a severity,
a summary, a description, a promtool unit test and a line in docs/ops.md.
`promtool check rules` / `promtool test rules` run beside it (xtask).

Usage: check.py [ROOT]  (exits 1 and lists the problems when any)."""

import json
import re
import sys
from pathlib import Path

import jsonschema
import yaml

METRIC = re.compile(r"\bbrook_[a-z0-9_]+\b")
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def exported_metrics(root: Path) -> set:
    """The metric families brook-origin renders (string literals in metrics.rs)."""
    text = (root / "origin/src/metrics.rs").read_text()
    return set(re.findall(r'"(brook_[a-z0-9_]+)"', text))


def family(name: str, exported: set) -> str | None:
    if name in exported:
        return name
    for suffix in HISTOGRAM_SUFFIXES:
        if name.endswith(suffix) and name[: -len(suffix)] in exported:
            return name[: -len(suffix)]
    return None


def check(root: Path) -> list:
    problems = []
    exported = exported_metrics(root)
    if len(exported) < 20:
        problems.append(f"origin/src/metrics.rs: only {len(exported)} metric names found; the check cannot work")

    dash_path = root / "ops/grafana/brook-origin.json"
    dash = json.loads(dash_path.read_text())
    schema = json.loads((root / "tests/ops/dashboard.schema.json").read_text())
    for error in jsonschema.Draft202012Validator(schema).iter_errors(dash):
        path = "/".join(str(p) for p in error.absolute_path)
        problems.append(f"{dash_path.name}: {path}: {error.message}")
    ids = [p.get("id") for p in dash.get("panels", [])]
    if len(ids) != len(set(ids)):
        problems.append(f"{dash_path.name}: panel ids repeat")
    variables = {v.get("name") for v in dash.get("templating", {}).get("list", [])}
    on_dashboard = set()
    for panel in dash.get("panels", []):
        for target in panel.get("targets", []):
            expr = target.get("expr", "")
            for var in re.findall(r"\$\{?([a-z_]+)", expr):
                if var not in variables:
                    problems.append(f"{dash_path.name}: panel {panel.get('title')!r} uses ${var}, not a dashboard variable")
            for name in METRIC.findall(expr):
                fam = family(name, exported)
                if fam is None:
                    problems.append(f"{dash_path.name}: panel {panel.get('title')!r} queries {name}, which brook-origin does not export")
                else:
                    on_dashboard.add(fam)
    for fam in sorted(exported - on_dashboard):
        problems.append(f"{dash_path.name}: no panel shows {fam}")

    rules_path = root / "ops/prometheus/brook.rules.yml"
    tests_text = (root / "ops/prometheus/brook.rules.test.yml").read_text()
    ops_doc = (root / "docs/ops.md").read_text()
    rules = yaml.safe_load(rules_path.read_text())
    alerts = [r for g in rules.get("groups", []) for r in g.get("rules", []) if "alert" in r]
    if not alerts:
        problems.append(f"{rules_path.name}: no alerts")
    for rule in alerts:
        name = rule["alert"]
        if rule.get("labels", {}).get("severity") not in ("page", "warning"):
            problems.append(f"{rules_path.name}: {name} has no severity page|warning")
        for key in ("summary", "description"):
            if not rule.get("annotations", {}).get(key):
                problems.append(f"{rules_path.name}: {name} has no {key}")
        for metric in METRIC.findall(str(rule.get("expr", ""))):
            if family(metric, exported) is None:
                problems.append(f"{rules_path.name}: {name} uses {metric}, which brook-origin does not export")
        if f"alertname: {name}\n" not in tests_text:
            problems.append(f"brook.rules.test.yml: no test for {name}")
        if name not in ops_doc:
            problems.append(f"docs/ops.md: {name} is not documented")
    return problems


def main() -> int:
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[2]
    problems = check(root)
    for p in problems:
        print(f"ops check: {p}", file=sys.stderr)
    if problems:
        return 1
    print("ops check: the dashboard and the alert rules agree with the origin's metrics and docs/ops.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
