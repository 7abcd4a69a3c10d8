//! The Prometheus text exposition format (version 0.0.4), written by hand:
//! what Brook exports is a few counters, gauges and histograms, and the
//! format is a page of text.
//!
//! ```
//! use brook_common::prometheus::{Text, Type};
//!
//! let mut t = Text::new();
//! t.family("brook_edge_requests_total", Type::Counter, "Requests answered.");
//! t.sample("brook_edge_requests_total", &[("kind", "part"), ("status", "200")], 3u64);
//! assert_eq!(
//!     t.finish(),
//!     "# HELP brook_edge_requests_total Requests answered.\n\
//!      ## TYPE brook_edge_requests_total counter\n\
//!      brook_edge_requests_total{kind=\"part\",status=\"200\"} 3\n"
//! );
//! ```
//!
//! Label values are escaped here; metric and label names are the caller's
//! constants (checked in debug builds).

use std::fmt::Write;

/// `# TYPE` of a family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Type {
    Counter,
    Gauge,
    Histogram,
}

impl Type {
    fn as_str(self) -> &'static str {
        match self {
            Type::Counter => "counter",
            Type::Gauge => "gauge",
            Type::Histogram => "histogram",
        }
    }
}

/// A sample value: counts print as integers, measurements as floats
/// (`+Inf`, `-Inf`, `NaN` spelt as Prometheus reads them).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value {
    Int(u64),
    Float(f64),
}

impl From<u64> for Value {
    fn from(v: u64) -> Self {
        Value::Int(v)
    }
}

impl From<usize> for Value {
    fn from(v: usize) -> Self {
        Value::Int(v as u64)
    }
}

impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Float(v)
    }
}

/// A page being written.
#[derive(Debug, Default, Clone)]
pub struct Text {
    out: String,
}

impl Text {
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts a family: `# HELP` (unless `help` is empty), then `# TYPE`.
    /// Its samples follow.
    pub fn family(&mut self, name: &str, kind: Type, help: &str) -> &mut Self {
        debug_assert!(is_name(name), "metric name {name:?}");
        if !help.is_empty() {
            let help = help.replace('\\', "\\\\").replace('\n', "\\n");
            let _ = writeln!(self.out, "# HELP {name} {help}");
        }
        let _ = writeln!(self.out, "# TYPE {name} {}", kind.as_str());
        self
    }

    /// One sample line: `name{labels} value`.
    pub fn sample(
        &mut self,
        name: &str,
        labels: &[(&str, &str)],
        value: impl Into<Value>,
    ) -> &mut Self {
        debug_assert!(is_name(name), "metric name {name:?}");
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                debug_assert!(is_name(k), "label name {k:?}");
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", escape_label_value(v));
            }
            self.out.push('}');
        }
        self.out.push(' ');
        match value.into() {
            Value::Int(v) => {
                let _ = write!(self.out, "{v}");
            }
            Value::Float(v) => write_float(&mut self.out, v),
        }
        self.out.push('\n');
        self
    }

    /// The samples of one histogram: `buckets` are (upper bound, how many
    /// observations fell in that bucket and not a lower one), in increasing
    /// order; `count` is every observation (the `+Inf` bucket).
    pub fn histogram(
        &mut self,
        name: &str,
        labels: &[(&str, &str)],
        buckets: impl IntoIterator<Item = (f64, u64)>,
        sum: f64,
        count: u64,
    ) -> &mut Self {
        let bucket = format!("{name}_bucket");
        let mut cumulative = 0u64;
        for (bound, n) in buckets {
            cumulative = cumulative.saturating_add(n);
            let mut le = String::new();
            write_float(&mut le, bound);
            let mut with_le = labels.to_vec();
            with_le.push(("le", &le));
            self.sample(&bucket, &with_le, cumulative);
        }
        let mut with_le = labels.to_vec();
        with_le.push(("le", "+Inf"));
        self.sample(&bucket, &with_le, count);
        self.sample(&format!("{name}_sum"), labels, sum);
        self.sample(&format!("{name}_count"), labels, count)
    }

    pub fn finish(self) -> String {
        self.out
    }
}

/// A label value as the format wants it: `\`, `"` and line feeds escaped.
pub fn escape_label_value(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn write_float(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("NaN");
    } else if v == f64::INFINITY {
        out.push_str("+Inf");
    } else if v == f64::NEG_INFINITY {
        out.push_str("-Inf");
    } else {
        let _ = write!(out, "{v}");
    }
}

/// `[a-zA-Z_:][a-zA-Z0-9_:]*`.
fn is_name(s: &str) -> bool {
    let mut bytes = s.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_' || b == b':')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_samples_and_escapes() {
        let mut t = Text::new();
        t.family(
            "brook_streams_active",
            Type::Gauge,
            "Streams with a\npublisher \\ live.",
        )
        .sample("brook_streams_active", &[], 2u64);
        t.family("brook_edge_geo_blocked_total", Type::Counter, "")
            .sample(
                "brook_edge_geo_blocked_total",
                &[("rule", "a\"b\\c\nd")],
                1u64,
            );
        t.family("brook_srt_rtt_seconds", Type::Gauge, "")
            .sample("brook_srt_rtt_seconds", &[("stream", "cam1")], 0.025)
            .sample("brook_srt_rtt_seconds", &[("stream", "cam2")], f64::NAN)
            .sample(
                "brook_srt_rtt_seconds",
                &[("stream", "cam3")],
                f64::INFINITY,
            );
        assert_eq!(
            t.finish(),
            "# HELP brook_streams_active Streams with a\\npublisher \\\\ live.\n\
             # TYPE brook_streams_active gauge\n\
             brook_streams_active 2\n\
             # TYPE brook_edge_geo_blocked_total counter\n\
             brook_edge_geo_blocked_total{rule=\"a\\\"b\\\\c\\nd\"} 1\n\
             # TYPE brook_srt_rtt_seconds gauge\n\
             brook_srt_rtt_seconds{stream=\"cam1\"} 0.025\n\
             brook_srt_rtt_seconds{stream=\"cam2\"} NaN\n\
             brook_srt_rtt_seconds{stream=\"cam3\"} +Inf\n"
        );
    }

    #[test]
    fn histograms_are_cumulative() {
        let mut t = Text::new();
        t.family("brook_part_seconds", Type::Histogram, "")
            .histogram(
                "brook_part_seconds",
                &[("stream", "cam1")],
                [(0.005, 1), (0.1, 0), (5.0, 2)],
                60.003,
                4,
            );
        assert_eq!(
            t.finish(),
            "# TYPE brook_part_seconds histogram\n\
             brook_part_seconds_bucket{stream=\"cam1\",le=\"0.005\"} 1\n\
             brook_part_seconds_bucket{stream=\"cam1\",le=\"0.1\"} 1\n\
             brook_part_seconds_bucket{stream=\"cam1\",le=\"5\"} 3\n\
             brook_part_seconds_bucket{stream=\"cam1\",le=\"+Inf\"} 4\n\
             brook_part_seconds_sum{stream=\"cam1\"} 60.003\n\
             brook_part_seconds_count{stream=\"cam1\"} 4\n"
        );
    }

    #[test]
    fn names() {
        assert!(is_name("brook_edge_requests_total"));
        assert!(is_name("a:b"));
        assert!(!is_name("1abc"));
        assert!(!is_name("a-b"));
        assert!(!is_name(""));
    }
}
