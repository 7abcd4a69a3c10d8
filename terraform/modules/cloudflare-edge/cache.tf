# Tiered Cache for the zone: cache misses in the data center a viewer
# reached (the lower tier) go to one upper-tier data center per origin, and
# only that one asks the origin. docs/scale.md has the request math for
# 1 M viewers, and what it applies to: fetch() subrequests that Cloudflare's
# cache considers cacheable. The Worker's Cache API copies are per data
# center and never tiered.
#
# Both settings are zone-wide singletons: they are always managed, "on" or
# "off" as var.tiered_cache says (the provider's destroy leaves
# argo_tiered_caching as it was, so "off" is the way to turn it off).

# Tiered Cache itself (the dashboard's Caching > Tiered Cache switch; all plans).
resource "cloudflare_argo_tiered_caching" "edge" {
  zone_id = var.zone_id
  value   = var.tiered_cache ? "on" : "off"
}

# Smart Tiered Cache topology: Cloudflare picks the single upper tier with the
# lowest latency to each origin (all plans). Needs Tiered Cache on.
resource "cloudflare_tiered_cache" "edge" {
  zone_id = var.zone_id
  value   = var.tiered_cache ? "on" : "off"

  depends_on = [cloudflare_argo_tiered_caching.edge]
}

# Regional Tiered Cache: a regional hub between the lower tiers and the upper
# tier (Enterprise plans only, so off and unmanaged unless asked for). Removing
# it from the configuration leaves the zone setting as it was.
resource "cloudflare_regional_tiered_cache" "edge" {
  count = var.regional_tiered_cache ? 1 : 0

  zone_id = var.zone_id
  value   = "on"

  depends_on = [cloudflare_tiered_cache.edge]
}
