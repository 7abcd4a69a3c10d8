//! Prometheus metrics in the text exposition format (version 0.0.4). Process-wide
//! counters live here as atomics; per-stream values are read from the hub when
//! `/metrics` is scraped, so a stream's series exist exactly while it does.
//!
//! Rendered with brook-common's writer (the edge's too), rather than the
//! `prometheus` crate: what Brook exports is a few counters, gauges and one
//! histogram, the hot path is an atomic add, and the format is a page of text.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use brook_common::prometheus::{Text, Type};

use crate::serve::hub::Hub;

/// Upper bounds (seconds) of the latency histogram buckets.
const LATENCY_BUCKETS: [f64; 13] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// A cumulative histogram with fixed buckets.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        if let Some(i) = LATENCY_BUCKETS.iter().position(|b| secs <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add(d.as_micros() as u64, Ordering::Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    fn render(&self, out: &mut Text, name: &str, help: &str) {
        out.family(name, Type::Histogram, help);
        let buckets = LATENCY_BUCKETS
            .iter()
            .zip(&self.buckets)
            .map(|(bound, n)| (*bound, n.load(Ordering::Relaxed)));
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        out.histogram(name, &[], buckets, sum, self.count());
    }
}

/// What the HTTP layer answered with, by status code.
#[derive(Debug)]
pub struct StatusCounts([AtomicU64; 500]);

impl Default for StatusCounts {
    fn default() -> Self {
        Self(std::array::from_fn(|_| AtomicU64::new(0)))
    }
}

impl StatusCounts {
    pub fn add(&self, status: u16) {
        if let Some(c) = status
            .checked_sub(100)
            .and_then(|i| self.0.get(usize::from(i)))
        {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn get(&self, status: u16) -> u64 {
        status
            .checked_sub(100)
            .and_then(|i| self.0.get(usize::from(i)))
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }
}

/// Transcoder restarts by reason.
#[derive(Debug, Default)]
pub struct RestartCounts([AtomicU64; RESTART_REASONS.len()]);

/// Why a transcoder restarted: it exited on its own (a crash), the machine was
/// too slow (a rung dropped), the source changed (new tracks, a timestamp jump,
/// a reconnect), or ffmpeg could not be started at all.
pub const RESTART_REASONS: [&str; 4] = ["exited", "slow", "source_change", "spawn_failed"];

impl RestartCounts {
    pub fn add(&self, reason: &str) {
        if let Some(i) = RESTART_REASONS.iter().position(|r| *r == reason) {
            self.0[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn get(&self, reason: &str) -> u64 {
        RESTART_REASONS
            .iter()
            .position(|r| *r == reason)
            .map_or(0, |i| self.0[i].load(Ordering::Relaxed))
    }
}

/// What `POST /api/v1/assets` answered: a new asset (201), the live one of
/// the same URL (`dedupe`, 200), or a URL refused (400/422).
pub const IMPORT_REQUEST_RESULTS: [&str; 4] = ["created", "deduped", "conflict", "refused"];
/// How an asset's fetch from its URL ended: the file is here; a server or
/// network failure (the job runs again); a refused address or redirect; any
/// other failure (a 4xx, too large, too slow).
pub const IMPORT_FETCH_RESULTS: [&str; 4] = ["fetched", "retried", "refused", "failed"];

/// Assets from a URL (`vod::import`).
#[derive(Debug, Default)]
pub struct ImportCounts {
    requests: [AtomicU64; IMPORT_REQUEST_RESULTS.len()],
    fetches: [AtomicU64; IMPORT_FETCH_RESULTS.len()],
    /// Bytes of fetched files.
    pub bytes: AtomicU64,
}

impl ImportCounts {
    /// One of [`IMPORT_REQUEST_RESULTS`]; others are ignored.
    pub fn request(&self, result: &str) {
        if let Some(i) = IMPORT_REQUEST_RESULTS.iter().position(|r| *r == result) {
            self.requests[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// One of [`IMPORT_FETCH_RESULTS`]; others are ignored.
    pub fn fetch(&self, result: &str) {
        if let Some(i) = IMPORT_FETCH_RESULTS.iter().position(|r| *r == result) {
            self.fetches[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    fn render(&self, out: &mut Text) {
        let families = [
            (
                "brook_vod_import_requests_total",
                "Requests for an asset from a URL, by result.",
                &IMPORT_REQUEST_RESULTS[..],
                &self.requests[..],
            ),
            (
                "brook_vod_import_fetches_total",
                "Fetches of an asset's input URL, by result.",
                &IMPORT_FETCH_RESULTS[..],
                &self.fetches[..],
            ),
        ];
        for (name, help, results, counts) in families {
            out.family(name, Type::Counter, help);
            for (result, n) in results.iter().zip(counts) {
                out.sample(name, &[("result", *result)], n.load(Ordering::Relaxed));
            }
        }
        counter(
            out,
            "brook_vod_import_fetched_bytes_total",
            "Bytes fetched from assets' input URLs.",
            self.bytes.load(Ordering::Relaxed),
        );
    }
}

/// One stream's viewer watch and stall time, as the edge pushes it
/// (`serve::http::qoe`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QoeSums {
    pub watch_ms: u64,
    pub stall_ms: u64,
    pub stalls: u64,
}

/// Results of `POST /qoe/push`.
const QOE_PUSH_RESULTS: [&str; 3] = ["accepted", "unauthorized", "invalid"];

/// Viewer QoE from the edge's pushes: totals by stream (only streams this
/// origin has, so at most as many series as streams) and pushes by result.
#[derive(Debug, Default)]
pub struct QoeTotals {
    streams: std::sync::Mutex<std::collections::BTreeMap<String, QoeSums>>,
    pushes: [AtomicU64; QOE_PUSH_RESULTS.len()],
}

impl QoeTotals {
    pub fn add(&self, stream: &str, s: QoeSums) {
        let mut streams = self.streams.lock().unwrap_or_else(|e| e.into_inner());
        let t = streams.entry(stream.to_owned()).or_default();
        t.watch_ms = t.watch_ms.saturating_add(s.watch_ms);
        t.stall_ms = t.stall_ms.saturating_add(s.stall_ms);
        t.stalls = t.stalls.saturating_add(s.stalls);
    }

    pub fn count_push(&self, result: &str) {
        if let Some(i) = QOE_PUSH_RESULTS.iter().position(|r| *r == result) {
            self.pushes[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    fn render(&self, out: &mut Text) {
        let streams = self
            .streams
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let family = |name, help, f: &dyn Fn(&QoeSums) -> f64| PerStream {
            name,
            help,
            kind: Type::Counter,
            values: streams.iter().map(|(n, s)| (n.clone(), f(s))).collect(),
        };
        for f in [
            family(
                "brook_qoe_watch_seconds_total",
                "Viewers' watch time (startup and stalls included, pauses not), as the edge's players report it.",
                &|s| s.watch_ms as f64 / 1000.0,
            ),
            family(
                "brook_qoe_stall_seconds_total",
                "Viewers' rebuffering time after the first frame, as the edge's players report it.",
                &|s| s.stall_ms as f64 / 1000.0,
            ),
            family(
                "brook_qoe_stalls_total",
                "Viewers' rebuffering events after the first frame.",
                &|s| s.stalls as f64,
            ),
        ] {
            f.render(out);
        }
        out.family(
            "brook_qoe_pushes_total",
            Type::Counter,
            "QoE pushes from the edge (POST /qoe/push), by result.",
        );
        for (result, n) in QOE_PUSH_RESULTS.iter().zip(&self.pushes) {
            out.sample(
                "brook_qoe_pushes_total",
                &[("result", *result)],
                n.load(Ordering::Relaxed),
            );
        }
    }
}

/// Process-wide metrics.
#[derive(Debug, Default)]
pub struct Metrics {
    pub http_responses: StatusCounts,
    /// From a part becoming servable to the first byte of a response carrying it.
    pub part_first_byte: Histogram,
    pub publishes: AtomicU64,
    pub publish_rejections: AtomicU64,
    pub archive_bytes: AtomicU64,
    pub archive_objects: AtomicU64,
    pub archive_errors: AtomicU64,
    pub archive_dropped: AtomicU64,
    pub transcoder_starts: AtomicU64,
    pub transcoder_restarts: RestartCounts,
    /// Source frames not given to a transcoder whose input queue was full.
    pub transcoder_input_dropped: AtomicU64,
    pub transcoder_rungs_dropped: AtomicU64,
    pub vod_imports: ImportCounts,
    /// Viewer watch and stall time the edge pushes.
    pub qoe: QoeTotals,
}

fn counter(out: &mut Text, name: &str, help: &str, value: u64) {
    out.family(name, Type::Counter, help)
        .sample(name, &[], value);
}

/// One metric family with a `stream` label.
struct PerStream<'a> {
    name: &'a str,
    help: &'a str,
    kind: Type,
    values: Vec<(String, f64)>,
}

impl PerStream<'_> {
    fn render(&self, out: &mut Text) {
        out.family(self.name, self.kind, self.help);
        for (stream, v) in &self.values {
            out.sample(self.name, &[("stream", stream)], *v);
        }
    }
}

impl Metrics {
    /// The `/metrics` page.
    pub fn render(&self, hub: &Hub) -> String {
        let mut out = Text::new();
        let streams = hub.streams();
        let live = streams.iter().filter(|s| s.snapshot().live).count();
        out.family(
            "brook_streams_active",
            Type::Gauge,
            "Streams with a connected publisher.",
        )
        .sample("brook_streams_active", &[], live as u64);
        let stats: Vec<_> = streams
            .iter()
            .map(|s| (s.name.clone(), s.ingest_stats(), s))
            .collect();
        let family =
            |name, help, kind: Type, f: &dyn Fn(&crate::serve::hub::IngestStats) -> f64| {
                PerStream {
                    name,
                    help,
                    kind,
                    values: stats.iter().map(|(n, st, _)| (n.clone(), f(st))).collect(),
                }
            };
        let families = [
            family(
                "brook_ingest_bytes_total",
                "MPEG-TS bytes received from publishers.",
                Type::Counter,
                &|s| s.bytes as f64,
            ),
            family(
                "brook_ingest_bitrate_bits_per_second",
                "Receive rate over the last SRT stats interval.",
                Type::Gauge,
                &|s| s.bitrate_bps,
            ),
            family(
                "brook_srt_rtt_seconds",
                "SRT round-trip time to the publisher.",
                Type::Gauge,
                &|s| s.rtt_ms / 1000.0,
            ),
            family(
                "brook_srt_packets_received_total",
                "SRT data packets received.",
                Type::Counter,
                &|s| s.packets_received as f64,
            ),
            family(
                "brook_srt_packets_lost_total",
                "SRT data packets detected missing (before retransmission).",
                Type::Counter,
                &|s| s.packets_lost as f64,
            ),
            family(
                "brook_srt_packets_retransmitted_total",
                "SRT data packets received again after a loss.",
                Type::Counter,
                &|s| s.packets_retransmitted as f64,
            ),
            family(
                "brook_srt_packets_dropped_total",
                "SRT data packets that arrived too late and were never delivered.",
                Type::Counter,
                &|s| s.packets_dropped as f64,
            ),
            family(
                "brook_ingest_continuity_errors_total",
                "MPEG-TS continuity counter gaps (damaged input).",
                Type::Counter,
                &|s| s.continuity_errors as f64,
            ),
            family(
                "brook_publisher_connections_total",
                "Publisher connections in the current session (reconnects included).",
                Type::Counter,
                &|s| s.connections as f64,
            ),
            family(
                "brook_parts_total",
                "LL-HLS parts published in the current session.",
                Type::Counter,
                &|s| s.parts as f64,
            ),
            family(
                "brook_segments_total",
                "Segments published in the current session.",
                Type::Counter,
                &|s| s.segments as f64,
            ),
            family(
                "brook_segments_without_keyframe_total",
                "Segments cut at the longest segment without a keyframe (the encoder's keyframe interval is too long).",
                Type::Counter,
                &|s| s.segments_without_keyframe as f64,
            ),
            family(
                "brook_ad_cues_total",
                "Ad-break cues received in the current session (SCTE-35 or the admin API).",
                Type::Counter,
                &|s| s.ad_cues as f64,
            ),
            family(
                "brook_ad_cues_ignored_total",
                "Ad-break cues that changed nothing: repeats, an end without a break, a start during one.",
                Type::Counter,
                &|s| s.ad_cues_ignored as f64,
            ),
            family(
                "brook_ad_breaks_total",
                "Ad breaks placed in the current session (segments cut and marked).",
                Type::Counter,
                &|s| s.ad_breaks as f64,
            ),
            family(
                "brook_transcoder_latency_seconds",
                "How long the latest frame took through the stream's transcoder.",
                Type::Gauge,
                &|s| s.transcoder_latency_s,
            ),
            family(
                "brook_transcoder_speed_ratio",
                "Media seconds the transcoder produced per second (below 1: it cannot keep up).",
                Type::Gauge,
                &|s| s.transcoder_speed,
            ),
            family(
                "brook_transcoder_renditions",
                "Video renditions the stream's transcoder makes.",
                Type::Gauge,
                &|s| s.renditions as f64,
            ),
            family(
                "brook_transcoder_running",
                "1 while the stream's transcoder process runs.",
                Type::Gauge,
                &|s| f64::from(u8::from(s.transcoder_pid.is_some())),
            ),
        ];
        for f in &families {
            f.render(&mut out);
        }
        PerStream {
            name: "brook_viewers_active",
            help: "Clients (by address, not connection) that asked for the stream's media playlist in the last 10 s.",
            kind: Type::Gauge,
            values: stats
                .iter()
                .map(|(n, _, s)| (n.clone(), s.viewers() as f64))
                .collect(),
        }
        .render(&mut out);
        PerStream {
            name: "brook_stream_publishing",
            help: "1 while a publisher feeds the stream, 0 while it waits for one to reconnect or after it ended.",
            kind: Type::Gauge,
            values: stats
                .iter()
                .map(|(n, _, s)| (n.clone(), f64::from(u8::from(s.snapshot().live))))
                .collect(),
        }
        .render(&mut out);
        PerStream {
            name: "brook_http_requests_blocked",
            help: "Requests held waiting (blocking playlist reload, preload-hinted part).",
            kind: Type::Gauge,
            values: stats
                .iter()
                .map(|(n, _, s)| (n.clone(), s.blocked_requests() as f64))
                .collect(),
        }
        .render(&mut out);
        out.family(
            "brook_http_responses_total",
            Type::Counter,
            "HTTP responses by status code.",
        );
        for status in 100..600u16 {
            let n = self.http_responses.get(status);
            if n > 0 {
                let status = status.to_string();
                out.sample("brook_http_responses_total", &[("status", &status)], n);
            }
        }
        self.part_first_byte.render(
            &mut out,
            "brook_part_publish_to_first_byte_seconds",
            "From a part becoming servable to the first byte of a response with it.",
        );
        let c = |a: &AtomicU64| a.load(Ordering::Relaxed);
        counter(
            &mut out,
            "brook_publishes_total",
            "Publisher connections admitted.",
            c(&self.publishes),
        );
        counter(
            &mut out,
            "brook_publish_rejections_total",
            "Publisher connections refused (key, stream, conflict).",
            c(&self.publish_rejections),
        );
        counter(
            &mut out,
            "brook_transcoder_starts_total",
            "Transcoder processes started.",
            c(&self.transcoder_starts),
        );
        out.family(
            "brook_transcoder_restarts_total",
            Type::Counter,
            "Transcoder restarts by reason.",
        );
        for reason in RESTART_REASONS {
            let n = self.transcoder_restarts.get(reason);
            out.sample("brook_transcoder_restarts_total", &[("reason", reason)], n);
        }
        counter(
            &mut out,
            "brook_transcoder_input_dropped_frames_total",
            "Source frames dropped because a transcoder's input queue was full.",
            c(&self.transcoder_input_dropped),
        );
        counter(
            &mut out,
            "brook_transcoder_rungs_dropped_total",
            "Ladder rungs dropped because the machine could not keep up.",
            c(&self.transcoder_rungs_dropped),
        );
        counter(
            &mut out,
            "brook_archive_written_bytes_total",
            "Bytes written to the archive.",
            c(&self.archive_bytes),
        );
        counter(
            &mut out,
            "brook_archive_objects_total",
            "Objects written to the archive.",
            c(&self.archive_objects),
        );
        counter(
            &mut out,
            "brook_archive_errors_total",
            "Archive writes that failed.",
            c(&self.archive_errors),
        );
        counter(
            &mut out,
            "brook_archive_dropped_total",
            "Segments not archived because the writer was too far behind.",
            c(&self.archive_dropped),
        );
        self.vod_imports.render(&mut out);
        self.qoe.render(&mut out);
        out.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_families_with_units_in_names() {
        let m = Metrics::default();
        m.http_responses.add(200);
        m.http_responses.add(200);
        m.http_responses.add(404);
        m.http_responses.add(42); // ignored, not a status
        m.part_first_byte.observe(Duration::from_millis(3));
        m.part_first_byte.observe(Duration::from_secs(60));
        let hub = Hub::default();
        hub.begin_publish("cam1").unwrap();
        let text = m.render(&hub);
        assert!(text.contains("brook_http_responses_total{status=\"200\"} 2\n"));
        assert!(text.contains("brook_http_responses_total{status=\"404\"} 1\n"));
        assert!(text.contains("brook_part_publish_to_first_byte_seconds_bucket{le=\"0.005\"} 1\n"));
        assert!(text.contains("brook_part_publish_to_first_byte_seconds_bucket{le=\"+Inf\"} 2\n"));
        assert!(text.contains("brook_part_publish_to_first_byte_seconds_count 2\n"));
        assert!(text.contains("brook_ingest_bytes_total{stream=\"cam1\"} 0\n"));
        assert!(text.contains("brook_streams_active 1\n"));
        assert!(text.contains("brook_stream_publishing{stream=\"cam1\"} 1\n"));
        m.vod_imports.request("deduped");
        m.vod_imports.fetch("refused");
        m.vod_imports.fetch("nonsense"); // ignored
        let text = m.render(&hub);
        assert!(text.contains("brook_vod_import_requests_total{result=\"deduped\"} 1\n"));
        assert!(text.contains("brook_vod_import_requests_total{result=\"created\"} 0\n"));
        assert!(text.contains("brook_vod_import_fetches_total{result=\"refused\"} 1\n"));
        assert!(text.contains("brook_vod_import_fetched_bytes_total 0\n"));
        // Every sample line belongs to a family declared with # TYPE.
        let declared: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter_map(|l| l.split(' ').next())
            .collect();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let name = line.split(['{', ' ']).next().unwrap();
            let base = name
                .trim_end_matches("_bucket")
                .trim_end_matches("_sum")
                .trim_end_matches("_count");
            assert!(declared.contains(&base), "{line}");
        }
    }
}
