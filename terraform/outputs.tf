output "viewer_urls" {
  description = "The viewer page on each edge hostname (add ?stream=<name>&token=... as docs/tokens.md says)."
  value       = module.edge.edge_urls
}

output "playlist_url_template" {
  description = "A stream's multivariant playlist through the edge."
  value       = "https://${var.edge_hostnames[0]}/live/<stream>/index.m3u8"
}

output "srt_publish_url_template" {
  description = "Where encoders publish (ffmpeg -f mpegts '<this>')."
  value       = "srt://${var.origin_hostname}:${var.srt_port}?streamid=publish:live/<stream>:<key>"
}

output "whip_endpoint_template" {
  description = "WHIP endpoint on the origin (needs [http.tls] for browsers)."
  value       = "https://${var.origin_hostname}:${var.origin_https_port}/whip/<stream>"
}

output "origin_url" {
  description = "What the edge pulls from (its ORIGIN_URL)."
  value       = local.origin_url
}

output "origin_public_ipv4" {
  description = "The origin's public address: put it in whip.candidates in /etc/brook/brook.toml."
  value       = module.origin.public_ipv4
}

output "origin_instance_id" {
  description = "EC2 instance ID of the origin host."
  value       = module.origin.instance_id
}

output "archive_bucket" {
  description = "The S3 bucket archived sessions are copied to (under archive/)."
  value       = module.origin.archive_bucket
}

output "edge_kv_namespace_id" {
  description = "EDGE_KV namespace ID, for `wrangler kv key put --namespace-id <id> config ...`."
  value       = module.edge.kv_namespace_id
}

output "worker_version_id" {
  description = "The edge Worker version this apply deployed."
  value       = module.edge.worker_version_id
}
