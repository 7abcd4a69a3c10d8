output "public_ipv4" {
  description = "The origin's fixed public IPv4 address (whip.candidates, the origin DNS record)."
  value       = aws_eip.origin.public_ip
}

output "instance_id" {
  description = "EC2 instance ID of the origin host."
  value       = aws_instance.origin.id
}

output "archive_bucket" {
  description = "Name of the archive bucket."
  value       = aws_s3_bucket.archive.bucket
}
