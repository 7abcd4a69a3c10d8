# The edge Worker and everything around it on Cloudflare.
#
# Who owns what (docs/deploy.md, "Who deploys the Worker"): terraform uploads
# the Worker that `cargo xtask wasm` built (edge/build/index.js and
# index_bg.wasm) with its bindings, static assets (web/) and Durable Object
# migration, and deploys that version to 100 % of traffic. wrangler builds,
# bundles (`wrangler deploy --dry-run`, the size check) and runs `wrangler dev`,
# but never deploys, sets secrets, creates namespaces or routes on an account
# this configuration manages: each of those would make a version or resource
# terraform does not know about, and the next apply would undo it.
#
# wrangler.toml stays the source of truth for the bindings' names and for the
# dev setup; tests/terraform/check.py fails the test command when a binding,
# var, documented secret, migration or the compatibility date there has no
# counterpart here.

locals {
  # Must equal wrangler.toml's compatibility_date (checked).
  compatibility_date = "2026-04-01"
}

resource "cloudflare_workers_kv_namespace" "edge" {
  account_id = var.account_id
  title      = "${var.worker_name}-EDGE_KV"
}

resource "cloudflare_worker" "edge" {
  account_id = var.account_id
  name       = var.worker_name

  # <name>.<account>.workers.dev: handy for a first look, but the Cache API is
  # a no-op there; viewers use the routes below.
  subdomain = {
    enabled = var.workers_dev
  }

  # Workers Logs: the edge logs every refusal and origin failure.
  observability = {
    enabled = true
  }
}

resource "cloudflare_worker_version" "edge" {
  account_id         = var.account_id
  worker_id          = cloudflare_worker.edge.id
  compatibility_date = local.compatibility_date
  main_module        = "index.js"

  # What worker-build writes (`cargo xtask wasm`): the ES module shim and the
  # wasm it instantiates. The provider hashes each file, so a rebuilt bundle
  # makes a new version on the next apply.
  modules = [
    {
      name         = "index.js"
      content_type = "application/javascript+module"
      content_file = "${var.bundle_dir}/index.js"
    },
    {
      name         = "index_bg.wasm"
      content_type = "application/wasm"
      content_file = "${var.bundle_dir}/index_bg.wasm"
    },
  ]

  # The viewer page. /live/*, /vod/*, /chat/* and /_brook/* always reach the Worker
  # first, so no stray file under web/ can shadow playlists, chat or the
  # edge's own endpoints (same list as wrangler.toml's [assets]).
  assets = {
    directory = var.assets_dir
    config = {
      run_worker_first = ["/live/*", "/vod/*", "/chat/*", "/_brook/*"]
    }
  }

  bindings = [
    # [vars] in wrangler.toml.
    {
      name = "ORIGIN_URL"
      type = "plain_text"
      text = var.origin_url
    },
    {
      name = "EDGE_CONFIG"
      type = "json"
      json = jsonencode(var.edge_config)
    },
    # Secrets wrangler.toml documents (never in a file): sensitive variables,
    # so they are in the state; keep the state in an encrypted backend.
    {
      name = "TOKEN_KEYS"
      type = "secret_text"
      text = var.token_keys
    },
    {
      name = "METRICS_TOKEN"
      type = "secret_text"
      text = var.metrics_token
    },
    {
      name = "KEY_FETCH_TOKEN"
      type = "secret_text"
      text = var.key_fetch_token
    },
    {
      name = "VOD_API_TOKEN"
      type = "secret_text"
      text = var.vod_api_token
    },
    {
      name = "QOE_PUSH_TOKEN"
      type = "secret_text"
      text = var.qoe_push_token
    },
    {
      name = "DIRECTORY_TOKEN"
      type = "secret_text"
      text = var.directory_token
    },
    # The chat rooms (docs/chat.md): one SQLite-backed object per stream.
    {
      name       = "CHAT"
      type       = "durable_object_namespace"
      class_name = "ChatRoom"
    },
    # The stream directory (docs/scale.md): the one object origins register
    # their live streams with.
    {
      name       = "DIRECTORY"
      type       = "durable_object_namespace"
      class_name = "StreamDirectory"
    },
    # Edge config without a redeploy: its `config` key, when set, replaces
    # EDGE_CONFIG (`wrangler kv key put --namespace-id ... config`; writing a
    # key is data, not a resource, so wrangler may do it).
    {
      name         = "EDGE_KV"
      type         = "kv_namespace"
      namespace_id = cloudflare_workers_kv_namespace.edge.id
    },
    # Viewer QoE (docs/qoe.md): a row per media request with CMCD and per
    # player beacon; the dataset is created on first write.
    {
      name    = "QOE"
      type    = "analytics_engine"
      dataset = "brook_qoe"
    },
  ]

  # Applied when the version is deployed: every step since the Worker's
  # first, as wrangler.toml lists them, ending at its last tag. Append a step
  # for each new class; never edit one. A Worker already at `v1` needs the
  # one-time upgrade in docs/deploy.md ("Durable Object migrations").
  migrations = {
    new_tag = "v2"
    steps = [
      { new_sqlite_classes = ["ChatRoom"] },        # v1
      { new_sqlite_classes = ["StreamDirectory"] }, # v2
    ]
  }
}

resource "cloudflare_workers_deployment" "edge" {
  account_id  = var.account_id
  script_name = cloudflare_worker.edge.name
  strategy    = "percentage"
  versions = [
    {
      version_id = cloudflare_worker_version.edge.id
      percentage = 100
    },
  ]
}

# One route per edge hostname (one per steering pathway served by Cloudflare).
# Routes rather than Workers custom domains so the DNS records below stay
# explicit and owned here.
resource "cloudflare_workers_route" "edge" {
  for_each = toset(var.edge_hostnames)

  zone_id = var.zone_id
  pattern = "${each.value}/*"
  script  = cloudflare_worker.edge.name

  depends_on = [cloudflare_workers_deployment.edge]
}

# A route needs a proxied record for its hostname; every request is answered
# by the Worker, so the address is the documented placeholder 100::.
resource "cloudflare_dns_record" "edge" {
  for_each = toset(var.edge_hostnames)

  zone_id = var.zone_id
  name    = each.value
  type    = "AAAA"
  content = "100::"
  proxied = true
  ttl     = 1
  comment = "Brook edge Worker ${var.worker_name} (terraform)"
}

# The origin is reached directly: SRT and WHIP are UDP, which Cloudflare's
# proxy does not carry, and the Worker fetches ORIGIN_URL from it.
resource "cloudflare_dns_record" "origin" {
  zone_id = var.zone_id
  name    = var.origin_hostname
  type    = "A"
  content = var.origin_ipv4
  proxied = false
  ttl     = var.origin_dns_ttl
  comment = "Brook origin (terraform)"
}
