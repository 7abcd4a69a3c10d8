//! One RTSP session with the camera, through retina: `DESCRIBE`, `SETUP` of
//! the streams [`media::select`] picks, `PLAY`, then retina's depacketized
//! frames through [`RtspMedia`] into the pipeline until the camera goes away,
//! stalls, or the pull is stopped. The supervisor in `mod.rs` runs these one
//! after another with a backoff.
//!
//! Runs on the pull's own thread and current-thread runtime, so the blocking
//! [`Publish`] calls stall only this camera's reads (TCP holds the bytes
//! meanwhile), never the origin's shared runtime.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use retina::client::{Demuxed, PlayOptions, SessionOptions, SetupOptions, Transport};
use retina::codec::{CodecItem, FrameFormat, ParametersRef};
use tokio::sync::watch;

use super::demand::Run;
use super::media::{self, AudioIn, MediaError, Out, RtspMedia, VideoCodec, VideoIn};
use super::{Pull, PullSettings, RtspTransport};
use crate::ingest::{Admission, Claim, LinkStats, Protocol, Publish, Refusal};

const STATS_INTERVAL: Duration = Duration::from_secs(1);

/// How an attempt ended.
#[derive(Debug)]
pub(super) struct Ended {
    /// For the log; secrets already scrubbed.
    pub reason: String,
    /// Media reached the pipeline (the supervisor starts its backoff over).
    pub delivered: bool,
}

impl Ended {
    fn before_media(reason: String) -> Self {
        Self {
            reason,
            delivered: false,
        }
    }
}

/// What the supervisor keeps across attempts.
#[derive(Debug, Default)]
pub(super) struct Memory {
    /// The streams left out were reported (once per pull, not per attempt).
    warned_dropped: bool,
}

/// Connects, plays, and feeds the pipeline until the session ends.
pub(super) async fn run(
    pull: &Pull,
    settings: &PullSettings,
    admission: &dyn Admission,
    run: &mut watch::Receiver<Run>,
    memory: &mut Memory,
) -> Ended {
    let timeout = settings.connect_timeout;
    let connecting = tokio::time::timeout(timeout, connect(pull, memory));
    let (peer, mut demuxed, video, audio) = tokio::select! {
        why = halted(run) => return Ended::before_media(why.into()),
        r = connecting => match r {
            Ok(Ok(p)) => p,
            Ok(Err(e)) => return Ended::before_media(e),
            Err(_) => {
                return Ended::before_media(format!(
                    "the camera did not answer DESCRIBE/SETUP/PLAY within {} s",
                    timeout.as_secs()
                ))
            }
        },
    };
    let claim = Claim {
        stream: &pull.stream,
        key: Some(&pull.key),
        peer,
        protocol: Protocol::Rtsp,
    };
    let publish = match admission.open(&claim) {
        Ok(p) => p,
        Err(refusal) => {
            let why = match refusal {
                Refusal::Busy(_) => "the stream already has a publisher",
                Refusal::Denied(_) => "the stream is not configured",
                Refusal::Unavailable(_) => "the origin is not taking streams",
            };
            return Ended::before_media(format!("not admitted: {why} ({refusal})"));
        }
    };
    tracing::info!(stream = %pull.stream, camera = %pull.url, %peer, "RTSP pull playing");
    let mut feed = Feed {
        publish,
        media: RtspMedia::new(),
        out: Vec::new(),
        video,
        audio,
        delivered: false,
        bytes: 0,
        bytes_at_report: 0,
        lost: 0,
        next_report: Instant::now() + STATS_INTERVAL,
    };
    let reason = feed.pump(pull, settings, &mut demuxed, run).await;
    let stats = feed.media.stats;
    tracing::info!(
        stream = %pull.stream,
        camera = %pull.url,
        reason = %reason,
        video_frames = stats.video_frames,
        audio_frames = stats.audio_frames,
        dropped = stats.dropped,
        loss_events = stats.loss_events,
        "RTSP pull session ended"
    );
    feed.publish.close(&reason);
    Ended {
        reason,
        delivered: feed.delivered,
    }
}

type Playing = (
    SocketAddr,
    Demuxed,
    Option<(usize, VideoCodec)>,
    Option<usize>,
);

/// Resolves the camera, then DESCRIBE, SETUP and PLAY.
async fn connect(pull: &Pull, memory: &mut Memory) -> Result<Playing, String> {
    let scrub = |e: &dyn std::fmt::Display| one_line(&pull.url.scrub(&e.to_string()));
    let (host, port) = pull.url.host_port();
    let peer = tokio::net::lookup_host((host.as_str(), port))
        .await
        .map_err(|e| format!("resolving the camera: {}", scrub(&e)))?
        .next()
        .ok_or_else(|| "the camera's host name has no address".to_owned())?;
    let options = SessionOptions::default()
        .creds(pull.url.credentials())
        .user_agent(format!("Brook/{}", env!("CARGO_PKG_VERSION")));
    let mut session = retina::client::Session::describe(pull.url.request_url().clone(), options)
        .await
        .map_err(|e| format!("DESCRIBE: {}", scrub(&e)))?;
    let offered: Vec<media::Offered<'_>> = session
        .streams()
        .iter()
        .map(|s| media::Offered {
            media: s.media(),
            encoding: s.encoding_name(),
        })
        .collect();
    let selection = media::select(&offered);
    if !selection.dropped.is_empty() && !std::mem::replace(&mut memory.warned_dropped, true) {
        for (i, why) in &selection.dropped {
            tracing::warn!(stream = %pull.stream, camera = %pull.url, index = i, "RTSP stream left out: {why}");
        }
    }
    let Some((video_i, codec)) = selection.video else {
        return Err("the camera offers no H.264 or H.265 video".into());
    };
    let transport = match pull.transport {
        RtspTransport::Tcp => Transport::Tcp(Default::default()),
        RtspTransport::Udp => Transport::Udp(Default::default()),
    };
    for i in std::iter::once(video_i).chain(selection.audio) {
        session
            .setup(
                i,
                SetupOptions::default()
                    .transport(transport.clone())
                    .frame_format(FrameFormat::MP4),
            )
            .await
            .map_err(|e| format!("SETUP: {}", scrub(&e)))?;
    }
    let play = PlayOptions::default()
        // Brook places tracks itself (media.rs) and needs no NPT: a camera
        // that leaves rtptime out of RTP-Info, or gets it wrong, still plays.
        .initial_timestamp(retina::client::InitialTimestampPolicy::Ignore);
    let playing = session
        .play(play)
        .await
        .map_err(|e| format!("PLAY: {}", scrub(&e)))?;
    let demuxed = playing
        .demuxed()
        .map_err(|e| format!("depacketizer: {}", scrub(&e)))?;
    Ok((peer, demuxed, Some((video_i, codec)), selection.audio))
}

/// One playing session's media into the pipeline.
struct Feed {
    publish: Box<dyn Publish>,
    media: RtspMedia,
    out: Vec<Out>,
    video: Option<(usize, VideoCodec)>,
    audio: Option<usize>,
    delivered: bool,
    bytes: u64,
    bytes_at_report: u64,
    lost: u64,
    next_report: Instant,
}

impl Feed {
    async fn pump(
        &mut self,
        pull: &Pull,
        settings: &PullSettings,
        demuxed: &mut Demuxed,
        run: &mut watch::Receiver<Run>,
    ) -> String {
        if let Err(e) = self.parameters(demuxed, true, pull) {
            return e;
        }
        loop {
            let item = tokio::select! {
                why = halted(run) => return why.into(),
                item = tokio::time::timeout(settings.idle_timeout, demuxed.next()) => item,
            };
            let item = match item {
                Err(_) => {
                    return format!(
                        "no media from the camera for {} s",
                        settings.idle_timeout.as_secs()
                    )
                }
                Ok(None) => return "the camera ended the session".into(),
                Ok(Some(Err(e))) => return one_line(&pull.url.scrub(&e.to_string())),
                Ok(Some(Ok(item))) => item,
            };
            let now = crate::unix_now();
            let result = match item {
                CodecItem::VideoFrame(f) if Some(f.stream_id()) == self.video.map(|v| v.0) => {
                    if f.has_new_parameters() {
                        if let Err(e) = self.parameters(demuxed, false, pull) {
                            return e;
                        }
                    }
                    self.bytes += f.data().len() as u64;
                    self.lost += u64::from(f.loss());
                    let ts = f.timestamp();
                    self.media.video(
                        VideoIn {
                            timestamp: ts.timestamp(),
                            clock_rate: ts.clock_rate().get(),
                            random_access: f.is_random_access_point(),
                            loss: f.loss(),
                            arrival: now,
                            data: f.data(),
                        },
                        &mut self.out,
                    )
                }
                CodecItem::AudioFrame(f) if Some(f.stream_id()) == self.audio => {
                    self.bytes += f.data().len() as u64;
                    self.lost += u64::from(f.loss());
                    let ts = f.timestamp();
                    self.media.audio(
                        AudioIn {
                            timestamp: ts.timestamp(),
                            clock_rate: ts.clock_rate().get(),
                            frame_length: f.frame_length().get(),
                            arrival: now,
                            data: f.data(),
                        },
                        &mut self.out,
                    )
                }
                _ => Ok(()),
            };
            if let Err(e) = result {
                return format!("camera media: {e}");
            }
            if let Err(e) = self.deliver(now) {
                return e;
            }
            if Instant::now() >= self.next_report {
                self.report();
            }
        }
    }

    /// Reads the streams' current parameters into the media path. At the
    /// start a stream may not have them yet (they come with the first frame).
    fn parameters(&mut self, demuxed: &Demuxed, start: bool, pull: &Pull) -> Result<(), String> {
        let streams = demuxed.streams();
        if let Some((i, codec)) = self.video {
            match streams.get(i).and_then(|s| s.parameters()) {
                Some(ParametersRef::Video(v)) => self
                    .media
                    .set_video(codec, v.extra_data())
                    .map_err(|e| format!("camera video: {e}"))?,
                _ if start => {}
                _ => return Err("new video parameters that cannot be read".into()),
            }
        }
        if start {
            if let Some(i) = self.audio {
                if let Some(ParametersRef::Audio(a)) = streams.get(i).and_then(|s| s.parameters()) {
                    if let Err(e @ MediaError::AudioConfig(_)) =
                        self.media.set_audio(a.extra_data())
                    {
                        // Video goes on without it.
                        tracing::warn!(stream = %pull.stream, error = %e, "RTSP audio dropped");
                        self.audio = None;
                    }
                }
            }
        }
        Ok(())
    }

    fn deliver(&mut self, now: brook_packager::UnixMillis) -> Result<(), String> {
        for o in self.out.drain(..) {
            let result = match o {
                Out::Tracks(tracks) => self.publish.tracks(tracks),
                Out::Frame(frame) => {
                    self.delivered = true;
                    self.publish.frame(frame, now)
                }
            };
            result.map_err(|e| format!("ended by the pipeline: {e}"))?;
        }
        Ok(())
    }

    fn report(&mut self) {
        let now = Instant::now();
        let elapsed =
            STATS_INTERVAL.as_secs_f64() + now.duration_since(self.next_report).as_secs_f64();
        self.next_report = now + STATS_INTERVAL;
        let bits = (self.bytes - self.bytes_at_report) as f64 * 8.0;
        self.bytes_at_report = self.bytes;
        self.publish.link(&LinkStats {
            bitrate_bps: bits / elapsed.max(0.001),
            packets_lost: Some(self.lost),
            ..LinkStats::default()
        });
    }
}

/// Resolves once the pull should stop playing, with the reason for the log.
async fn halted(run: &mut watch::Receiver<Run>) -> &'static str {
    match run.wait_for(|r| *r != Run::Play).await.map(|r| *r) {
        Ok(Run::Idle) => "no viewers (on demand)",
        _ => "shutdown",
    }
}

/// retina's errors span lines (the connection and message context follow the
/// reason): one log line each, parts joined with " / ".
fn one_line(text: &str) -> String {
    text.split('\n')
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" / ")
}

#[cfg(test)]
mod tests {
    #[test]
    fn errors_become_one_line() {
        assert_eq!(
            super::one_line("401 response to DESCRIBE\n\nconn: a->b\nmsg: 161"),
            "401 response to DESCRIBE / conn: a->b / msg: 161"
        );
    }
}
