//! Time as the packager sees it: media timestamps in track timescales, and wall-clock
//! instants handed in by the caller (the packager never reads a clock).

use std::fmt;

/// A wall-clock instant in milliseconds since the Unix epoch, supplied by the caller.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UnixMillis(pub u64);

impl UnixMillis {
    /// Adds a (possibly negative) media duration expressed in `ticks / timescale`.
    pub fn offset_by(self, ticks: i64, timescale: u32) -> UnixMillis {
        let ms = (i128::from(ticks) * 1000) / i128::from(timescale.max(1));
        let v = i128::from(self.0) + ms;
        UnixMillis(v.clamp(0, i128::from(u64::MAX)) as u64)
    }
}

/// Renders as ISO 8601 / RFC 3339 in UTC with milliseconds, the form
/// `EXT-X-PROGRAM-DATE-TIME` uses: `2026-11-23T14:57:30.123Z`.
impl fmt::Display for UnixMillis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0 % 1000;
        let secs = self.0 / 1000;
        let days = secs / 86_400;
        let rem = secs % 86_400;
        let (y, m, d) = civil_from_days(days as i64);
        write!(
            f,
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}Z",
            rem / 3600,
            (rem % 3600) / 60,
            rem % 60
        )
    }
}

impl UnixMillis {
    /// Parses an RFC 3339 / ISO 8601 date-time as `EXT-X-PROGRAM-DATE-TIME` and
    /// `EXT-X-DATERANGE` carry it: `YYYY-MM-DDThh:mm:ss[.fff][Z|±hh:mm|±hhmm]`.
    pub fn parse_iso8601(s: &str) -> Option<UnixMillis> {
        let b = s.as_bytes();
        let num = |r: std::ops::Range<usize>| -> Option<i64> {
            let t = s.get(r)?;
            t.bytes()
                .all(|c| c.is_ascii_digit())
                .then(|| t.parse().ok())?
        };
        if b.len() < 19
            || b[4] != b'-'
            || b[7] != b'-'
            || !matches!(b[10], b'T' | b't' | b' ')
            || b[13] != b':'
            || b[16] != b':'
        {
            return None;
        }
        let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
        let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
        if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
            return None;
        }
        let mut rest = &s[19..];
        let mut ms = 0i64;
        if let Some(frac) = rest.strip_prefix('.') {
            let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return None;
            }
            let mut scaled = 0i64;
            for (i, c) in frac.bytes().take(3).enumerate() {
                if i < digits {
                    scaled = scaled * 10 + i64::from(c - b'0');
                }
            }
            for _ in digits.min(3)..3 {
                scaled *= 10;
            }
            ms = scaled;
            rest = &frac[digits..];
        }
        let offset_min = match rest {
            "Z" | "z" => 0,
            _ => {
                let sign = match rest.as_bytes().first()? {
                    b'+' => 1,
                    b'-' => -1,
                    _ => return None,
                };
                let t = rest[1..].replace(':', "");
                if t.len() != 4 || !t.bytes().all(|c| c.is_ascii_digit()) {
                    return None;
                }
                let oh: i64 = t[..2].parse().ok()?;
                let om: i64 = t[2..].parse().ok()?;
                sign * (oh * 60 + om)
            }
        };
        let days = days_from_civil(y, mo as u32, d as u32);
        let secs = days * 86_400 + h * 3600 + mi * 60 + sec - offset_min * 60;
        let total = secs.checked_mul(1000)?.checked_add(ms)?;
        u64::try_from(total).ok().map(UnixMillis)
    }
}

/// Proleptic Gregorian date to days since 1970-01-01 (Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day)
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// MPEG-TS PTS/DTS are 33-bit counters at 90 kHz that wrap every ~26.5 hours.
pub const TS_TIMESCALE: u32 = 90_000;
const WRAP: i64 = 1 << 33;

/// Extends 33-bit timestamps into a monotonic-ish 64-bit timeline by counting wraps.
///
/// A jump backwards by more than half the range is taken as a wrap; smaller jumps are
/// kept as they are (they are reordering or a real discontinuity, which later layers
/// handle).
#[derive(Clone, Debug, Default)]
pub struct Unwrapper {
    last: Option<i64>,
}

impl Unwrapper {
    pub fn unwrap(&mut self, ts33: u64) -> i64 {
        let raw = (ts33 as i64) & (WRAP - 1);
        let value = match self.last {
            None => raw,
            Some(last) => {
                let base = last - last.rem_euclid(WRAP);
                let candidates = [base - WRAP + raw, base + raw, base + WRAP + raw];
                // The candidate closest to the previous value.
                let mut best = candidates[1];
                for c in candidates {
                    if (c - last).abs() < (best - last).abs() {
                        best = c;
                    }
                }
                best
            }
        };
        self.last = Some(value);
        value
    }
}

/// Converts `ticks` from one timescale to another, rounding to nearest.
pub fn rescale(ticks: i64, from: u32, to: u32) -> i64 {
    if from == to || from == 0 {
        return ticks;
    }
    let num = i128::from(ticks) * i128::from(to);
    let den = i128::from(from);
    let q = if num >= 0 {
        (num + den / 2) / den
    } else {
        (num - den / 2) / den
    };
    q.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso8601() {
        let cases = [
            (0, "1970-01-01T00:00:00.000Z"),
            (951_782_400_000, "2000-02-29T00:00:00.000Z"),
            (1_795_445_850_123, "2026-11-23T14:57:30.123Z"),
        ];
        for (ms, want) in cases {
            assert_eq!(UnixMillis(ms).to_string(), want);
        }
    }

    #[test]
    fn parse_iso8601_forms() {
        let want = UnixMillis(1_795_445_850_123);
        for s in [
            "2026-11-23T14:57:30.123Z",
            "2026-11-23T14:57:30.1234Z",
            "2026-11-23T15:57:30.123+01:00",
            "2026-11-23T09:57:30.123-0500",
        ] {
            assert_eq!(UnixMillis::parse_iso8601(s), Some(want), "{s}");
        }
        assert_eq!(
            UnixMillis::parse_iso8601("2000-02-29T00:00:00Z"),
            Some(UnixMillis(951_782_400_000))
        );
        assert_eq!(
            UnixMillis::parse_iso8601("2026-11-23T14:57:30.5Z")
                .unwrap()
                .0
                % 1000,
            500
        );
        for bad in [
            "",
            "2026-11-23",
            "2026-13-23T00:00:00Z",
            "2026-11-23T14:57:30",
            "2026-11-23T14:57:30.Z",
            "2026-11-23T14:57:30+1",
        ] {
            assert_eq!(UnixMillis::parse_iso8601(bad), None, "{bad}");
        }
        // Rendering and parsing agree.
        assert_eq!(UnixMillis::parse_iso8601(&want.to_string()), Some(want));
    }

    #[test]
    fn unwrap_across_33_bit_wrap() {
        let mut u = Unwrapper::default();
        assert_eq!(u.unwrap(WRAP as u64 - 3000), WRAP - 3000);
        assert_eq!(u.unwrap(0), WRAP);
        assert_eq!(u.unwrap(3000), WRAP + 3000);
        // Small backwards step (B-frame PTS) is not a wrap.
        assert_eq!(u.unwrap(1500), WRAP + 1500);
    }

    #[test]
    fn rescale_rounds() {
        assert_eq!(rescale(90_000, 90_000, 48_000), 48_000);
        assert_eq!(rescale(1, 90_000, 48_000), 1);
        assert_eq!(rescale(-90_000, 90_000, 1000), -1000);
    }
}
