//! The LL-HLS query parameters of a media playlist request (RFC 8216bis §6.2.5).

/// `_HLS_skip`: ask for a delta update (§6.2.5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Skip {
    #[default]
    No,
    /// `YES`: skip old segments.
    Yes,
    /// `v2`: skip old segments and date ranges.
    V2,
}

/// `_HLS_msn` / `_HLS_part` (blocking reload) and `_HLS_skip` (delta update).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BlockingRequest {
    pub msn: Option<u64>,
    pub part: Option<u64>,
    pub skip: Skip,
}

impl BlockingRequest {
    /// Parses the query string; other parameters are ignored. A repeated, empty or
    /// non-numeric `_HLS_*` value is malformed (answered 400).
    pub fn parse(query: &str) -> Result<Self, &'static str> {
        let mut r = BlockingRequest::default();
        let mut seen_skip = false;
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let number = |v: &str, what| {
                // u64::from_str accepts a leading '+'; the spec's decimal-integer does not.
                if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(what);
                }
                v.parse::<u64>().map_err(|_| what)
            };
            match k {
                "_HLS_msn" => {
                    if r.msn.is_some() {
                        return Err("_HLS_msn given twice");
                    }
                    r.msn = Some(number(v, "_HLS_msn is not a decimal integer")?);
                }
                "_HLS_part" => {
                    if r.part.is_some() {
                        return Err("_HLS_part given twice");
                    }
                    r.part = Some(number(v, "_HLS_part is not a decimal integer")?);
                }
                "_HLS_skip" => {
                    if seen_skip {
                        return Err("_HLS_skip given twice");
                    }
                    seen_skip = true;
                    r.skip = match v {
                        "YES" => Skip::Yes,
                        "v2" => Skip::V2,
                        _ => return Err("_HLS_skip must be YES or v2"),
                    };
                }
                _ => {}
            }
        }
        if r.part.is_some() && r.msn.is_none() {
            return Err("_HLS_part without _HLS_msn");
        }
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsing() {
        let ok = |q: &str| BlockingRequest::parse(q).unwrap();
        assert_eq!(ok(""), BlockingRequest::default());
        assert_eq!(
            ok("_HLS_msn=5&_HLS_part=2"),
            BlockingRequest {
                msn: Some(5),
                part: Some(2),
                skip: Skip::No
            }
        );
        assert_eq!(ok("_HLS_msn=5").part, None);
        assert_eq!(ok("_HLS_skip=YES").skip, Skip::Yes);
        assert_eq!(ok("_HLS_skip=v2&_HLS_msn=1").skip, Skip::V2);
        assert_eq!(ok("foo=bar&_HLS_msn=1").msn, Some(1));
        for bad in [
            "_HLS_msn=x",
            "_HLS_msn=",
            "_HLS_msn",
            "_HLS_msn=-1",
            "_HLS_msn=+1",
            "_HLS_msn=1.5",
            "_HLS_msn=99999999999999999999999",
            "_HLS_part=1",
            "_HLS_msn=1&_HLS_part=a",
            "_HLS_msn=1&_HLS_msn=2",
            "_HLS_skip=yes",
            "_HLS_skip=",
            "_HLS_skip=YES&_HLS_skip=v2",
        ] {
            assert!(BlockingRequest::parse(bad).is_err(), "{bad}");
        }
    }
}
