terraform {
  # `terraform validate` and `plan` need the providers below, which `terraform
  # init` downloads from the Terraform registry: run them on a machine that
  # reaches it (docs/deploy.md). The offline check in `cargo xtask test` only
  # runs `terraform fmt -check` and tests/terraform/check.py.
  required_version = ">= 1.5"

  required_providers {
    # 5.11 is the first release whose cloudflare_worker_version uploads an
    # assets directory (`assets.directory`).
    cloudflare = {
      source  = "cloudflare/cloudflare"
      version = "~> 5.11"
    }
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.0, < 7.0"
    }
  }
}
