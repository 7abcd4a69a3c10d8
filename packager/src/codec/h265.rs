//! H.265 / HEVC (ITU-T H.265): NAL unit types, the SPS fields CMAF and HLS need,
//! and the `hvcC` decoder configuration (ISO/IEC 14496-15 §8.3.3).

use super::bits::{rbsp, BitReader};
use super::h264::annexb_nals;
use super::CodecError;

pub const NAL_VPS: u8 = 32;
pub const NAL_SPS: u8 = 33;
pub const NAL_PPS: u8 = 34;
pub const NAL_AUD: u8 = 35;

/// The 6-bit `nal_unit_type` from the 2-byte NAL header.
pub fn nal_type(nal: &[u8]) -> u8 {
    nal.first().map_or(0, |b| (b >> 1) & 0x3F)
}

/// IRAP pictures (BLA, IDR, CRA: types 16-23) start a decodable sequence.
pub fn is_irap(t: u8) -> bool {
    (16..=23).contains(&t)
}

/// Whether an access unit in MP4 form (4-byte NAL lengths) holds an IRAP
/// picture.
pub fn au_has_irap(au: &[u8]) -> bool {
    super::length_prefixed_nals(au).any(|nal| !nal.is_empty() && is_irap(nal_type(nal)))
}

/// `profile_tier_level` general fields, as `hvcC` and the codec string carry them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProfileTierLevel {
    pub profile_space: u8,
    pub tier: bool,
    pub profile_idc: u8,
    pub compatibility_flags: u32,
    /// The 48 bits after the compatibility flags (progressive/interlaced/... flags).
    pub constraint_flags: u64,
    pub level_idc: u8,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HevcSps {
    pub ptl: ProfileTierLevel,
    pub max_sub_layers: u8,
    pub temporal_id_nesting: bool,
    pub chroma_format_idc: u32,
    pub bit_depth_luma: u32,
    pub bit_depth_chroma: u32,
    pub width: u32,
    pub height: u32,
}

impl HevcSps {
    pub fn parse(nal: &[u8]) -> Result<Self, CodecError> {
        Self::parse_inner(nal).ok_or(CodecError::H265("malformed sequence parameter set"))
    }

    fn parse_inner(nal: &[u8]) -> Option<Self> {
        if nal_type(nal) != NAL_SPS {
            return None;
        }
        let data = rbsp(nal.get(2..)?);
        let mut r = BitReader::new(&data);
        let _vps_id = r.bits(4)?;
        let max_sub_layers_minus1 = r.bits(3)? as u8;
        let temporal_id_nesting = r.flag()?;
        let profile_space = r.bits(2)? as u8;
        let tier = r.flag()?;
        let profile_idc = r.bits(5)? as u8;
        let compatibility_flags = r.bits(32)?;
        let constraint_flags = (u64::from(r.bits(16)?) << 32) | u64::from(r.bits(32)?);
        let level_idc = r.bits(8)? as u8;
        let mut profile_present = [false; 8];
        let mut level_present = [false; 8];
        for i in 0..usize::from(max_sub_layers_minus1) {
            profile_present[i] = r.flag()?;
            level_present[i] = r.flag()?;
        }
        if max_sub_layers_minus1 > 0 {
            for _ in max_sub_layers_minus1..8 {
                r.bits(2)?;
            }
        }
        for i in 0..usize::from(max_sub_layers_minus1) {
            if profile_present[i] {
                r.bits(32)?;
                r.bits(32)?;
                r.bits(24)?; // 88 bits of sub-layer profile
            }
            if level_present[i] {
                r.bits(8)?;
            }
        }
        let _sps_id = r.ue()?;
        let chroma_format_idc = r.ue()?;
        if chroma_format_idc > 3 {
            return None;
        }
        if chroma_format_idc == 3 {
            r.flag()?; // separate_colour_plane_flag
        }
        let mut width = u64::from(r.ue()?);
        let mut height = u64::from(r.ue()?);
        if r.flag()? {
            let (sub_w, sub_h) = match chroma_format_idc {
                1 => (2, 2),
                2 => (2, 1),
                _ => (1, 1),
            };
            let (l, rt, t, b) = (r.ue()?, r.ue()?, r.ue()?, r.ue()?);
            width = width.checked_sub(sub_w * (u64::from(l) + u64::from(rt)))?;
            height = height.checked_sub(sub_h * (u64::from(t) + u64::from(b)))?;
        }
        let bit_depth_luma = r.ue()?.checked_add(8)?;
        let bit_depth_chroma = r.ue()?.checked_add(8)?;
        if width == 0 || height == 0 || width > 16_384 || height > 16_384 || bit_depth_luma > 16 {
            return None;
        }
        Some(HevcSps {
            ptl: ProfileTierLevel {
                profile_space,
                tier,
                profile_idc,
                compatibility_flags,
                constraint_flags,
                level_idc,
            },
            max_sub_layers: max_sub_layers_minus1 + 1,
            temporal_id_nesting,
            chroma_format_idc,
            bit_depth_luma,
            bit_depth_chroma,
            width: width as u32,
            height: height as u32,
        })
    }

    /// Codec string per ISO/IEC 14496-15 Annex E, e.g. `hvc1.1.6.L93.90`.
    pub fn codec_string(&self) -> String {
        let p = &self.ptl;
        let space = match p.profile_space {
            1 => "A",
            2 => "B",
            3 => "C",
            _ => "",
        };
        let mut s = format!(
            "hvc1.{space}{}.{:X}.{}{}",
            p.profile_idc,
            p.compatibility_flags.reverse_bits(),
            if p.tier { 'H' } else { 'L' },
            p.level_idc
        );
        let bytes = p.constraint_flags.to_be_bytes();
        let constraint = &bytes[2..];
        let used = constraint
            .iter()
            .rposition(|&b| b != 0)
            .map_or(0, |i| i + 1);
        for b in &constraint[..used] {
            s.push_str(&format!(".{b:X}"));
        }
        s
    }
}

/// The parameter sets of one H.265 stream configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HevcConfig {
    pub sps: HevcSps,
    pub vps_nal: Vec<u8>,
    pub sps_nal: Vec<u8>,
    pub pps_nal: Vec<u8>,
}

impl HevcConfig {
    /// Reads an `HEVCDecoderConfigurationRecord` (ISO/IEC 14496-15 §8.3.3.1,
    /// as `hvcC` boxes and Enhanced RTMP sequence starts carry it): the first
    /// VPS, SPS and PPS, and the NAL length size (1, 2 or 4 bytes).
    pub fn from_decoder_configuration_record(
        record: &[u8],
    ) -> Result<(HevcConfig, usize), CodecError> {
        use super::h264::{take, take_sized};
        let bad = CodecError::H265("malformed HEVCDecoderConfigurationRecord");
        let mut r = record;
        let head = take(&mut r, 23).ok_or(bad.clone())?;
        if head[0] != 1 {
            return Err(CodecError::H265(
                "unknown HEVCDecoderConfigurationRecord version",
            ));
        }
        let length_size = usize::from(head[21] & 0x03) + 1;
        if length_size == 3 {
            return Err(CodecError::H265("3-byte NAL lengths"));
        }
        let (mut vps, mut sps, mut pps) = (None, None, None);
        for _ in 0..head[22] {
            let h = take(&mut r, 3).ok_or(bad.clone())?;
            let kind = h[0] & 0x3F;
            for _ in 0..u16::from_be_bytes([h[1], h[2]]) {
                let nal = take_sized(&mut r).ok_or(bad.clone())?;
                if nal_type(nal) != kind {
                    return Err(CodecError::H265("a NAL unit in the wrong array"));
                }
                match kind {
                    NAL_VPS => vps.get_or_insert(nal),
                    NAL_SPS => sps.get_or_insert(nal),
                    NAL_PPS => pps.get_or_insert(nal),
                    _ => continue,
                };
            }
        }
        let (Some(vps), Some(sps_nal), Some(pps)) = (vps, sps, pps) else {
            return Err(CodecError::H265(
                "no VPS, SPS or PPS in the configuration record",
            ));
        };
        Ok((
            HevcConfig {
                sps: HevcSps::parse(sps_nal)?,
                vps_nal: vps.to_vec(),
                sps_nal: sps_nal.to_vec(),
                pps_nal: pps.to_vec(),
            },
            length_size,
        ))
    }

    /// The `HEVCDecoderConfigurationRecord` carried in an `hvcC` box.
    pub fn decoder_configuration_record(&self) -> Vec<u8> {
        let p = &self.sps.ptl;
        let mut out = vec![
            1,
            (p.profile_space << 6) | (u8::from(p.tier) << 5) | (p.profile_idc & 0x1F),
        ];
        out.extend_from_slice(&p.compatibility_flags.to_be_bytes());
        out.extend_from_slice(&p.constraint_flags.to_be_bytes()[2..]);
        out.push(p.level_idc);
        out.extend_from_slice(&[0xF0, 0x00]); // min_spatial_segmentation_idc = 0
        out.push(0xFC); // parallelismType unknown
        out.push(0xFC | (self.sps.chroma_format_idc as u8 & 0x03));
        out.push(0xF8 | (self.sps.bit_depth_luma.saturating_sub(8) as u8 & 0x07));
        out.push(0xF8 | (self.sps.bit_depth_chroma.saturating_sub(8) as u8 & 0x07));
        out.extend_from_slice(&[0, 0]); // avgFrameRate unknown
        out.push(
            ((self.sps.max_sub_layers & 0x07) << 3)
                | (u8::from(self.sps.temporal_id_nesting) << 2)
                | 0x03, // lengthSizeMinusOne = 3
        );
        out.push(3); // numOfArrays
        for (t, nal) in [
            (NAL_VPS, &self.vps_nal),
            (NAL_SPS, &self.sps_nal),
            (NAL_PPS, &self.pps_nal),
        ] {
            out.push(0x80 | t); // array_completeness = 1: all sets are here (hvc1)
            out.extend_from_slice(&1u16.to_be_bytes());
            out.extend_from_slice(&(nal.len() as u16).to_be_bytes());
            out.extend_from_slice(nal);
        }
        out
    }
}

/// One access unit converted for MP4 (`hvc1`): 4-byte length-prefixed NAL units,
/// with parameter sets and delimiters taken out (they live in `hvcC`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HevcSample {
    pub data: Vec<u8>,
    pub keyframe: bool,
    pub vps: Option<Vec<u8>>,
    pub sps: Option<Vec<u8>>,
    pub pps: Option<Vec<u8>>,
}

pub fn annexb_to_sample(au: &[u8]) -> Option<HevcSample> {
    let mut sample = HevcSample {
        data: Vec::with_capacity(au.len() + 16),
        ..Default::default()
    };
    let mut has_slice = false;
    for nal in annexb_nals(au) {
        let t = nal_type(nal);
        match t {
            NAL_AUD => continue,
            NAL_VPS => {
                sample.vps = Some(nal.to_vec());
                continue;
            }
            NAL_SPS => {
                sample.sps = Some(nal.to_vec());
                continue;
            }
            NAL_PPS => {
                sample.pps = Some(nal.to_vec());
                continue;
            }
            0..=31 => {
                has_slice = true;
                sample.keyframe |= is_irap(t);
            }
            _ => {} // SEI and others stay in band
        }
        sample
            .data
            .extend_from_slice(&(nal.len() as u32).to_be_bytes());
        sample.data.extend_from_slice(nal);
    }
    has_slice.then_some(sample)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codec_string_of_main_profile() {
        let sps = HevcSps {
            ptl: ProfileTierLevel {
                profile_space: 0,
                tier: false,
                profile_idc: 1,
                compatibility_flags: 0x6000_0000,
                constraint_flags: 0x9000_0000_0000,
                level_idc: 60,
            },
            max_sub_layers: 1,
            temporal_id_nesting: true,
            chroma_format_idc: 1,
            bit_depth_luma: 8,
            bit_depth_chroma: 8,
            width: 320,
            height: 240,
        };
        assert_eq!(sps.codec_string(), "hvc1.1.6.L60.90");
    }

    #[test]
    fn sample_conversion_keeps_slices_only() {
        let au = [
            0, 0, 0, 1, 0x46, 0x01, 0x50, // AUD (35)
            0, 0, 0, 1, 0x40, 0x01, 0xAA, // VPS
            0, 0, 0, 1, 0x42, 0x01, 0xBB, // SPS
            0, 0, 0, 1, 0x44, 0x01, 0xCC, // PPS
            0, 0, 1, 0x26, 0x01, 0xDD, // IDR_W_RADL (19)
        ];
        let s = annexb_to_sample(&au).unwrap();
        assert!(s.keyframe);
        assert_eq!(s.data, vec![0, 0, 0, 3, 0x26, 0x01, 0xDD]);
        assert_eq!(s.vps.as_deref(), Some(&[0x40, 0x01, 0xAA][..]));
        assert!(HevcSps::parse(&[0x42, 0x01]).is_err());
    }
}
