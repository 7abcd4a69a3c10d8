//! Single byte ranges (RFC 9110 §14): `Range: bytes=first-last`, `first-`, `-suffix`.

/// What a `Range` header asks of a body of `len` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeRequest {
    /// No usable range: send the whole body (also for several ranges and unknown
    /// units, which RFC 9110 lets a server ignore).
    Full,
    /// Bytes `start..end` (end exclusive).
    Partial { start: u64, end: u64 },
    /// 416: the range starts past the end.
    Unsatisfiable,
}

impl RangeRequest {
    pub fn parse(header: Option<&str>, len: u64) -> Self {
        let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
            return Self::Full;
        };
        if spec.contains(',') {
            return Self::Full;
        }
        let Some((a, b)) = spec.trim().split_once('-') else {
            return Self::Full;
        };
        let num = |s: &str| -> Option<u64> {
            if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
                return None;
            }
            s.parse().ok()
        };
        match (a.is_empty(), b.is_empty()) {
            (true, true) => Self::Full,
            (true, false) => {
                let Some(suffix) = num(b) else {
                    return Self::Full;
                };
                if suffix == 0 || len == 0 {
                    return Self::Unsatisfiable;
                }
                Self::Partial {
                    start: len.saturating_sub(suffix),
                    end: len,
                }
            }
            (false, _) => {
                let Some(start) = num(a) else {
                    return Self::Full;
                };
                let last = if b.is_empty() {
                    u64::MAX
                } else {
                    match num(b) {
                        Some(l) if l >= start => l,
                        _ => return Self::Full,
                    }
                };
                if start >= len {
                    return Self::Unsatisfiable;
                }
                Self::Partial {
                    start,
                    end: last.saturating_add(1).min(len),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use RangeRequest::*;

    #[test]
    fn table() {
        let p = |start, end| Partial { start, end };
        for (h, want) in [
            (None, Full),
            (Some("bytes=0-99"), p(0, 100)),
            (Some("bytes=0-0"), p(0, 1)),
            (Some("bytes=10-"), p(10, 1000)),
            (Some("bytes=-100"), p(900, 1000)),
            (Some("bytes=-5000"), p(0, 1000)),
            (Some("bytes=990-5000"), p(990, 1000)),
            (Some("bytes=1000-"), Unsatisfiable),
            (Some("bytes=-0"), Unsatisfiable),
            (Some("bytes=5-4"), Full),
            (Some("bytes=0-1,5-6"), Full),
            (Some("items=0-1"), Full),
            (Some("bytes=a-b"), Full),
            (Some("bytes=-"), Full),
            (Some("bytes=+1-2"), Full),
            (Some("bytes=18446744073709551615-"), Unsatisfiable),
            (Some("bytes=0-18446744073709551615"), p(0, 1000)),
        ] {
            assert_eq!(RangeRequest::parse(h, 1000), want, "{h:?}");
        }
    }
}
