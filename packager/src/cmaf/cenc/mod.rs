//! ISO/IEC 23001-7 Common Encryption of CMAF tracks: `cbcs` (AES-128-CBC with
//! a 1:9 pattern for video, whole blocks for audio, one constant IV) and `cenc`
//! (AES-128-CTR with an IV per sample).
//!
//! Everything is deterministic: keys, KIDs and IVs come from the caller
//! ([`Encryption`]), per-sample IVs are derived from the track, the segment
//! number and the sample's place in it, and nothing here reads a clock or a
//! random source. One file per concern:
//!
//! - [`subsample`]: which bytes of a sample stay clear (NAL length prefixes,
//!   NAL headers, slice headers, parameter sets) and which are protected;
//! - [`crypt`]: AES over those ranges;
//! - [`boxes`]: `sinf`/`tenc`/`pssh` for the init segment, and
//!   `senc`/`saiz`/`saio` (plus `sbgp`/`sgpd` `seig` after a key rotation)
//!   for every fragment.

pub(crate) mod boxes;
pub mod crypt;
pub mod subsample;

use crate::codec::h264::SliceHeaderParser;
use crate::codec::h265::HevcSliceHeaderParser;
use crate::media::{CodecConfig, Sample, TrackInfo, TrackKind};
pub use subsample::Subsample;

/// The common PSSH system id (W3C "cenc" initialization data, ISO/IEC 23001-7 §8.1),
/// whose v1 box lists the KIDs.
pub const COMMON_SYSTEM_ID: [u8; 16] = [
    0x10, 0x77, 0xef, 0xec, 0xc0, 0xb2, 0x4d, 0x02, 0xac, 0xe3, 0x3c, 0x1e, 0x52, 0xe2, 0xfb, 0x4b,
];
/// The W3C ClearKey system id (DASH `ContentProtection`).
pub const CLEARKEY_SYSTEM_ID: &str = "e2719d58-a985-b3c9-781a-b030af78d30e";

/// The protection scheme (`schm`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Scheme {
    /// AES-128-CBC, pattern 1:9 on video slices, every whole block of audio
    /// samples, one constant IV per key: what FairPlay, Widevine and PlayReady
    /// all accept.
    #[default]
    Cbcs,
    /// AES-128-CTR on every protected byte, one IV per sample.
    Cenc,
}

impl Scheme {
    pub fn fourcc(self) -> &'static [u8; 4] {
        match self {
            Scheme::Cbcs => b"cbcs",
            Scheme::Cenc => b"cenc",
        }
    }

    /// The name of the scheme in a DASH `ContentProtection@value`.
    pub fn name(self) -> &'static str {
        match self {
            Scheme::Cbcs => "cbcs",
            Scheme::Cenc => "cenc",
        }
    }

    /// The HLS `EXT-X-KEY` `METHOD` for fMP4 media.
    pub fn hls_method(self) -> &'static str {
        match self {
            Scheme::Cbcs => "SAMPLE-AES",
            Scheme::Cenc => "SAMPLE-AES-CTR",
        }
    }
}

/// One content key.
#[derive(Clone, PartialEq, Eq)]
pub struct ContentKey {
    /// Key id (`tenc` default_KID, `seig` KID, HLS `KEYID`, DASH `cenc:default_KID`).
    pub kid: [u8; 16],
    pub key: [u8; 16],
    /// `cbcs`: the constant IV of every sample. `cenc`: its first 8 bytes are the
    /// base of the per-sample IVs (see [`Encryption::per_sample_iv_size`]).
    pub iv: [u8; 16],
}

impl std::fmt::Debug for ContentKey {
    // Keys never reach logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContentKey")
            .field("kid", &hex(&self.kid))
            .finish_non_exhaustive()
    }
}

/// How players find a license or key for a key system (playlists and MPD only;
/// the media is the same for every system).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeySystem {
    /// W3C ClearKey: HLS `KEYFORMAT="org.w3.clearkey"` (hls.js) with the license
    /// URL, DASH `ContentProtection` `urn:uuid:e2719d58-…` with `dashif:laurl`.
    /// `{kid}` in the URL is replaced by the KID in hex (32 lowercase digits).
    ClearKey { license_url: String },
    /// HLS `KEYFORMAT="identity"`, which Shaka Player maps to ClearKey; `{kid}`
    /// as above. Not signalled in DASH.
    Identity { uri: String },
    /// A commercial DRM system (Widevine, PlayReady, FairPlay) whose
    /// signalling its key provider wrote (SPEKE v2 / CPIX): written as given,
    /// for the one key it was made for (no rotation).
    Drm(DrmSignalling),
}

/// A DRM system's signalling from its key provider. Its `pssh` box goes in
/// [`Encryption::extra_pssh`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrmSignalling {
    /// The DRM system id (DASH `urn:uuid:`).
    pub system_id: [u8; 16],
    /// The DASH `ContentProtection@value` (`Widevine`, `MSPR 2.0`), if any.
    pub dash_value: Option<String>,
    /// What goes inside the DASH `ContentProtection` element (`<cenc:pssh>`,
    /// `<mspr:pro>`), well-formed XML; `None`: not offered in DASH.
    pub dash_children: Option<String>,
    /// Attribute lists of the media playlists' `EXT-X-KEY` tags (after
    /// `#EXT-X-KEY:`); empty: not offered in HLS.
    pub hls_keys: Vec<String>,
    /// Attribute lists of the multivariant playlist's `EXT-X-SESSION-KEY`
    /// tags; empty: the `hls_keys` serve.
    pub hls_session_keys: Vec<String>,
}

impl KeySystem {
    /// The URL for `kid`, the template's `{kid}` filled in (`None` for a DRM
    /// system, whose URIs are its provider's).
    pub fn url_for(&self, kid: &[u8; 16]) -> String {
        let template = match self {
            KeySystem::ClearKey { license_url } => license_url,
            KeySystem::Identity { uri } => uri,
            KeySystem::Drm(_) => return String::new(),
        };
        template.replace("{kid}", &hex(kid))
    }
}

/// Encryption of every track of a stream ([`crate::PackagerConfig::encryption`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encryption {
    /// Default `cbcs`.
    pub scheme: Scheme,
    /// The keys, one per key period: segment `msn` is encrypted with
    /// `keys[(msn / rotate_every_segments) % keys.len()]`, or `keys[0]` when
    /// rotation is off. Must not be empty.
    pub keys: Vec<ContentKey>,
    /// A new key every this many segments; 0 (the default) = no rotation.
    pub rotate_every_segments: u64,
    /// `cenc` only: 8 (the default) or 16 bytes of IV per sample in `senc`.
    /// Sample IVs are the key's IV's first 8 bytes as a big-endian number plus
    /// `track << 56 | msn << 20 | sample` (the low 8 bytes are zero), so they
    /// never repeat under one key while segment numbers grow.
    pub per_sample_iv_size: u8,
    /// Extra `pssh` boxes (complete, with their headers: Widevine, PlayReady)
    /// written into every init segment after the common one.
    pub extra_pssh: Vec<Vec<u8>>,
    /// Key systems the playlists and the MPD signal.
    pub key_systems: Vec<KeySystem>,
}

impl Default for Encryption {
    fn default() -> Self {
        Self {
            scheme: Scheme::Cbcs,
            keys: Vec::new(),
            rotate_every_segments: 0,
            per_sample_iv_size: 8,
            extra_pssh: Vec::new(),
            key_systems: Vec::new(),
        }
    }
}

impl Encryption {
    /// The key period segment `msn` belongs to.
    pub fn period(&self, msn: u64) -> u64 {
        match self.rotate_every_segments {
            0 => 0,
            n => msn / n,
        }
    }

    /// The key of period `period`.
    pub fn key_of_period(&self, period: u64) -> Option<&ContentKey> {
        let n = self.keys.len() as u64;
        (n > 0).then(|| &self.keys[(period % n) as usize])
    }

    /// The key segment `msn` is encrypted with.
    pub fn key_for(&self, msn: u64) -> Option<&ContentKey> {
        self.key_of_period(self.period(msn))
    }

    /// Whether the settings can encrypt anything.
    pub fn is_usable(&self) -> bool {
        !self.keys.is_empty() && matches!(self.per_sample_iv_size, 8 | 16)
    }

    pub(crate) fn iv_size(&self) -> u8 {
        match self.scheme {
            Scheme::Cbcs => 0,
            Scheme::Cenc => self.per_sample_iv_size,
        }
    }
}

/// The pattern (crypt, skip blocks) of a track under a scheme: `cbcs` video
/// 1:9, `cbcs` audio 0:0 (every whole block, as shaka-packager writes it);
/// `cenc` has none.
pub(crate) fn pattern(scheme: Scheme, kind: TrackKind) -> (u8, u8) {
    match (scheme, kind) {
        (Scheme::Cbcs, TrackKind::Video) => (1, 9),
        _ => (0, 0),
    }
}

/// Why a track cannot be encrypted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CencError {
    #[error("no usable key (keys must not be empty, per-sample IV size 8 or 16)")]
    NoKey,
    #[error("H.264 parameter sets unusable for slice header parsing")]
    BadParameterSets,
    #[error("H.265 parameter sets unusable for slice segment header parsing")]
    BadHevcParameterSets,
}

/// How one track's samples are split into clear and protected ranges.
#[derive(Debug, Clone)]
pub(crate) enum SampleLayout {
    /// Length-prefixed H.264 NAL units; slice headers parsed with the track's
    /// SPS and PPS.
    Avc(SliceHeaderParser),
    /// Length-prefixed H.265 NAL units; slice segment headers parsed with
    /// the track's SPS and PPS.
    Hevc(Box<HevcSliceHeaderParser>),
    /// Audio: the whole sample.
    Whole,
}

/// One track's encryption: the settings and what it needs from the codec.
#[derive(Debug, Clone)]
pub struct TrackCrypt {
    pub(crate) enc: std::sync::Arc<Encryption>,
    pub(crate) kind: TrackKind,
    pub(crate) layout: SampleLayout,
    /// 0-based index of the track in its timeline (part of every sample IV).
    pub(crate) track: u8,
    /// The key of the track's init segment (`tenc` default_KID).
    pub(crate) default_kid: [u8; 16],
}

/// What a fragment's `traf` carries for its encrypted samples, and how the
/// fragment writer encrypts them where they land in the `mdat`
/// ([`TrafCrypt::encrypt_sample`]).
#[derive(Clone, Default)]
pub(crate) struct TrafCrypt {
    pub(crate) scheme: Scheme,
    /// The fragment's key schedule (`None`: nothing to encrypt).
    pub(crate) cipher: Option<crypt::Cipher>,
    /// The key's IV: `cbcs`, every sample's; `cenc`, the base of each
    /// sample's ([`sample_iv`] of `track`, `msn`, `first_index + i`).
    key_iv: [u8; 16],
    track: u8,
    msn: u64,
    first_index: u32,
    /// Every sample's subsamples, one after the other (none for whole-sample
    /// encryption)...
    pub(crate) subsamples: Vec<Subsample>,
    /// ...sample `i`'s being `subsamples[ends[i - 1]..ends[i]]`.
    pub(crate) ends: Vec<usize>,
    /// The key, when it is not the init segment's default (a rotation): the
    /// fragment then carries a `seig` sample group and a `pssh` for it.
    pub(crate) rotated: Option<ContentKey>,
    pub(crate) pattern: (u8, u8),
    pub(crate) iv_size: u8,
}

impl std::fmt::Debug for TrafCrypt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrafCrypt")
            .field("scheme", &self.scheme)
            .field("samples", &self.ends.len())
            .field("rotated", &self.rotated)
            .field("pattern", &self.pattern)
            .field("iv_size", &self.iv_size)
            .finish_non_exhaustive()
    }
}

impl TrafCrypt {
    /// The number of samples described.
    pub(crate) fn len(&self) -> usize {
        self.ends.len()
    }

    /// Sample `i`'s IV (`senc` writes its first `iv_size` bytes).
    pub(crate) fn iv(&self, i: usize) -> [u8; 16] {
        match self.scheme {
            Scheme::Cbcs => self.key_iv,
            Scheme::Cenc => sample_iv(
                &self.key_iv,
                self.track,
                self.msn,
                self.first_index.wrapping_add(i as u32),
            ),
        }
    }

    /// Sample `i`'s subsamples (empty for whole-sample encryption).
    pub(crate) fn subsamples(&self, i: usize) -> &[Subsample] {
        let from = i
            .checked_sub(1)
            .map_or(0, |p| self.ends.get(p).copied().unwrap_or(0));
        let to = self.ends.get(i).copied().unwrap_or(from);
        self.subsamples.get(from..to).unwrap_or(&[])
    }

    /// Encrypts sample `i`, `data`, in place (in the fragment's `mdat`); a
    /// sample beyond those described is left as it is.
    pub(crate) fn encrypt_sample(&self, i: usize, data: &mut [u8]) {
        let Some(cipher) = &self.cipher else {
            return;
        };
        if i >= self.len() {
            return;
        }
        let iv = self.iv(i);
        let subsamples = self.subsamples(i);
        crypt::encrypt_sample_with(cipher, self.scheme, &iv, self.pattern, data, subsamples);
    }
}

impl TrackCrypt {
    /// Encryption of `info` (its index in the timeline `track`) under `enc`,
    /// whose init segment names `default_kid` (one of `enc`'s keys).
    pub fn new(
        enc: std::sync::Arc<Encryption>,
        info: &TrackInfo,
        track: usize,
        default_kid: [u8; 16],
    ) -> Result<Self, CencError> {
        if !enc.is_usable() {
            return Err(CencError::NoKey);
        }
        let layout = match &info.codec {
            CodecConfig::Avc(c) => SampleLayout::Avc(
                SliceHeaderParser::new(&c.sps_nal, &c.pps_nal)
                    .ok_or(CencError::BadParameterSets)?,
            ),
            CodecConfig::Hevc(c) => SampleLayout::Hevc(Box::new(
                HevcSliceHeaderParser::new(&c.sps_nal, &c.pps_nal)
                    .ok_or(CencError::BadHevcParameterSets)?,
            )),
            CodecConfig::Aac(_) | CodecConfig::Opus(_) => SampleLayout::Whole,
        };
        if !enc.keys.iter().any(|k| k.kid == default_kid) {
            return Err(CencError::NoKey);
        }
        Ok(Self {
            enc,
            kind: info.kind(),
            layout,
            track: track.min(255) as u8,
            default_kid,
        })
    }

    pub fn encryption(&self) -> &Encryption {
        &self.enc
    }

    /// The `tenc` fields of the init segment.
    pub(crate) fn init_key(&self) -> Option<&ContentKey> {
        self.enc.keys.iter().find(|k| k.kid == self.default_kid)
    }

    /// What the `traf` of `samples` of segment `msn` carries, the first being
    /// the segment's `first_index`th sample: their IVs and subsample maps, and
    /// the key the fragment writer encrypts them with as it writes the `mdat`
    /// (the samples themselves stay clear).
    pub(crate) fn prepare(&self, msn: u64, first_index: u32, samples: &[Sample]) -> TrafCrypt {
        let enc = &*self.enc;
        let Some(key) = enc.key_for(msn) else {
            return TrafCrypt::default();
        };
        let scheme = enc.scheme;
        let mut out = TrafCrypt {
            scheme,
            cipher: Some(crypt::Cipher::new(&key.key)),
            key_iv: key.iv,
            track: self.track,
            msn,
            first_index,
            // About one subsample per video sample (two with a long clear run
            // or several slices): one allocation per fragment.
            subsamples: match self.layout {
                SampleLayout::Avc(_) | SampleLayout::Hevc(_) => {
                    Vec::with_capacity(samples.len() * 2)
                }
                SampleLayout::Whole => Vec::new(),
            },
            ends: Vec::with_capacity(samples.len()),
            rotated: (key.kid != self.default_kid).then(|| key.clone()),
            pattern: pattern(scheme, self.kind),
            iv_size: enc.iv_size(),
        };
        for s in samples {
            match &self.layout {
                SampleLayout::Avc(parser) => {
                    subsample::avc_into(&s.data, parser, scheme, &mut out.subsamples)
                }
                SampleLayout::Hevc(parser) => {
                    subsample::hevc_into(&s.data, parser, scheme, &mut out.subsamples)
                }
                SampleLayout::Whole => {}
            }
            out.ends.push(out.subsamples.len());
        }
        out
    }
}

/// The IV of a `cenc` sample: base (the key IV's first 8 bytes) plus
/// `track << 56 | msn << 20 | sample`, in the high 64 bits; the low 64 bits
/// (the block counter) start at zero.
pub fn sample_iv(base: &[u8; 16], track: u8, msn: u64, sample: u32) -> [u8; 16] {
    let mut hi = [0u8; 8];
    hi.copy_from_slice(&base[..8]);
    let counter =
        (u64::from(track) << 56) | ((msn & 0xF_FFFF_FFFF) << 20) | u64::from(sample & 0xF_FFFF);
    let v = u64::from_be_bytes(hi).wrapping_add(counter);
    let mut iv = [0u8; 16];
    iv[..8].copy_from_slice(&v.to_be_bytes());
    iv
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A KID as a UUID (`00112233-4455-…`), as DASH writes `cenc:default_KID`.
pub fn uuid(kid: &[u8; 16]) -> String {
    let h = hex(kid);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}
