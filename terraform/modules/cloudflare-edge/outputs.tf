output "edge_urls" {
  description = "The viewer page on every edge hostname."
  value       = [for host in var.edge_hostnames : "https://${host}/"]
}

output "worker_version_id" {
  description = "The Worker version this apply deployed."
  value       = cloudflare_worker_version.edge.id
}

output "kv_namespace_id" {
  description = "ID of the EDGE_KV namespace (for `wrangler kv key put --namespace-id`)."
  value       = cloudflare_workers_kv_namespace.edge.id
}
