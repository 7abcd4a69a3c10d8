# Brook in one region: the origin host and its archive bucket on AWS, the edge
# Worker with its routes and DNS on Cloudflare. README.md beside this file
# says what each module creates; docs/deploy.md walks through a deploy.

provider "cloudflare" {
  # The API token comes from CLOUDFLARE_API_TOKEN (never from a file here).
}

provider "aws" {
  region = var.aws_region
}

module "origin" {
  source = "./modules/aws-origin"

  name                           = var.name
  vpc_id                         = var.aws_vpc_id
  subnet_id                      = var.aws_subnet_id
  instance_type                  = var.origin_instance_type
  disk_gb                        = var.origin_disk_gb
  ssh_key_name                   = var.origin_ssh_key_name
  ssh_cidrs                      = var.origin_ssh_cidrs
  publisher_cidrs                = var.publisher_cidrs
  whip_cidrs                     = var.whip_cidrs
  http_cidrs                     = var.origin_http_cidrs
  https_cidrs                    = var.origin_https_cidrs
  srt_port                       = var.srt_port
  rtmp_port                      = var.rtmp_port
  whip_udp_port                  = var.whip_udp_port
  http_port                      = var.origin_http_port
  https_port                     = var.origin_https_port
  archive_bucket                 = var.archive_bucket
  archive_infrequent_access_days = var.archive_infrequent_access_days
  archive_expire_days            = var.archive_expire_days
}

module "edge" {
  source = "./modules/cloudflare-edge"

  account_id  = var.cloudflare_account_id
  zone_id     = var.cloudflare_zone_id
  worker_name = var.worker_name
  workers_dev = var.workers_dev

  # Built by `cargo xtask wasm` and `cargo xtask setup` before `terraform apply`.
  bundle_dir = "${path.root}/../edge/build"
  assets_dir = "${path.root}/../web"

  edge_hostnames  = var.edge_hostnames
  origin_hostname = var.origin_hostname
  origin_ipv4     = module.origin.public_ipv4
  origin_dns_ttl  = var.origin_dns_ttl
  origin_url      = local.origin_url
  edge_config     = var.edge_config

  tiered_cache          = var.tiered_cache
  regional_tiered_cache = var.regional_tiered_cache

  token_keys      = var.token_keys
  metrics_token   = var.metrics_token
  key_fetch_token = var.key_fetch_token
  vod_api_token   = var.vod_api_token
  directory_token = var.directory_token
  qoe_push_token  = var.qoe_push_token
}

locals {
  # The edge pulls over HTTPS when the origin has a certificate ([http.tls]).
  origin_url = (var.origin_tls
    ? "https://${var.origin_hostname}:${var.origin_https_port}"
    : "http://${var.origin_hostname}:${var.origin_http_port}"
  )
}
