//! SDP offer policy for WHEP viewers: what Brook can send, decided before the
//! WebRTC stack builds an answer, so a refusal says exactly why. The offer's
//! media sections are read by the WHIP module's parser (`ingest::whip::sdp`,
//! RFC 8866 `m=`, `a=rtpmap`, `a=fmtp`, direction); str0m parses the offer
//! again and writes the answer.
//!
//! - one video section that can receive H.264 with `packetization-mode=1`
//!   (RFC 6184): Brook sends the source's H.264 as it is, it does not
//!   transcode for a viewer. Without it: 422 with the codecs offered.
//! - at most one audio section; Opus is sent when offered (and the source
//!   has it), otherwise the viewer gets video only.
//! - draft-ietf-wish-whep §4.2: the viewer receives, so sections are `recvonly`
//!   or `sendrecv` (a `sendonly` one: 422); ICE and DTLS credentials present
//!   (otherwise 400).

use std::fmt;

use crate::ingest::whip::sdp::{codec_list, Direction, Kind, Media, Offer, OfferError};

/// What Brook will send for an acceptable offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// The offer's H.264 `profile-level-id`s with packetization mode 1, in the
    /// offer's order (the session picks the one that fits the source).
    pub h264_profiles: Vec<u32>,
    /// Whether audio is received with Opus.
    pub opus: bool,
}

impl fmt::Display for Accepted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let profiles: Vec<String> = self
            .h264_profiles
            .iter()
            .map(|p| format!("{p:06x}"))
            .collect();
        write!(f, "H.264 ({})", profiles.join(", "))?;
        if self.opus {
            write!(f, " + Opus")
        } else {
            write!(f, ", no audio")
        }
    }
}

fn receives(m: &Media) -> bool {
    m.port != 0 && matches!(m.direction, Direction::RecvOnly | Direction::SendRecv)
}

/// Applies the rules (module docs) to a parsed offer.
pub fn accept(offer: &Offer) -> Result<Accepted, OfferError> {
    let unacceptable = |m: String| Err(OfferError::Unacceptable(m));
    if offer
        .media
        .iter()
        .any(|m| m.port != 0 && m.direction == Direction::SendOnly)
    {
        return unacceptable(
            "WHEP plays: media sections must be recvonly or sendrecv, not sendonly".into(),
        );
    }
    let active: Vec<&Media> = offer.media.iter().filter(|m| receives(m)).collect();
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
        return unacceptable("no video track to receive; Brook sends H.264 video".into());
    };
    let h264_profiles: Vec<u32> = video
        .formats
        .iter()
        .filter_map(|f| f.h264_profile())
        .collect();
    if h264_profiles.is_empty() {
        return unacceptable(format!(
            "no H.264 with packetization-mode=1 in the video offer (offered: {}); Brook sends \
             the stream's H.264 as it is",
            codec_list(video)
        ));
    }
    let opus = audio
        .first()
        .is_some_and(|a| a.formats.iter().any(|f| f.is_opus()));
    Ok(Accepted {
        h264_profiles,
        opus,
    })
}

/// Checks an offer end to end: Brook's rules, then str0m's parser.
pub fn check_offer(text: &str) -> Result<(str0m::change::SdpOffer, Accepted), OfferError> {
    let offer = Offer::parse(text)?;
    let accepted = accept(&offer)?;
    let parsed = str0m::change::SdpOffer::from_sdp_string(text)
        .map_err(|e| OfferError::Malformed(e.to_string()))?;
    Ok((parsed, accepted))
}

/// Of the offered H.264 profiles, the one to send the source's SPS under:
/// the same `profile_idc` if offered (decoders check the negotiated profile
/// less than they could), else the first offered.
pub fn pick_profile(offered: &[u32], source_profile_idc: Option<u8>) -> Option<u32> {
    source_profile_idc
        .and_then(|idc| offered.iter().copied().find(|p| (p >> 16) as u8 == idc))
        .or_else(|| offered.first().copied())
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER: &str = include_str!("../../../tests/fixtures/chromium_whep_offer.sdp");
    const WHIP_OFFER: &str = include_str!("../../../tests/fixtures/chromium_whip_offer.sdp");

    #[test]
    fn chromium_recvonly_offer_is_accepted_with_its_h264_profiles_and_opus() {
        let (_, a) = check_offer(OFFER).unwrap();
        assert!(a.opus);
        assert!(a.h264_profiles.iter().any(|p| p >> 16 == 0x42), "{a}");
        assert!(a.h264_profiles.iter().any(|p| p >> 16 == 0x4d), "{a}");
    }

    /// Status and reason per bad offer: 400 for what is not SDP, 422 for what
    /// Brook cannot send.
    #[test]
    fn bad_offers_get_their_status_and_reason() {
        let no_h264 = OFFER
            .lines()
            .filter(|l| !l.contains("H264") && !l.contains("packetization-mode"))
            .collect::<Vec<_>>()
            .join("\r\n");
        let audio_only: String = {
            let mut out = Vec::new();
            let mut skip = false;
            for l in OFFER.lines() {
                if l.starts_with("m=") {
                    skip = l.starts_with("m=video");
                }
                if !skip {
                    out.push(l);
                }
            }
            out.join("\r\n") + "\r\n"
        };
        let cases: &[(&str, &str, u16, &str)] = &[
            ("not SDP", "hello", 400, "does not start with v=0"),
            (
                "no media",
                "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n",
                400,
                "no media",
            ),
            (
                "no ICE credentials",
                "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=recvonly\r\na=rtpmap:96 H264/90000\r\n",
                400,
                "ICE",
            ),
            (
                "a publisher's offer",
                WHIP_OFFER,
                422,
                "recvonly or sendrecv",
            ),
            ("no H.264", &no_h264, 422, "no H.264"),
            ("audio only", &audio_only, 422, "no video"),
        ];
        for (what, sdp, status, reason) in cases {
            let e = check_offer(sdp).expect_err(what);
            assert_eq!(e.status(), *status, "{what}: {e}");
            assert!(e.to_string().contains(reason), "{what}: {e}");
        }
    }

    #[test]
    fn the_profile_follows_the_source_when_offered() {
        let offered = [0x42e01f, 0x4d001f, 0x64001f];
        assert_eq!(pick_profile(&offered, Some(100)), Some(0x64001f));
        assert_eq!(pick_profile(&offered, Some(77)), Some(0x4d001f));
        assert_eq!(pick_profile(&offered, Some(88)), Some(0x42e01f));
        assert_eq!(pick_profile(&offered, None), Some(0x42e01f));
        assert_eq!(pick_profile(&[], Some(100)), None);
    }
}
