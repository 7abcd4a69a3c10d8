//! SDP offer policy: what Brook accepts from a WHIP client, decided before the
//! WebRTC stack builds an answer, so a refusal can say exactly why.
//!
//! str0m parses the offer and writes the answer (RFC 9429 §5.3.1 rules); this
//! module only reads the offer's media sections (RFC 8866 `m=`, `a=rtpmap`,
//! `a=fmtp`, direction) to apply Brook's rules:
//!
//! - one video section with H.264, `packetization-mode=1` (RFC 6184), profile
//!   Constrained Baseline / Baseline / Main / High; Brook does not transcode, and
//!   the packager writes H.264 only. An offer with only VP8/VP9/AV1 is refused
//!   (422) with the codecs it offered.
//! - at most one audio section; Opus is packaged when offered, otherwise the
//!   stream is video only.
//! - RFC 9725 §4.2: `sendonly` or `sendrecv` only, one track per kind at most
//!   (otherwise 422), ICE and DTLS credentials present (otherwise 400).
//! - No simulcast (RFC 8853): one encoding per stream (otherwise 422).

use std::fmt;

/// Profiles Brook answers, most preferred first: the browsers' defaults
/// (Constrained Baseline, Baseline), then Main and High for hardware encoders.
/// The level is negotiable (`level-asymmetry-allowed`).
pub const H264_PROFILES: &[u32] = &[0x42e01f, 0x42001f, 0x4d001f, 0x64001f];

/// Why an offer is refused. `Malformed` is a 400; `Unacceptable` is a 422 (the
/// SDP is fine, Brook cannot ingest what it describes).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OfferError {
    #[error("malformed SDP offer: {0}")]
    Malformed(String),
    #[error("{0}")]
    Unacceptable(String),
}

impl OfferError {
    pub fn status(&self) -> u16 {
        match self {
            OfferError::Malformed(_) => 400,
            OfferError::Unacceptable(_) => 422,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Audio,
    Video,
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    SendRecv,
    SendOnly,
    RecvOnly,
    Inactive,
}

/// One `a=rtpmap` of a media section, with its `a=fmtp` parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Format {
    pub pt: u8,
    /// Encoding name as written (`H264`, `opus`, `VP8`, ...).
    pub name: String,
    pub clock_rate: u32,
    pub fmtp: Vec<(String, String)>,
}

impl Format {
    fn param(&self, key: &str) -> Option<&str> {
        self.fmtp
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }

    fn is(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name)
    }

    /// H.264 with packetization mode 1 and a profile Brook takes: the
    /// `profile-level-id`, if so.
    pub fn h264_profile(&self) -> Option<u32> {
        if !self.is("H264") || self.clock_rate != 90_000 {
            return None;
        }
        if self.param("packetization-mode") != Some("1") {
            return None;
        }
        // RFC 6184 §8.1: absent means 420010 (Baseline, level 1); nobody sends that.
        let id = u32::from_str_radix(self.param("profile-level-id")?, 16).ok()?;
        let profile_idc = id >> 16;
        matches!(profile_idc, 0x42 | 0x4d | 0x64).then_some(id)
    }

    pub fn is_opus(&self) -> bool {
        self.is("opus") && self.clock_rate == 48_000
    }

    /// Retransmission, redundancy and FEC formats: not codecs of their own.
    fn is_auxiliary(&self) -> bool {
        [
            "rtx",
            "red",
            "ulpfec",
            "flexfec-03",
            "CN",
            "telephone-event",
        ]
        .iter()
        .any(|n| self.is(n))
    }
}

/// One `m=` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Media {
    pub kind: Kind,
    /// 0 means the offerer rejected or disabled the section.
    pub port: u16,
    pub mid: Option<String>,
    pub direction: Direction,
    pub formats: Vec<Format>,
    /// `a=simulcast` (RFC 8853): several encodings of one track.
    pub simulcast: bool,
}

impl Media {
    fn active(&self) -> bool {
        self.port != 0 && matches!(self.direction, Direction::SendOnly | Direction::SendRecv)
    }
}

/// What an offer describes, as far as Brook's policy cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    pub media: Vec<Media>,
}

/// What Brook will take from an acceptable offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accepted {
    /// Payload type and `profile-level-id` of the best H.264 format offered.
    pub video_pt: u8,
    pub video_profile: u32,
    /// Opus payload type, if audio is offered with Opus.
    pub audio_pt: Option<u8>,
}

impl fmt::Display for Accepted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "H.264 {:06x} (pt {})", self.video_profile, self.video_pt)?;
        match self.audio_pt {
            Some(pt) => write!(f, " + Opus (pt {pt})"),
            None => write!(f, ", no audio"),
        }
    }
}

impl Offer {
    /// Reads the media sections of an SDP offer. Only structure is checked here;
    /// str0m's parser has the final word on syntax.
    pub fn parse(text: &str) -> Result<Offer, OfferError> {
        let malformed = |m: &str| OfferError::Malformed(m.to_string());
        let mut lines = text.lines().map(|l| l.trim_end_matches('\r'));
        if lines.next() != Some("v=0") {
            return Err(malformed("it does not start with v=0"));
        }
        let mut media: Vec<Media> = Vec::new();
        let mut session_direction = None;
        let (mut ufrag, mut pwd, mut fingerprint) = (false, false, false);
        for (n, line) in lines.enumerate() {
            let n = n + 2;
            if line.is_empty() {
                continue;
            }
            let Some((key, value)) = line.split_once('=') else {
                return Err(OfferError::Malformed(format!(
                    "line {n} is not <type>=<value>"
                )));
            };
            if key.len() != 1 {
                return Err(OfferError::Malformed(format!(
                    "line {n} is not <type>=<value>"
                )));
            }
            match key {
                "m" => media.push(parse_m_line(value).ok_or_else(|| {
                    OfferError::Malformed(format!("line {n}: bad m= line {value:?}"))
                })?),
                "a" => {
                    let (name, arg) = value.split_once(':').unwrap_or((value, ""));
                    let direction = match name {
                        "sendrecv" => Some(Direction::SendRecv),
                        "sendonly" => Some(Direction::SendOnly),
                        "recvonly" => Some(Direction::RecvOnly),
                        "inactive" => Some(Direction::Inactive),
                        _ => None,
                    };
                    match (name, media.last_mut()) {
                        ("ice-ufrag", _) => ufrag = true,
                        ("ice-pwd", _) => pwd = true,
                        ("fingerprint", _) => fingerprint = true,
                        (_, None) => {
                            if direction.is_some() {
                                session_direction = direction;
                            }
                        }
                        (_, Some(m)) => {
                            if let Some(d) = direction {
                                m.direction = d;
                            }
                            match name {
                                "mid" => m.mid = Some(arg.to_string()),
                                "rtpmap" => apply_rtpmap(m, arg).ok_or_else(|| {
                                    OfferError::Malformed(format!("line {n}: bad rtpmap {arg:?}"))
                                })?,
                                "fmtp" => apply_fmtp(m, arg),
                                "simulcast" => m.simulcast = true,
                                _ => {}
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        if media.is_empty() {
            return Err(malformed("no media sections (m=)"));
        }
        if !(ufrag && pwd) {
            return Err(malformed("no ICE credentials (a=ice-ufrag, a=ice-pwd)"));
        }
        if !fingerprint {
            return Err(malformed("no DTLS fingerprint (a=fingerprint)"));
        }
        if let Some(d) = session_direction {
            // A session-level direction applies where a section sets none; sections
            // were parsed with the default (sendrecv), so only a non-default matters.
            for m in &mut media {
                if m.direction == Direction::SendRecv {
                    m.direction = d;
                }
            }
        }
        Ok(Offer { media })
    }

    /// Applies Brook's rules (module docs). `Err` says what was offered.
    pub fn accept(&self) -> Result<Accepted, OfferError> {
        let unacceptable = |m: String| Err(OfferError::Unacceptable(m));
        let active: Vec<&Media> = self.media.iter().filter(|m| m.active()).collect();
        if self
            .media
            .iter()
            .any(|m| m.port != 0 && matches!(m.direction, Direction::RecvOnly))
        {
            return unacceptable(
                "WHIP publishes: media sections must be sendonly or sendrecv, not recvonly".into(),
            );
        }
        let video: Vec<&&Media> = active.iter().filter(|m| m.kind == Kind::Video).collect();
        let audio: Vec<&&Media> = active.iter().filter(|m| m.kind == Kind::Audio).collect();
        if video.len() > 1 || audio.len() > 1 {
            return unacceptable(format!(
                "one video and one audio track at most (offered {} video, {} audio)",
                video.len(),
                audio.len()
            ));
        }
        let Some(video) = video.first() else {
            return unacceptable(
                "no video track offered; Brook needs H.264 video (audio-only is not supported)"
                    .into(),
            );
        };
        if video.simulcast {
            // One packager per stream takes one encoding; the layers would mix.
            return unacceptable("simulcast is not supported: send a single video encoding".into());
        }
        let best = video
            .formats
            .iter()
            .filter_map(|f| f.h264_profile().map(|p| (f, p)))
            .min_by_key(|(_, p)| rank(*p));
        let Some((format, profile)) = best else {
            return unacceptable(format!(
                "no H.264 with packetization-mode=1 in the video offer (offered: {}); Brook \
                 packages H.264 only and does not transcode: let the browser send H.264",
                codec_list(video)
            ));
        };
        let audio_pt = audio
            .first()
            .and_then(|a| a.formats.iter().find(|f| f.is_opus()))
            .map(|f| f.pt);
        Ok(Accepted {
            video_pt: format.pt,
            video_profile: profile,
            audio_pt,
        })
    }
}

/// Preference of an H.264 `profile-level-id`: the order of [`H264_PROFILES`],
/// compared on profile and constraints (the level is negotiable).
fn rank(profile_level_id: u32) -> usize {
    H264_PROFILES
        .iter()
        .position(|p| p >> 8 == profile_level_id >> 8)
        .unwrap_or(H264_PROFILES.len())
}

/// Codec names of a media section, auxiliary formats left out, each once.
pub(crate) fn codec_list(m: &Media) -> String {
    let mut names: Vec<String> = Vec::new();
    for f in m.formats.iter().filter(|f| !f.is_auxiliary()) {
        let name = match f.h264_profile() {
            None if f.is("H264") => format!(
                "H264 (packetization-mode={}, profile-level-id={})",
                f.param("packetization-mode").unwrap_or("0"),
                f.param("profile-level-id").unwrap_or("-")
            ),
            _ => f.name.clone(),
        };
        if !names.contains(&name) {
            names.push(name);
        }
    }
    if names.is_empty() {
        "nothing".into()
    } else {
        names.join(", ")
    }
}

fn parse_m_line(value: &str) -> Option<Media> {
    let mut parts = value.split_ascii_whitespace();
    let kind = match parts.next()? {
        "audio" => Kind::Audio,
        "video" => Kind::Video,
        _ => Kind::Other,
    };
    // `port[/count]`
    let port = parts.next()?.split('/').next()?.parse().ok()?;
    let _proto = parts.next()?;
    Some(Media {
        kind,
        port,
        mid: None,
        direction: Direction::SendRecv,
        formats: Vec::new(),
        simulcast: false,
    })
}

/// `a=rtpmap:<pt> <name>/<clock>[/<channels>]`
fn apply_rtpmap(m: &mut Media, arg: &str) -> Option<()> {
    let (pt, rest) = arg.split_once(' ')?;
    let pt: u8 = pt.parse().ok()?;
    let mut enc = rest.trim().split('/');
    let name = enc.next()?.to_string();
    let clock_rate = enc.next()?.parse().ok()?;
    if name.is_empty() || pt > 127 {
        return None;
    }
    m.formats.retain(|f| f.pt != pt);
    m.formats.push(Format {
        pt,
        name,
        clock_rate,
        fmtp: Vec::new(),
    });
    Some(())
}

/// `a=fmtp:<pt> k=v;k=v` (for an rtpmap seen before; others are ignored).
fn apply_fmtp(m: &mut Media, arg: &str) {
    let Some((pt, params)) = arg.split_once(' ') else {
        return;
    };
    let Ok(pt) = pt.parse::<u8>() else {
        return;
    };
    if let Some(f) = m.formats.iter_mut().find(|f| f.pt == pt) {
        f.fmtp = params
            .split(';')
            .filter_map(|kv| {
                let (k, v) = kv.split_once('=')?;
                Some((k.trim().to_string(), v.trim().to_string()))
            })
            .collect();
    }
}

/// Checks an offer end to end: Brook's rules, then str0m's parser.
pub fn check_offer(text: &str) -> Result<(str0m::change::SdpOffer, Accepted), OfferError> {
    let offer = Offer::parse(text)?;
    let accepted = offer.accept()?;
    let parsed = str0m::change::SdpOffer::from_sdp_string(text)
        .map_err(|e| OfferError::Malformed(e.to_string()))?;
    Ok((parsed, accepted))
}

/// The codecs Brook answers with (str0m picks, per section, the first of these
/// the offer has): H.264 in [`H264_PROFILES`] order, then Opus without RED.
pub fn configure_codecs(config: &mut str0m::format::CodecConfig) {
    // Local payload types only matter for offers Brook makes (never); the
    // answer uses the offerer's.
    const PTS: &[(u8, u8)] = &[(108, 109), (102, 103), (116, 117), (114, 115)];
    for (profile, (pt, rtx)) in H264_PROFILES.iter().zip(PTS) {
        config.add_h264((*pt).into(), Some((*rtx).into()), true, *profile);
    }
    config.enable_opus(true, false);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Chromium 156's offer for a sendonly camera + microphone (the broadcaster
    /// page's transceivers), captured on this machine.
    pub const CHROMIUM: &str = include_str!("../../../tests/fixtures/chromium_whip_offer.sdp");
    /// The same with H.264 removed by `setCodecPreferences` (VP8, AV1, VP9 left).
    pub const CHROMIUM_VP8: &str =
        include_str!("../../../tests/fixtures/chromium_whip_offer_vp8.sdp");

    #[test]
    fn chromium_offer_gets_constrained_baseline_and_opus() {
        let offer = Offer::parse(CHROMIUM).unwrap();
        assert_eq!(offer.media.len(), 2);
        assert_eq!(offer.media[0].kind, Kind::Audio);
        assert_eq!(offer.media[1].direction, Direction::SendOnly);
        let a = offer.accept().unwrap();
        assert_eq!(a.video_profile, 0x42e01f, "{a}");
        assert_eq!(a.video_pt, 108);
        assert_eq!(a.audio_pt, Some(111));
        check_offer(CHROMIUM).unwrap();
    }

    #[test]
    fn vp8_only_offer_is_refused_with_what_was_offered() {
        let err = Offer::parse(CHROMIUM_VP8).unwrap().accept().unwrap_err();
        assert_eq!(err.status(), 422);
        let msg = err.to_string();
        assert!(msg.contains("no H.264"), "{msg}");
        assert!(msg.contains("VP8, AV1, VP9"), "{msg}");
    }

    /// The same cases are edits of the real offer: (what to replace, with what,
    /// expected status, a word the reason must contain).
    const CASES: &[(&str, &str, u16, &str)] = &[
        ("v=0", "v=1", 400, "v=0"),
        ("a=ice-ufrag:y3NF", "a=x-ufrag:y3NF", 400, "ICE"),
        ("a=fingerprint:", "a=x-fingerprint:", 400, "fingerprint"),
        ("a=rtpmap:111 opus/48000/2", "a=rtpmap:opus", 400, "rtpmap"),
        ("m=video 33594", "m=video x", 400, "m="),
        ("a=sendonly", "a=recvonly", 422, "recvonly"),
        ("m=audio", "m=video", 422, "one video"),
        (
            "packetization-mode=1;profile-level-id=42e01f",
            "packetization-mode=0;profile-level-id=42e01f",
            200,
            "",
        ),
        ("m=video 33594", "m=video 0", 422, "no video"),
        ("opus/48000", "opus/16000", 200, ""),
        (
            "a=mid:1\r\n",
            "a=mid:1\r\na=rid:h send\r\na=rid:l send\r\na=simulcast:send h;l\r\n",
            422,
            "simulcast",
        ),
    ];

    #[test]
    fn edited_offers() {
        for (from, to, status, word) in CASES {
            assert!(CHROMIUM.contains(from), "{from}");
            let text = CHROMIUM.replace(from, to);
            let result = Offer::parse(&text).and_then(|o| o.accept());
            match result {
                Ok(a) => assert_eq!(*status, 200, "{from} -> {to}: accepted {a}"),
                Err(e) => {
                    assert_eq!(e.status(), *status, "{from} -> {to}: {e}");
                    assert!(e.to_string().contains(word), "{from} -> {to}: {e}");
                }
            }
        }
        // Main-profile only with packetization mode 1 still works, with the rank.
        let main_only = CHROMIUM
            .replace(
                "packetization-mode=1;profile-level-id=42e01f",
                "packetization-mode=0",
            )
            .replace(
                "packetization-mode=1;profile-level-id=42001f",
                "packetization-mode=0",
            );
        let a = Offer::parse(&main_only).unwrap().accept().unwrap();
        assert_eq!(a.video_profile, 0x4d001f);
        let no_opus = CHROMIUM.replace("opus/48000", "opus/16000");
        assert_eq!(
            Offer::parse(&no_opus).unwrap().accept().unwrap().audio_pt,
            None
        );
    }

    #[test]
    fn garbage_is_malformed_not_a_panic() {
        for text in [
            "",
            "v=0",
            "v=0\r\nm=",
            "v=0\nm=video 1 X\na=rtpmap:300 H264/90000",
            "\u{0}",
        ] {
            assert!(check_offer(text).is_err(), "{text:?}");
        }
        // str0m's parser is the second gate: a structurally fine offer it rejects.
        let err =
            check_offer(&CHROMIUM.replace("o=- 6576246777156992144 2 IN IP4 127.0.0.1\r\n", ""));
        assert!(matches!(err, Err(OfferError::Malformed(_))), "{err:?}");
    }

    #[test]
    fn str0m_answers_with_the_chosen_codecs_only() {
        let (offer, _) = check_offer(CHROMIUM).unwrap();
        let mut config = str0m::Rtc::builder().set_ice_lite(true).clear_codecs();
        configure_codecs(config.codec_config());
        let mut rtc = config.build(std::time::Instant::now());
        let answer = rtc.sdp_api().accept_offer(offer).unwrap().to_sdp_string();
        let video = answer.split("m=video").nth(1).unwrap();
        assert!(
            video.starts_with(" 9 UDP/TLS/RTP/SAVPF 108 109 102 103"),
            "{video}"
        );
        assert!(
            !answer.contains("VP8") && !answer.contains("red/"),
            "{answer}"
        );
        assert!(answer.contains("a=ice-lite") && answer.contains("a=recvonly"));
        assert!(answer.contains("a=rtcp-fb:108 nack pli"));
    }
}
