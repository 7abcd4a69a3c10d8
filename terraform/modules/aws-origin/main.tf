# One regional origin host on AWS: an EC2 instance with a fixed public
# address, the firewall its ingests and HTTP need, and the S3 bucket archives
# go to.
#
# Terraform prepares the host (packages, user, systemd unit, archive sync);
# the brook-origin binary and /etc/brook/brook.toml (stream keys) are copied
# by the operator (docs/deploy.md), so no stream key or admin token is ever in
# the terraform state or the instance's user data.

data "aws_ami" "debian" {
  most_recent = true
  owners      = ["136693071363"] # Debian's AWS account

  filter {
    name   = "name"
    values = ["debian-12-amd64-*"]
  }

  filter {
    name   = "architecture"
    values = ["x86_64"]
  }
}

# Allocated before the instance so the instance's own setup can know it
# (whip.candidates must name the address clients send media to).
resource "aws_eip" "origin" {
  domain = "vpc"
  tags   = { Name = "${var.name}-origin" }
}

resource "aws_eip_association" "origin" {
  instance_id   = aws_instance.origin.id
  allocation_id = aws_eip.origin.id
}

resource "aws_security_group" "origin" {
  name        = "${var.name}-origin"
  description = "Brook origin: SRT and WHIP (UDP), HTTP(S)"
  vpc_id      = var.vpc_id
}

# SRT: encoders publish to srt://host:<port>?streamid=publish:live/<name>:<key>.
resource "aws_vpc_security_group_ingress_rule" "srt" {
  for_each = toset(var.publisher_cidrs)

  security_group_id = aws_security_group.origin.id
  description       = "SRT ingest (srt.listen)"
  ip_protocol       = "udp"
  from_port         = var.srt_port
  to_port           = var.srt_port
  cidr_ipv4         = each.value
}

# RTMP: OBS's default, rtmp://host:<port>/live with stream key <name>?key=<key>.
resource "aws_vpc_security_group_ingress_rule" "rtmp" {
  for_each = toset(var.publisher_cidrs)

  security_group_id = aws_security_group.origin.id
  description       = "RTMP ingest (rtmp.listen)"
  ip_protocol       = "tcp"
  from_port         = var.rtmp_port
  to_port           = var.rtmp_port
  cidr_ipv4         = each.value
}

# WHIP media: one UDP port for every WebRTC session (ICE-lite), reached by
# browsers, OBS and GStreamer wherever they are.
resource "aws_vpc_security_group_ingress_rule" "whip_udp" {
  for_each = toset(var.whip_cidrs)

  security_group_id = aws_security_group.origin.id
  description       = "WHIP media (whip.listen)"
  ip_protocol       = "udp"
  from_port         = var.whip_udp_port
  to_port           = var.whip_udp_port
  cidr_ipv4         = each.value
}

# Playlists and media for the edge (ORIGIN_URL), plain HTTP.
resource "aws_vpc_security_group_ingress_rule" "http" {
  for_each = toset(var.http_cidrs)

  security_group_id = aws_security_group.origin.id
  description       = "HTTP (http.listen): the edge pulls here"
  ip_protocol       = "tcp"
  from_port         = var.http_port
  to_port           = var.http_port
  cidr_ipv4         = each.value
}

# HTTPS: WHIP's POST /whip/<stream> from browsers (they need a secure page),
# and the edge when ORIGIN_URL is https.
resource "aws_vpc_security_group_ingress_rule" "https" {
  for_each = toset(var.https_cidrs)

  security_group_id = aws_security_group.origin.id
  description       = "HTTPS (http.tls.listen): WHIP signalling, edge"
  ip_protocol       = "tcp"
  from_port         = var.https_port
  to_port           = var.https_port
  cidr_ipv4         = each.value
}

resource "aws_vpc_security_group_ingress_rule" "ssh" {
  for_each = toset(var.ssh_cidrs)

  security_group_id = aws_security_group.origin.id
  description       = "SSH for the operator"
  ip_protocol       = "tcp"
  from_port         = 22
  to_port           = 22
  cidr_ipv4         = each.value
}

resource "aws_vpc_security_group_egress_rule" "all" {
  security_group_id = aws_security_group.origin.id
  description       = "Packages, S3, TURN/STUN answers"
  ip_protocol       = "-1"
  cidr_ipv4         = "0.0.0.0/0"
}

resource "aws_instance" "origin" {
  ami                    = data.aws_ami.debian.id
  instance_type          = var.instance_type
  subnet_id              = var.subnet_id
  key_name               = var.ssh_key_name
  vpc_security_group_ids = [aws_security_group.origin.id]
  iam_instance_profile   = aws_iam_instance_profile.origin.name

  root_block_device {
    volume_size = var.disk_gb
    volume_type = "gp3"
  }

  user_data = templatefile("${path.module}/cloud-init.yaml.tftpl", {
    bucket      = aws_s3_bucket.archive.bucket
    public_ipv4 = aws_eip.origin.public_ip
  })

  tags = { Name = "${var.name}-origin" }
}

# --- Archive bucket --------------------------------------------------------------
# The origin writes every session under archive.dir on its disk
# (<stream>/<session>/main/, docs/origin.md); a timer on the host copies that
# tree to s3://<bucket>/archive/ until the origin writes to S3 itself (an
# object_store Storage, docs/ARCHITECTURE.md).

resource "aws_s3_bucket" "archive" {
  bucket        = var.archive_bucket
  force_destroy = false
}

resource "aws_s3_bucket_public_access_block" "archive" {
  bucket                  = aws_s3_bucket.archive.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_lifecycle_configuration" "archive" {
  bucket = aws_s3_bucket.archive.id

  # Old sessions are rarely watched: cheaper storage after a while, gone after
  # the retention period (0 keeps them).
  rule {
    id     = "archive-age"
    status = "Enabled"

    filter {
      prefix = "archive/"
    }

    transition {
      days          = var.archive_infrequent_access_days
      storage_class = "STANDARD_IA"
    }

    dynamic "expiration" {
      for_each = var.archive_expire_days > 0 ? [var.archive_expire_days] : []
      content {
        days = expiration.value
      }
    }
  }

  # Uploads cut off by a crash or a restart leave parts that cost money and
  # are never read.
  rule {
    id     = "abort-incomplete-uploads"
    status = "Enabled"

    filter {}

    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }
}

resource "aws_iam_role" "origin" {
  name = "${var.name}-origin"
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Service = "ec2.amazonaws.com" }
      Action    = "sts:AssumeRole"
    }]
  })
}

# The host may list, read and write the archive bucket, nothing else.
resource "aws_iam_role_policy" "archive" {
  name = "archive"
  role = aws_iam_role.origin.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Effect   = "Allow"
        Action   = ["s3:ListBucket"]
        Resource = aws_s3_bucket.archive.arn
      },
      {
        Effect   = "Allow"
        Action   = ["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"]
        Resource = "${aws_s3_bucket.archive.arn}/*"
      },
    ]
  })
}

resource "aws_iam_instance_profile" "origin" {
  name = "${var.name}-origin"
  role = aws_iam_role.origin.name
}
