variable "name" {
  description = "Prefix for the names of the AWS resources (security group, role, instance tag)."
  type        = string
}

variable "vpc_id" {
  description = "VPC of the origin's security group; null = the region's default VPC."
  type        = string
}

variable "subnet_id" {
  description = "Public subnet of the origin instance; null = a default subnet."
  type        = string
}

variable "instance_type" {
  description = "EC2 instance type of the origin host."
  type        = string
}

variable "disk_gb" {
  description = "Root volume size, GB (the archive is written here before it is copied to S3)."
  type        = number
}

variable "ssh_key_name" {
  description = "Name of an EC2 key pair for SSH to the origin; null = none."
  type        = string
}

variable "ssh_cidrs" {
  description = "IPv4 CIDRs allowed to SSH to the origin."
  type        = list(string)
}

variable "publisher_cidrs" {
  description = "IPv4 CIDRs allowed to publish over SRT and RTMP."
  type        = list(string)
}

variable "whip_cidrs" {
  description = "IPv4 CIDRs allowed to send WHIP (WebRTC) media."
  type        = list(string)
}

variable "http_cidrs" {
  description = "IPv4 CIDRs allowed to reach the origin's HTTP listener."
  type        = list(string)
}

variable "https_cidrs" {
  description = "IPv4 CIDRs allowed to reach the origin's HTTPS listener."
  type        = list(string)
}

variable "srt_port" {
  description = "UDP port of srt.listen."
  type        = number
}

variable "rtmp_port" {
  description = "TCP port of the origin's rtmp.listen."
  type        = number
}

variable "whip_udp_port" {
  description = "UDP port of whip.listen."
  type        = number
}

variable "http_port" {
  description = "TCP port of http.listen."
  type        = number
}

variable "https_port" {
  description = "TCP port of http.tls.listen."
  type        = number
}

variable "archive_bucket" {
  description = "Name of the S3 bucket for archives (globally unique)."
  type        = string
}

variable "archive_infrequent_access_days" {
  description = "Days after which archived objects move to S3 Standard-IA."
  type        = number
}

variable "archive_expire_days" {
  description = "Days after which archived objects are deleted; 0 keeps them."
  type        = number
}
