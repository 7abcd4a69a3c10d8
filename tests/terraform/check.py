#!/usr/bin/env python3
"""Structural check of terraform/ against the files it must agree with.

Run by `cargo xtask test` (step "terraform") with the venv `cargo xtask setup`
makes (python-hcl2 from PyPI); offline, no provider needed. It parses every
.tf file and fails, naming each problem, when:

- a binding of wrangler.toml (Durable Objects, KV namespaces, Analytics Engine
  datasets, R2 buckets, services, vars, and the secrets its "Secrets" comment
  documents) has no binding of the same name and kind in the Worker version
  terraform uploads; or terraform binds a name wrangler.toml neither binds nor
  mentions; or wrangler.toml has a binding table this script does not know;
- the Durable Object migrations, the compatibility date, the main module, the
  assets' run_worker_first list, the Worker's name, workers_dev or
  observability differ between the two;
- a variable or output (root or module) has no description; a root variable
  is not named in docs/deploy.md; a required root variable is missing from
  terraform.tfvars.example, or a sensitive one is assigned there;
- a resource type used in terraform/ is not named in docs/deploy.md;
- the origin's default ports in terraform differ from origin/brook.example.toml.

Usage: check.py [--root REPO]   (exit 0: all agree; 1: problems listed)
"""

import argparse
import re
import sys
import tomllib
from pathlib import Path

try:
    import hcl2
except ImportError:  # pragma: no cover - the message is the point
    sys.exit("check.py: python-hcl2 is missing; run `cargo xtask setup` (it makes the venv)")

# wrangler.toml top-level keys that are configuration, not bindings.
NOT_BINDINGS = {
    "name", "main", "compatibility_date", "compatibility_flags", "send_metrics",
    "workers_dev", "routes", "route", "vars", "migrations", "observability",
    "assets", "build", "limits", "placement", "keep_vars", "minify",
    "upload_source_maps", "preview_urls", "logpush", "usage_model", "rules",
    "find_additional_modules", "base_dir", "no_bundle", "env", "dev", "triggers",
    "secrets",
}

# wrangler.toml binding tables: (key, the field naming the binding, terraform
# binding type, [(wrangler field, terraform field)] that must be equal).
BINDING_TABLES = [
    ("kv_namespaces", "binding", "kv_namespace", []),
    ("analytics_engine_datasets", "binding", "analytics_engine", [("dataset", "dataset")]),
    ("r2_buckets", "binding", "r2_bucket", [("bucket_name", "bucket_name")]),
    ("services", "binding", "service", [("service", "service")]),
    ("d1_databases", "binding", "d1", []),
    ("queues", "binding", "queue", []),
]

WORKER_VERSION_TYPES = ("cloudflare_worker_version", "cloudflare_workers_script")

# Parsed .tf files by content: test_check.py checks many copies of one tree.
_PARSED = {}


def parse_hcl(text):
    if text not in _PARSED:
        _PARSED[text] = hcl2.loads(text)
    return _PARSED[text]


def unquote(value):
    """python-hcl2 keeps string literals' quotes; expressions stay `${...}`."""
    if isinstance(value, str) and len(value) >= 2 and value[0] == '"' and value[-1] == '"':
        return value[1:-1]
    if isinstance(value, list):
        return [unquote(v) for v in value]
    if isinstance(value, dict):
        return {unquote(k): unquote(v) for k, v in value.items() if k != "__is_block__"}
    return value


class Module:
    """One directory of .tf files: its variables, outputs, locals, resources."""

    def __init__(self, path: Path):
        self.path = path
        self.variables = {}  # name -> {description, default?, sensitive?, file}
        self.outputs = {}
        self.locals = {}
        self.resources = []  # (type, name, body, file)

    def load(self, root, problems):
        for tf in sorted(self.path.glob("*.tf")):
            try:
                doc = parse_hcl(tf.read_text())
            except Exception as e:  # a parse error: say where, keep going
                problems.append(f"{tf.relative_to(root)}: does not parse as HCL: {e}")
                continue
            for block in doc.get("variable", []):
                for name, body in block.items():
                    self.variables[unquote(name)] = dict(unquote(body), file=tf)
            for block in doc.get("output", []):
                for name, body in block.items():
                    self.outputs[unquote(name)] = dict(unquote(body), file=tf)
            for block in doc.get("locals", []):
                self.locals.update(unquote(block))
            for block in doc.get("resource", []):
                for rtype, named in block.items():
                    for rname, body in named.items():
                        self.resources.append((unquote(rtype), unquote(rname), unquote(body), tf))

    def resolve(self, value):
        """`${local.x}` -> the local's value; anything else unchanged."""
        m = re.fullmatch(r"\$\{local\.(\w+)\}", str(value))
        if m and m.group(1) in self.locals:
            return self.locals[m.group(1)]
        return value


def documented_secrets(wrangler_text):
    """Secret names listed in wrangler.toml's `# --- Secrets` comment block."""
    names = []
    in_block = False
    for line in wrangler_text.splitlines():
        if re.match(r"#\s*---", line):
            in_block = "secret" in line.lower()
            continue
        if in_block:
            m = re.match(r"#\s+([A-Z][A-Z0-9_]+)\s{2,}\S", line)
            if m:
                names.append(m.group(1))
    return names


def migration_summary(steps):
    """Classes created/deleted over a list of migration steps."""
    out = {"new_classes": [], "new_sqlite_classes": [], "deleted_classes": []}
    for step in steps:
        for key in out:
            out[key].extend(step.get(key, []))
    return {k: sorted(v) for k, v in out.items()}


def port_of(address):
    m = re.search(r":(\d+)$", address or "")
    return int(m.group(1)) if m else None


def check(root: Path):
    problems = []
    tf_root = root / "terraform"
    wrangler_path = root / "wrangler.toml"
    deploy_md_path = root / "docs" / "deploy.md"
    wrangler_text = wrangler_path.read_text()
    wrangler = tomllib.loads(wrangler_text)
    deploy_md = deploy_md_path.read_text() if deploy_md_path.exists() else ""
    if not deploy_md:
        problems.append("docs/deploy.md: missing or empty")

    modules = [Module(tf_root)] + [Module(p) for p in sorted((tf_root / "modules").glob("*")) if p.is_dir()]
    for module in modules:
        module.load(root, problems)
    root_module = modules[0]

    # --- Variables and outputs -----------------------------------------------
    for module in modules:
        for name, var in module.variables.items():
            if not str(var.get("description", "")).strip():
                problems.append(f"{var['file'].relative_to(root)}: variable {name!r} has no description")
        for name, out in module.outputs.items():
            if not str(out.get("description", "")).strip():
                problems.append(f"{out['file'].relative_to(root)}: output {name!r} has no description")
    for name in root_module.variables:
        if not re.search(rf"`{re.escape(name)}`", deploy_md):
            problems.append(f"docs/deploy.md: root variable `{name}` is not documented")

    example_path = tf_root / "terraform.tfvars.example"
    example = example_path.read_text() if example_path.exists() else ""
    assigned = set(re.findall(r"^\s*#?\s*([a-z_][a-z0-9_]*)\s*=", example, re.M))
    for name, var in root_module.variables.items():
        if var.get("sensitive") is True:
            if re.search(rf"^\s*{name}\s*=", example, re.M):
                problems.append(f"{example_path.name}: sensitive variable {name!r} must not be assigned in a file")
        elif "default" not in var and name not in assigned:
            problems.append(f"{example_path.name}: required variable {name!r} has no example value")

    all_resources = [r for m in modules for r in m.resources]
    for rtype in sorted({r[0] for r in all_resources}):
        if rtype not in deploy_md:
            problems.append(f"docs/deploy.md: resource type {rtype} (used in terraform/) is not named")

    # --- The Worker version ----------------------------------------------------
    versions = [(m, r) for m in modules for r in m.resources if r[0] in WORKER_VERSION_TYPES]
    if len(versions) != 1:
        problems.append(
            f"terraform/: expected one Worker version or script resource ({' or '.join(WORKER_VERSION_TYPES)}), "
            f"found {len(versions)}"
        )
        return problems
    module, (vtype, vname, version, vfile) = versions[0]
    where = f"{vfile.relative_to(root)}: {vtype}.{vname}"

    bindings = version.get("bindings")
    if not isinstance(bindings, list) or not all(isinstance(b, dict) for b in bindings):
        problems.append(f"{where}: `bindings` must be a literal list of objects (so this check can read it)")
        bindings = []
    by_name = {}
    for b in bindings:
        if b.get("name") in by_name:
            problems.append(f"{where}: binding {b.get('name')!r} appears twice")
        by_name[b.get("name")] = b

    def want(name, btype, fields=(), source="wrangler.toml"):
        b = by_name.get(name)
        if b is None:
            problems.append(f"{where}: no binding {name!r} (type {btype}) for {source}")
            return
        if b.get("type") != btype:
            problems.append(f"{where}: binding {name!r} is type {b.get('type')!r}, {source} needs {btype!r}")
        for wfield, wvalue, tfield in fields:
            if b.get(tfield) != wvalue:
                problems.append(
                    f"{where}: binding {name!r} has {tfield} = {b.get(tfield)!r}, wrangler.toml's {wfield} is {wvalue!r}"
                )

    for key, value in wrangler.items():
        if key in NOT_BINDINGS or key == "durable_objects" or key in {t[0] for t in BINDING_TABLES}:
            continue
        if isinstance(value, (dict, list)):
            problems.append(
                f"wrangler.toml: [{key}] looks like a binding this check does not know; "
                "teach tests/terraform/check.py its terraform counterpart"
            )

    for do in wrangler.get("durable_objects", {}).get("bindings", []):
        fields = [("class_name", do.get("class_name"), "class_name")]
        if do.get("script_name"):
            fields.append(("script_name", do["script_name"], "script_name"))
        want(do["name"], "durable_object_namespace", fields, "wrangler.toml [[durable_objects.bindings]]")
    for key, name_field, btype, pairs in BINDING_TABLES:
        for entry in wrangler.get(key, []):
            fields = [(w, entry.get(w), t) for w, t in pairs if w in entry]
            want(entry[name_field], btype, fields, f"wrangler.toml [[{key}]]")
    for name, value in wrangler.get("vars", {}).items():
        want(name, "plain_text" if isinstance(value, str) else "json", source="wrangler.toml [vars]")
    secrets = documented_secrets(wrangler_text) + list(wrangler.get("secrets", {}).get("required", []))
    if not secrets:
        problems.append("wrangler.toml: its `# --- Secrets` comment lists no secret (the check reads names from it)")
    for name in secrets:
        want(name, "secret_text", source="the secrets wrangler.toml documents")

    for name in by_name:
        if name and not re.search(rf"\b{re.escape(name)}\b", wrangler_text):
            problems.append(f"{where}: binds {name!r}, which wrangler.toml neither binds nor mentions")

    # Durable Object migrations: the same classes and the same last tag.
    w_steps = wrangler.get("migrations", [])
    t_migr = version.get("migrations") or {}
    t_steps = t_migr.get("steps") or [t_migr]
    if w_steps or t_migr:
        w_tag = w_steps[-1].get("tag") if w_steps else None
        if t_migr.get("new_tag") != w_tag:
            problems.append(f"{where}: migrations new_tag is {t_migr.get('new_tag')!r}, wrangler.toml's last tag is {w_tag!r}")
        if migration_summary(t_steps) != migration_summary(w_steps):
            problems.append(
                f"{where}: migrations {migration_summary(t_steps)} differ from wrangler.toml's {migration_summary(w_steps)}"
            )

    date = module.resolve(version.get("compatibility_date"))
    if date != wrangler.get("compatibility_date"):
        problems.append(f"{where}: compatibility_date {date!r} differs from wrangler.toml's {wrangler.get('compatibility_date')!r}")

    main = Path(wrangler.get("main", "")).name
    module_names = [m.get("name") for m in version.get("modules") or []]
    if version.get("main_module") != main or main not in module_names:
        problems.append(f"{where}: main_module {version.get('main_module')!r} / modules {module_names} do not upload wrangler.toml's main ({main!r})")

    w_assets = wrangler.get("assets")
    t_assets = version.get("assets")
    if w_assets and not t_assets:
        problems.append(f"{where}: wrangler.toml has [assets], terraform uploads none")
    elif w_assets:
        w_first = w_assets.get("run_worker_first")
        t_first = (t_assets.get("config") or {}).get("run_worker_first")
        if w_first != t_first:
            problems.append(f"{where}: assets run_worker_first {t_first!r} differs from wrangler.toml's {w_first!r}")

    # The Worker itself (name, workers.dev, logs).
    workers = [r for m in modules for r in m.resources if r[0] == "cloudflare_worker"]
    name_var = root_module.variables.get("worker_name", {})
    if name_var.get("default") != wrangler.get("name"):
        problems.append(f"terraform/variables.tf: worker_name default {name_var.get('default')!r} differs from wrangler.toml's name {wrangler.get('name')!r}")
    dev_var = root_module.variables.get("workers_dev", {})
    if "workers_dev" in wrangler and dev_var.get("default") != wrangler["workers_dev"]:
        problems.append(f"terraform/variables.tf: workers_dev default {dev_var.get('default')!r} differs from wrangler.toml's {wrangler['workers_dev']!r}")
    obs = wrangler.get("observability", {}).get("enabled")
    for _, wname, body, wfile in workers:
        t_obs = (body.get("observability") or {}).get("enabled")
        if obs is not None and t_obs != obs:
            problems.append(f"{wfile.relative_to(root)}: cloudflare_worker.{wname} observability.enabled {t_obs!r}, wrangler.toml says {obs!r}")

    # --- The origin's ports ------------------------------------------------------
    origin_toml_path = root / "origin" / "brook.example.toml"
    origin_text = origin_toml_path.read_text()
    origin = tomllib.loads(origin_text)
    tls = re.search(r"^#\s*\[http\.tls\]\s*\n#\s*listen\s*=\s*\"([^\"]+)\"", origin_text, re.M)
    expected_ports = {
        "srt_port": port_of(origin.get("srt", {}).get("listen")),
        "rtmp_port": port_of(origin.get("rtmp", {}).get("listen")),
        "whip_udp_port": port_of(origin.get("whip", {}).get("listen")),
        "origin_http_port": port_of(origin.get("http", {}).get("listen")),
        "origin_https_port": port_of(tls.group(1)) if tls else None,
    }
    for var, port in expected_ports.items():
        default = root_module.variables.get(var, {}).get("default")
        if port is None:
            problems.append(f"origin/brook.example.toml: cannot find the port for terraform variable {var}")
        elif default != port:
            problems.append(f"terraform/variables.tf: {var} defaults to {default!r}, origin/brook.example.toml listens on {port}")

    return problems


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[2])
    args = parser.parse_args()
    problems = check(args.root)
    tf_files = len(list((args.root / "terraform").rglob("*.tf")))
    if problems:
        print(f"terraform check: {len(problems)} problem(s) in {tf_files} .tf files:")
        for p in problems:
            print(f"  - {p}")
        return 1
    print(f"terraform check: {tf_files} .tf files agree with wrangler.toml, origin/brook.example.toml and docs/deploy.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
