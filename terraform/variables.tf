# Everything that differs between deployments. Each variable is listed in
# docs/deploy.md (checked by tests/terraform/check.py).

# --- Both clouds ------------------------------------------------------------------

variable "name" {
  description = "Short name of this deployment, prefixed to the AWS resources' names (e.g. \"brook-eu\")."
  type        = string
  default     = "brook"
}

# --- Cloudflare -------------------------------------------------------------------

variable "cloudflare_account_id" {
  description = "Cloudflare account ID (dashboard, Workers & Pages overview)."
  type        = string
}

variable "cloudflare_zone_id" {
  description = "ID of the Cloudflare zone that holds edge_hostnames and origin_hostname."
  type        = string
}

variable "worker_name" {
  description = "Name of the edge Worker; keep it equal to wrangler.toml's `name` so `wrangler tail` finds it."
  type        = string
  default     = "brook-edge"
}

variable "workers_dev" {
  description = "Also serve the Worker at <worker_name>.<account subdomain>.workers.dev (no edge cache there)."
  type        = bool
  default     = true
}

variable "edge_hostnames" {
  description = "Hostnames viewers use, one per steering pathway served by Cloudflare; each gets a Worker route and a proxied DNS record."
  type        = list(string)
}

variable "edge_config" {
  description = "The Worker's EDGE_CONFIG (docs/edge.md lists every field and its default); the default is wrangler.toml's."
  type        = any
  default = {
    auth = {
      required   = true
      token_name = "__token__"
    }
    geo = {
      default = {
        unknown = "allow"
      }
    }
    origins = {
      timeout_ms      = 4000
      hold_timeout_ms = 10000
      unhealthy_ms    = 10000
    }
    cache = {
      object_ttl_s            = 31536000
      blocking_playlist_ttl_s = 6
      playlist_ttl_s          = 0
    }
  }
}

variable "tiered_cache" {
  description = "Cloudflare Tiered Cache with the Smart topology on the zone: one upper-tier data center per origin asks the origin, the others ask it (docs/scale.md). false turns both zone settings off."
  type        = bool
  default     = true
}

variable "regional_tiered_cache" {
  description = "Also turn on Regional Tiered Cache, a regional hub between the data centers viewers reach and the upper tier. Enterprise plans only; false leaves the zone setting alone."
  type        = bool
  default     = false
}

variable "token_keys" {
  description = "TOKEN_KEYS secret: viewer token signing keys, `id:hexsecret[,id:hexsecret...]` (docs/tokens.md). Pass as TF_VAR_token_keys, never in a file."
  type        = string
  sensitive   = true
}

variable "metrics_token" {
  description = "METRICS_TOKEN secret: bearer token for the edge's GET /_brook/metrics. Pass as TF_VAR_metrics_token, never in a file."
  type        = string
  sensitive   = true
}

variable "directory_token" {
  description = "DIRECTORY_TOKEN secret: bearer token origins register their live streams with at the edge's POST /_brook/directory (the stream directory); each origin's BROOK_DIRECTORY_TOKEN must match. It lets its holder point a stream's viewers at any origin URL origins.directory.allow names (docs/scale.md). Pass as TF_VAR_directory_token, never in a file."
  type        = string
  sensitive   = true
}

variable "vod_api_token" {
  description = "VOD_API_TOKEN secret: the origin's asset API token (its BROOK_API_TOKEN), with which the edge has ad creatives prepared as assets for server-side ad insertion (docs/ads.md). Pass as TF_VAR_vod_api_token, never in a file."
  type        = string
  sensitive   = true
}

variable "qoe_push_token" {
  description = "QOE_PUSH_TOKEN secret: bearer token the edge presents at the origin's POST /qoe/push with viewers' watch and stall time (the rebuffering alert); the origin's BROOK_QOE_PUSH_TOKEN must match (docs/qoe.md). Pass as TF_VAR_qoe_push_token, never in a file."
  type        = string
  sensitive   = true
}

variable "key_fetch_token" {
  description = "KEY_FETCH_TOKEN secret: bearer token the edge presents at the origin's GET /keys/<stream>/<kid> for ClearKey licenses; the origin's BROOK_KEY_FETCH_TOKEN must match (docs/drm.md). Pass as TF_VAR_key_fetch_token, never in a file."
  type        = string
  sensitive   = true
}

# --- Origin (AWS) -----------------------------------------------------------------

variable "aws_region" {
  description = "AWS region of the origin host and the archive bucket (near the publishers)."
  type        = string
}

variable "aws_vpc_id" {
  description = "VPC for the origin's security group; null = the region's default VPC."
  type        = string
  default     = null
}

variable "aws_subnet_id" {
  description = "Public subnet for the origin instance; null = a default subnet of the default VPC."
  type        = string
  default     = null
}

variable "origin_hostname" {
  description = "DNS name of the origin in the Cloudflare zone (unproxied: SRT and WHIP are UDP); publishers and the edge use it."
  type        = string
}

variable "origin_dns_ttl" {
  description = "TTL of the origin's DNS record, seconds."
  type        = number
  default     = 300
}

variable "origin_instance_type" {
  description = "EC2 instance type. The default ladder costs about 1.3 cores per 1080p30 stream (docs/ladder.md)."
  type        = string
  default     = "c7i.2xlarge"
}

variable "origin_disk_gb" {
  description = "Origin root volume, GB: the archive is written here before the sync copies it to S3."
  type        = number
  default     = 100
}

variable "origin_ssh_key_name" {
  description = "Name of an existing EC2 key pair for SSH to the origin; null = none."
  type        = string
  default     = null
}

variable "origin_ssh_cidrs" {
  description = "IPv4 CIDRs allowed to SSH to the origin (your office or bastion); empty = no SSH rule."
  type        = list(string)
  default     = []
}

variable "publisher_cidrs" {
  description = "IPv4 CIDRs allowed to publish over SRT and RTMP (encoders); stream keys are checked either way."
  type        = list(string)
  default     = ["0.0.0.0/0"]
}

variable "whip_cidrs" {
  description = "IPv4 CIDRs allowed to send WHIP media (browsers publish from anywhere)."
  type        = list(string)
  default     = ["0.0.0.0/0"]
}

variable "origin_http_cidrs" {
  description = "IPv4 CIDRs allowed on the origin's HTTP port; narrow to Cloudflare's published ranges so only the edge pulls."
  type        = list(string)
  default     = ["0.0.0.0/0"]
}

variable "origin_https_cidrs" {
  description = "IPv4 CIDRs allowed on the origin's HTTPS port (WHIP signalling from browsers, the edge when origin_tls)."
  type        = list(string)
  default     = ["0.0.0.0/0"]
}

variable "origin_tls" {
  description = "Whether the edge pulls from the origin over HTTPS (the origin then needs [http.tls] with a certificate for origin_hostname)."
  type        = bool
  default     = false
}

variable "srt_port" {
  description = "UDP port of the origin's srt.listen (origin/brook.example.toml)."
  type        = number
  default     = 9000
}

variable "rtmp_port" {
  description = "TCP port of the origin's rtmp.listen (origin/brook.example.toml)."
  type        = number
  default     = 1935
}

variable "whip_udp_port" {
  description = "UDP port of the origin's whip.listen: one port for every WebRTC session."
  type        = number
  default     = 8189
}

variable "origin_http_port" {
  description = "TCP port of the origin's http.listen."
  type        = number
  default     = 8080
}

variable "origin_https_port" {
  description = "TCP port of the origin's http.tls.listen."
  type        = number
  default     = 8443
}

variable "archive_bucket" {
  description = "Name of the S3 bucket for archived sessions (globally unique)."
  type        = string
}

variable "archive_infrequent_access_days" {
  description = "Days after which archived sessions move to S3 Standard-IA (at least 30)."
  type        = number
  default     = 30
}

variable "archive_expire_days" {
  description = "Days after which archived sessions are deleted from the bucket; 0 keeps them forever."
  type        = number
  default     = 365
}
