variable "account_id" {
  description = "Cloudflare account ID that owns the Worker and the KV namespace."
  type        = string
}

variable "zone_id" {
  description = "ID of the Cloudflare zone (DNS domain) that holds the edge and origin hostnames."
  type        = string
}

variable "worker_name" {
  description = "Name of the Worker script (wrangler.toml's `name`)."
  type        = string
}

variable "workers_dev" {
  description = "Whether the Worker also answers at <name>.<account>.workers.dev."
  type        = bool
}

variable "bundle_dir" {
  description = "Directory holding the built Worker (index.js and index_bg.wasm from `cargo xtask wasm`)."
  type        = string
}

variable "assets_dir" {
  description = "Directory of static assets served by the Worker (the repo's web/, with web/vendor/ filled by `cargo xtask setup`)."
  type        = string
}

variable "edge_hostnames" {
  description = "Hostnames the Worker answers on; each gets a route <host>/* and a proxied DNS record."
  type        = list(string)
}

variable "origin_hostname" {
  description = "DNS name of the origin host (an unproxied A record)."
  type        = string
}

variable "origin_ipv4" {
  description = "Public IPv4 address of the origin host."
  type        = string
}

variable "origin_dns_ttl" {
  description = "TTL of the origin's DNS record, seconds."
  type        = number
}

variable "origin_url" {
  description = "ORIGIN_URL var: where /live/** goes when EDGE_CONFIG lists no origins.regions."
  type        = string
}

variable "edge_config" {
  description = "EDGE_CONFIG var (docs/edge.md lists every field and its default)."
  type        = any
}

variable "token_keys" {
  description = "TOKEN_KEYS secret: viewer token signing keys, `id:hexsecret[,id:hexsecret...]`."
  type        = string
  sensitive   = true
}

variable "metrics_token" {
  description = "METRICS_TOKEN secret: bearer token for GET /_brook/metrics."
  type        = string
  sensitive   = true
}

variable "key_fetch_token" {
  description = "KEY_FETCH_TOKEN secret: bearer token for the origin's GET /keys/<stream>/<kid> (ClearKey licenses, docs/drm.md)."
  type        = string
  sensitive   = true
}

variable "directory_token" {
  description = "DIRECTORY_TOKEN secret: bearer token origins register their live streams with at POST /_brook/directory (docs/scale.md)."
  type        = string
  sensitive   = true
}

variable "vod_api_token" {
  description = "VOD_API_TOKEN secret: the origin's asset API bearer token, with which the edge has ad creatives prepared as assets (docs/ads.md)."
  type        = string
  sensitive   = true
}

variable "qoe_push_token" {
  description = "QOE_PUSH_TOKEN secret: bearer token for the origin's POST /qoe/push (viewers' watch and stall time for the rebuffering alert, docs/qoe.md)."
  type        = string
  sensitive   = true
}

variable "tiered_cache" {
  description = "Tiered Cache with the Smart topology for the zone (one upper-tier data center per origin): \"on\" when true, \"off\" when false."
  type        = bool
}

variable "regional_tiered_cache" {
  description = "Also turn on Regional Tiered Cache (a regional hub between lower and upper tiers; Enterprise plans only)."
  type        = bool
}
