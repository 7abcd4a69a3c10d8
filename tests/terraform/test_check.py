"""check.py must pass on the repository and name each break of a copy of it.

Run: python -m unittest discover -s tests/terraform (cargo xtask test does).
"""

import re
import shutil
import tempfile
import unittest
from pathlib import Path

import check

REPO = Path(__file__).resolve().parents[2]
EDGE_TF = "terraform/modules/cloudflare-edge/main.tf"


class CheckTest(unittest.TestCase):
    def setUp(self):
        self.tmp = Path(tempfile.mkdtemp(prefix="brook-tfcheck-"))
        shutil.copytree(REPO / "terraform", self.tmp / "terraform",
                        ignore=shutil.ignore_patterns(".terraform", "*.tfstate*", "terraform.tfvars"))
        for rel in ["wrangler.toml", "docs/deploy.md", "origin/brook.example.toml"]:
            (self.tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(REPO / rel, self.tmp / rel)

    def tearDown(self):
        shutil.rmtree(self.tmp)

    def edit(self, rel, old, new, count=1):
        path = self.tmp / rel
        text = path.read_text()
        self.assertIn(old, text, f"{rel} no longer contains {old!r}: update this test")
        path.write_text(text.replace(old, new, count))

    def assertProblem(self, pattern):
        problems = check.check(self.tmp)
        self.assertTrue(any(re.search(pattern, p) for p in problems),
                        f"no problem matching {pattern!r} in {problems}")

    def test_repository_passes(self):
        self.assertEqual(check.check(self.tmp), [])

    def test_missing_durable_object_binding(self):
        self.edit(EDGE_TF, 'name       = "CHAT"', 'name       = "CHAT_ROOMS"')
        self.assertProblem(r"no binding 'CHAT' \(type durable_object_namespace\)")
        self.assertProblem(r"binds 'CHAT_ROOMS', which wrangler.toml neither binds nor mentions")

    def test_wrong_durable_object_class(self):
        self.edit(EDGE_TF, 'class_name = "ChatRoom"', 'class_name = "Room"')
        self.assertProblem(r"binding 'CHAT' has class_name = 'Room'")

    def test_new_kv_namespace_in_wrangler(self):
        self.edit("wrangler.toml", "[[durable_objects.bindings]]",
                  '[[kv_namespaces]]\nbinding = "SESSIONS"\nid = "x"\n\n[[durable_objects.bindings]]')
        self.assertProblem(r"no binding 'SESSIONS' \(type kv_namespace\)")

    def test_new_analytics_engine_dataset_in_wrangler(self):
        self.edit("wrangler.toml", "[[durable_objects.bindings]]",
                  '[[analytics_engine_datasets]]\nbinding = "ADS"\ndataset = "brook_ads"\n\n'
                  "[[durable_objects.bindings]]")
        self.assertProblem(r"no binding 'ADS' \(type analytics_engine\)")

    def test_analytics_engine_dataset_differs(self):
        self.edit(EDGE_TF, 'dataset = "brook_qoe"', 'dataset = "qoe"')
        self.assertProblem(r"binding 'QOE' has dataset = 'qoe'")

    def test_unknown_binding_table(self):
        self.edit("wrangler.toml", "[[durable_objects.bindings]]",
                  '[[vectorize]]\nbinding = "V"\nindex_name = "i"\n\n[[durable_objects.bindings]]')
        self.assertProblem(r"\[vectorize\] looks like a binding this check does not know")

    def test_documented_secret_missing(self):
        self.edit("wrangler.toml", "# For `wrangler dev`, put them",
                  "# SIGNING_SALT  salt for something\n# For `wrangler dev`, put them")
        self.assertProblem(r"no binding 'SIGNING_SALT' \(type secret_text\)")

    def test_secret_removed_from_terraform(self):
        self.edit(EDGE_TF, 'name = "METRICS_TOKEN"', 'name = "METRICS_BEARER"')
        self.assertProblem(r"no binding 'METRICS_TOKEN' \(type secret_text\)")

    def test_new_var(self):
        self.edit("wrangler.toml", 'ORIGIN_URL = "http://127.0.0.1:8080"',
                  'ORIGIN_URL = "http://127.0.0.1:8080"\nREGION = "eu"')
        self.assertProblem(r"no binding 'REGION' \(type plain_text\)")

    def test_migration_tag(self):
        self.edit("wrangler.toml", '[[migrations]]\ntag = "v2"\nnew_sqlite_classes = ["StreamDirectory"]',
                  '[[migrations]]\ntag = "v2"\nnew_sqlite_classes = ["StreamDirectory"]\n\n'
                  '[[migrations]]\ntag = "v3"\nnew_sqlite_classes = ["Presence"]')
        self.assertProblem(r"migrations new_tag is 'v2', wrangler.toml's last tag is 'v3'")
        self.assertProblem(r"migrations .* differ from wrangler.toml's")

    def test_compatibility_date(self):
        self.edit("wrangler.toml", 'compatibility_date = "2026-04-01"', 'compatibility_date = "2026-09-01"')
        self.assertProblem(r"compatibility_date '2026-04-01' differs")

    def test_run_worker_first(self):
        self.edit("wrangler.toml", '"/_brook/*"]', '"/_brook/*", "/vod/*"]')
        self.assertProblem(r"run_worker_first")

    def test_variable_without_description(self):
        self.edit("terraform/variables.tf",
                  '  description = "TTL of the origin\'s DNS record, seconds."\n', "")
        self.assertProblem(r"variable 'origin_dns_ttl' has no description")

    def test_variable_not_in_deploy_doc(self):
        self.edit("docs/deploy.md", "| `origin_disk_gb` |", "| origin disk |")
        self.assertProblem(r"root variable `origin_disk_gb` is not documented")

    def test_resource_type_not_in_deploy_doc(self):
        self.edit("docs/deploy.md", "`cloudflare_workers_route`", "routes", count=-1)
        self.assertProblem(r"resource type cloudflare_workers_route .* is not named")

    def test_required_variable_missing_from_example(self):
        self.edit("terraform/terraform.tfvars.example", 'archive_bucket                 = "brook-eu-archive-example"\n', "")
        self.assertProblem(r"required variable 'archive_bucket' has no example value")

    def test_port_differs_from_origin_config(self):
        self.edit("origin/brook.example.toml", 'listen = "0.0.0.0:8189"', 'listen = "0.0.0.0:8190"')
        self.assertProblem(r"whip_udp_port defaults to 8189, origin/brook.example.toml listens on 8190")

    def test_hcl_syntax_error(self):
        self.edit("terraform/outputs.tf", 'output "origin_url" {', 'output "origin_url" {{')
        self.assertProblem(r"outputs.tf: does not parse as HCL")


if __name__ == "__main__":
    unittest.main()
