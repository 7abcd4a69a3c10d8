//! H.265 / HEVC (ITU-T H.265): NAL unit types, the SPS fields CMAF and HLS need,
//! and the `hvcC` decoder configuration (ISO/IEC 14496-15 §8.3.3).

use super::bits::{rbsp, rbsp_len_in_payload, rbsp_prefix, BitReader};
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

/// `profile_tier_level(1, max_sub_layers_minus1)` (ITU-T H.265 §7.3.3),
/// skipped.
fn skip_profile_tier_level(r: &mut BitReader<'_>, max_sub_layers_minus1: u32) -> Option<()> {
    r.bits(32)?;
    r.bits(32)?;
    r.bits(32)?; // general profile (88 bits) and level (8 bits)
    let mut present = [(false, false); 8];
    for p in present.iter_mut().take(max_sub_layers_minus1 as usize) {
        *p = (r.flag()?, r.flag()?);
    }
    if max_sub_layers_minus1 > 0 {
        for _ in max_sub_layers_minus1..8 {
            r.bits(2)?;
        }
    }
    for &(profile, level) in present.iter().take(max_sub_layers_minus1 as usize) {
        if profile {
            r.bits(32)?;
            r.bits(32)?;
            r.bits(24)?;
        }
        if level {
            r.bits(8)?;
        }
    }
    Some(())
}

/// `scaling_list_data()` (§7.3.4), skipped.
fn skip_scaling_list_data(r: &mut BitReader<'_>) -> Option<()> {
    for size_id in 0..4u32 {
        let step = if size_id == 3 { 3 } else { 1 };
        for _ in (0..6).step_by(step) {
            if !r.flag()? {
                r.ue()?; // scaling_list_pred_matrix_id_delta
            } else {
                if size_id > 1 {
                    r.se()?; // scaling_list_dc_coef_minus8
                }
                for _ in 0..(16u32 << (2 * size_id)).min(64) {
                    r.se()?;
                }
            }
        }
    }
    Some(())
}

/// `hrd_parameters(1, max_sub_layers_minus1)` (Annex E.2.2), skipped.
fn skip_hrd_parameters(r: &mut BitReader<'_>, max_sub_layers_minus1: u32) -> Option<()> {
    let nal = r.flag()?;
    let vcl = r.flag()?;
    let mut sub_pic = false;
    if nal || vcl {
        sub_pic = r.flag()?;
        if sub_pic {
            r.bits(8 + 5 + 1 + 5)?;
        }
        r.bits(8)?; // bit_rate_scale, cpb_size_scale
        if sub_pic {
            r.bits(4)?;
        }
        r.bits(15)?; // three delay lengths
    }
    for _ in 0..=max_sub_layers_minus1 {
        let fixed_general = r.flag()?;
        let fixed_within_cvs = fixed_general || r.flag()?;
        let mut low_delay = false;
        if fixed_within_cvs {
            r.ue()?; // elemental_duration_in_tc_minus1
        } else {
            low_delay = r.flag()?;
        }
        let mut cpb_cnt = 1;
        if !low_delay {
            cpb_cnt = r.ue()?.checked_add(1).filter(|&n| n <= 32)?;
        }
        for _ in 0..u32::from(nal) + u32::from(vcl) {
            for _ in 0..cpb_cnt {
                r.ue()?;
                r.ue()?;
                if sub_pic {
                    r.ue()?;
                    r.ue()?;
                }
                r.flag()?; // cbr_flag
            }
        }
    }
    Some(())
}

/// `vui_parameters()` (Annex E.2.1), skipped.
fn skip_vui(r: &mut BitReader<'_>, max_sub_layers_minus1: u32) -> Option<()> {
    if r.flag()? && r.bits(8)? == 255 {
        r.bits(32)?; // sar_width, sar_height
    }
    if r.flag()? {
        r.flag()?; // overscan_appropriate_flag
    }
    if r.flag()? {
        r.bits(4)?; // video_format, video_full_range_flag
        if r.flag()? {
            r.bits(24)?; // colour description
        }
    }
    if r.flag()? {
        r.ue()?;
        r.ue()?; // chroma sample locations
    }
    r.bits(3)?; // neutral_chroma_indication, field_seq, frame_field_info_present
    if r.flag()? {
        for _ in 0..4 {
            r.ue()?; // default display window
        }
    }
    if r.flag()? {
        r.bits(32)?;
        r.bits(32)?; // num_units_in_tick, time_scale
        if r.flag()? {
            r.ue()?; // num_ticks_poc_diff_one_minus1
        }
        if r.flag()? {
            skip_hrd_parameters(r, max_sub_layers_minus1)?;
        }
    }
    if r.flag()? {
        r.bits(3)?; // bitstream restriction flags
        for _ in 0..5 {
            r.ue()?;
        }
    }
    Some(())
}

/// A short-term reference picture set (§7.3.7, §7.4.8): the POC deltas of its
/// pictures before (`s0`) and after (`s1`) the current one, each with its
/// `used_by_curr_pic` flag.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct RefPicSet {
    s0: Vec<(i64, bool)>,
    s1: Vec<(i64, bool)>,
}

/// More pictures than a DPB holds (MaxDpbSize is 16): malformed.
const MAX_RPS_PICTURES: usize = 16;

impl RefPicSet {
    fn len(&self) -> usize {
        self.s0.len() + self.s1.len()
    }

    fn used(&self) -> usize {
        self.s0.iter().chain(&self.s1).filter(|p| p.1).count()
    }

    /// `st_ref_pic_set(stRpsIdx)` with `stRpsIdx == sets.len()`: in the SPS
    /// (the sets before it are `sets`), or in a slice header (`in_slice`, all
    /// the SPS's sets are `sets`).
    fn parse(r: &mut BitReader<'_>, sets: &[RefPicSet], in_slice: bool) -> Option<Self> {
        let idx = sets.len();
        let inter = idx != 0 && r.flag()?;
        let mut out = RefPicSet::default();
        if inter {
            let delta_idx = if in_slice { r.ue()?.checked_add(1)? } else { 1 };
            let reference = &sets[idx.checked_sub(usize::try_from(delta_idx).ok()?)?];
            let negative = r.flag()?;
            let abs = r.ue()?;
            if abs > 0x7FFF {
                return None;
            }
            let delta_rps = (i64::from(abs) + 1) * if negative { -1 } else { 1 };
            // used_by_curr_pic_flag, use_delta_flag for every picture of the
            // reference set, then for the reference picture itself.
            let n = reference.len();
            let mut flags = Vec::with_capacity(n + 1);
            for _ in 0..=n {
                let used = r.flag()?;
                let use_delta = used || r.flag()?;
                flags.push((used, use_delta));
            }
            let (neg, pos) = (&reference.s0, &reference.s1);
            let s1_flag = |j: usize| flags[neg.len() + j];
            // Equations 7-61 and 7-62.
            for (j, &(d, _)) in pos.iter().enumerate().rev() {
                let (used, keep) = s1_flag(j);
                if d + delta_rps < 0 && keep {
                    out.s0.push((d + delta_rps, used));
                }
            }
            if delta_rps < 0 && flags[n].1 {
                out.s0.push((delta_rps, flags[n].0));
            }
            for (j, &(d, _)) in neg.iter().enumerate() {
                if d + delta_rps < 0 && flags[j].1 {
                    out.s0.push((d + delta_rps, flags[j].0));
                }
            }
            for (j, &(d, _)) in neg.iter().enumerate().rev() {
                if d + delta_rps > 0 && flags[j].1 {
                    out.s1.push((d + delta_rps, flags[j].0));
                }
            }
            if delta_rps > 0 && flags[n].1 {
                out.s1.push((delta_rps, flags[n].0));
            }
            for (j, &(d, _)) in pos.iter().enumerate() {
                let (used, keep) = s1_flag(j);
                if d + delta_rps > 0 && keep {
                    out.s1.push((d + delta_rps, used));
                }
            }
        } else {
            let negative = r.ue()? as usize;
            let positive = r.ue()? as usize;
            if negative.saturating_add(positive) > MAX_RPS_PICTURES {
                return None;
            }
            let mut poc = 0i64;
            for _ in 0..negative {
                let d = r.ue()?;
                if d > 0x7FFF {
                    return None;
                }
                poc -= i64::from(d) + 1;
                out.s0.push((poc, r.flag()?));
            }
            poc = 0;
            for _ in 0..positive {
                let d = r.ue()?;
                if d > 0x7FFF {
                    return None;
                }
                poc += i64::from(d) + 1;
                out.s1.push((poc, r.flag()?));
            }
        }
        (out.len() <= MAX_RPS_PICTURES).then_some(out)
    }
}

/// Ceil(Log2(n)), the width of a `u(v)` index among `n` values (0 for one).
fn ceil_log2(n: u64) -> u32 {
    if n <= 1 {
        0
    } else {
        64 - (n - 1).leading_zeros()
    }
}

/// What slice segment header parsing needs from the SPS and PPS (ITU-T H.265
/// §7.3.2.2, §7.3.2.3, §7.3.6.1), for Common Encryption's subsample maps.
///
/// Parameter sets with multi-layer, 3D or screen content coding extensions
/// (which add slice header syntax this parser does not read) are refused, as
/// are values outside the ranges the specification allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HevcSliceHeaderParser {
    pps_id: u32,
    // SPS
    separate_colour_plane: bool,
    chroma_array_type: u32,
    log2_max_poc_lsb: u32,
    /// Bits of `slice_segment_address`: Ceil(Log2(PicSizeInCtbsY)).
    address_bits: u32,
    short_term_sets: Vec<RefPicSet>,
    long_term_present: bool,
    /// `used_by_curr_pic_lt_sps_flag` of each long-term picture of the SPS.
    long_term_sps_used: Vec<bool>,
    temporal_mvp: bool,
    sao: bool,
    // PPS
    dependent_slice_segments: bool,
    output_flag_present: bool,
    num_extra_slice_header_bits: u32,
    cabac_init_present: bool,
    /// num_ref_idx_l0/l1_default_active_minus1.
    num_ref_idx_default: [u32; 2],
    slice_chroma_qp_offsets_present: bool,
    weighted_pred: bool,
    weighted_bipred: bool,
    /// tiles_enabled_flag || entropy_coding_sync_enabled_flag.
    entry_points: bool,
    loop_filter_across_slices: bool,
    deblocking_override_enabled: bool,
    deblocking_disabled: bool,
    lists_modification_present: bool,
    slice_header_extension_present: bool,
    chroma_qp_offset_list_enabled: bool,
}

/// The VCL NAL unit types with a slice segment layer (TRAIL_N … RASL_R,
/// BLA_W_LP … CRA_NUT); the reserved ones (10-15, 22-31) have no defined
/// syntax.
pub fn is_slice(t: u8) -> bool {
    matches!(t, 0..=9 | 16..=21)
}

const NAL_IDR_W_RADL: u8 = 19;
const NAL_IDR_N_LP: u8 = 20;

impl HevcSliceHeaderParser {
    /// From the track's SPS and PPS NAL units (with their 2-byte headers).
    pub fn new(sps: &[u8], pps: &[u8]) -> Option<Self> {
        if nal_type(sps) != NAL_SPS || nal_type(pps) != NAL_PPS {
            return None;
        }
        let data = rbsp(sps.get(2..)?);
        let mut r = BitReader::new(&data);
        r.bits(4)?; // sps_video_parameter_set_id
        let max_sub_layers_minus1 = r.bits(3)?;
        if max_sub_layers_minus1 > 6 {
            return None;
        }
        r.flag()?; // sps_temporal_id_nesting_flag
        skip_profile_tier_level(&mut r, max_sub_layers_minus1)?;
        let sps_id = r.ue()?;
        let chroma_format_idc = r.ue()?;
        if chroma_format_idc > 3 {
            return None;
        }
        let separate_colour_plane = chroma_format_idc == 3 && r.flag()?;
        let width = r.ue()?;
        let height = r.ue()?;
        if width == 0 || height == 0 || width > 32_768 || height > 32_768 {
            return None;
        }
        if r.flag()? {
            for _ in 0..4 {
                r.ue()?; // conformance window
            }
        }
        r.ue()?; // bit_depth_luma_minus8
        r.ue()?; // bit_depth_chroma_minus8
        let log2_max_poc_lsb = r.ue()?.checked_add(4).filter(|&v| v <= 16)?;
        let ordering_for_all = r.flag()?;
        let first = if ordering_for_all {
            0
        } else {
            max_sub_layers_minus1
        };
        for _ in first..=max_sub_layers_minus1 {
            r.ue()?;
            r.ue()?;
            r.ue()?;
        }
        let log2_min_cb = r.ue()?.checked_add(3)?;
        let log2_ctb = log2_min_cb.checked_add(r.ue()?)?;
        if !(4..=6).contains(&log2_ctb) {
            return None;
        }
        r.ue()?; // log2_min_luma_transform_block_size_minus2
        r.ue()?; // log2_diff_max_min_luma_transform_block_size
        r.ue()?; // max_transform_hierarchy_depth_inter
        r.ue()?; // max_transform_hierarchy_depth_intra
        if r.flag()? && r.flag()? {
            skip_scaling_list_data(&mut r)?;
        }
        r.flag()?; // amp_enabled_flag
        let sao = r.flag()?;
        if r.flag()? {
            r.bits(8)?; // PCM sample bit depths
            r.ue()?;
            r.ue()?;
            r.flag()?;
        }
        let num_sets = r.ue()?;
        if num_sets > 64 {
            return None;
        }
        let mut short_term_sets = Vec::with_capacity(num_sets as usize);
        for _ in 0..num_sets {
            let set = RefPicSet::parse(&mut r, &short_term_sets, false)?;
            short_term_sets.push(set);
        }
        let long_term_present = r.flag()?;
        let mut long_term_sps_used = Vec::new();
        if long_term_present {
            let n = r.ue()?;
            if n > 32 {
                return None;
            }
            for _ in 0..n {
                r.bits(log2_max_poc_lsb)?; // lt_ref_pic_poc_lsb_sps
                long_term_sps_used.push(r.flag()?);
            }
        }
        let temporal_mvp = r.flag()?;
        r.flag()?; // strong_intra_smoothing_enabled_flag
        if r.flag()? {
            skip_vui(&mut r, max_sub_layers_minus1)?;
        }
        if r.flag()? {
            // sps_range_extension_flag (no slice header syntax), then the
            // multi-layer, 3D and SCC extensions: refused.
            r.flag()?;
            if r.bits(3)? != 0 {
                return None;
            }
        }
        let ctb = 1u64 << log2_ctb;
        let ctbs = u64::from(width).div_ceil(ctb) * u64::from(height).div_ceil(ctb);

        let data = rbsp(pps.get(2..)?);
        let mut r = BitReader::new(&data);
        let pps_id = r.ue()?;
        if pps_id > 63 || r.ue()? != sps_id {
            return None;
        }
        let dependent_slice_segments = r.flag()?;
        let output_flag_present = r.flag()?;
        let num_extra_slice_header_bits = r.bits(3)?;
        r.flag()?; // sign_data_hiding_enabled_flag
        let cabac_init_present = r.flag()?;
        let num_ref_idx_default = [r.ue()?, r.ue()?];
        if num_ref_idx_default.iter().any(|&n| n > 14) {
            return None;
        }
        r.se()?; // init_qp_minus26
        r.flag()?; // constrained_intra_pred_flag
        let transform_skip = r.flag()?;
        if r.flag()? {
            r.ue()?; // diff_cu_qp_delta_depth
        }
        r.se()?;
        r.se()?; // pps_cb_qp_offset, pps_cr_qp_offset
        let slice_chroma_qp_offsets_present = r.flag()?;
        let weighted_pred = r.flag()?;
        let weighted_bipred = r.flag()?;
        r.flag()?; // transquant_bypass_enabled_flag
        let tiles = r.flag()?;
        let wavefronts = r.flag()?;
        if tiles {
            let columns = r.ue()?;
            let rows = r.ue()?;
            if u64::from(columns) >= ctbs || u64::from(rows) >= ctbs {
                return None;
            }
            if !r.flag()? {
                for _ in 0..columns + rows {
                    r.ue()?;
                }
            }
            r.flag()?; // loop_filter_across_tiles_enabled_flag
        }
        let loop_filter_across_slices = r.flag()?;
        let (mut deblocking_override_enabled, mut deblocking_disabled) = (false, false);
        if r.flag()? {
            deblocking_override_enabled = r.flag()?;
            deblocking_disabled = r.flag()?;
            if !deblocking_disabled {
                r.se()?;
                r.se()?;
            }
        }
        if r.flag()? {
            skip_scaling_list_data(&mut r)?;
        }
        let lists_modification_present = r.flag()?;
        r.ue()?; // log2_parallel_merge_level_minus2
        let slice_header_extension_present = r.flag()?;
        let mut chroma_qp_offset_list_enabled = false;
        if r.flag()? {
            let range = r.flag()?;
            // Multi-layer, 3D and SCC extensions: refused.
            if r.bits(3)? != 0 {
                return None;
            }
            r.bits(4)?;
            if range {
                if transform_skip {
                    r.ue()?;
                }
                r.flag()?; // cross_component_prediction_enabled_flag
                chroma_qp_offset_list_enabled = r.flag()?;
            }
        }
        Some(Self {
            pps_id,
            separate_colour_plane,
            chroma_array_type: if separate_colour_plane {
                0
            } else {
                chroma_format_idc
            },
            log2_max_poc_lsb,
            address_bits: ceil_log2(ctbs),
            short_term_sets,
            long_term_present,
            long_term_sps_used,
            temporal_mvp,
            sao,
            dependent_slice_segments,
            output_flag_present,
            num_extra_slice_header_bits,
            cabac_init_present,
            num_ref_idx_default,
            slice_chroma_qp_offsets_present,
            weighted_pred,
            weighted_bipred,
            entry_points: tiles || wavefronts,
            loop_filter_across_slices,
            deblocking_override_enabled,
            deblocking_disabled,
            lists_modification_present,
            slice_header_extension_present,
            chroma_qp_offset_list_enabled,
        })
    }

    /// How many leading bytes of `nal` (from its 2-byte NAL header, emulation
    /// prevention bytes counted) must stay clear under Common Encryption: the
    /// whole unit unless it is a slice segment of the base layer, else its
    /// header and slice segment header (which ends byte-aligned). `None` when
    /// the slice segment header cannot be parsed (another PPS, or malformed,
    /// including a `byte_alignment()` that is not `1` then zeros).
    pub fn clear_bytes(&self, nal: &[u8]) -> Option<usize> {
        let t = nal_type(nal);
        let layer = (u16::from(*nal.first()? & 1) << 5) | u16::from(*nal.get(1)? >> 3);
        if !is_slice(t) || layer != 0 {
            return Some(nal.len());
        }
        let payload = nal.get(2..)?;
        // Most slice segment headers fit in the first 64 RBSP bytes, parsed
        // on the stack; one that runs out of them is parsed again from up to
        // 16 KiB of the payload (entry points and header extensions can make
        // it long). Reads depend only on the bits before them, so a parse
        // that succeeds on fewer bytes gives the same answer.
        let mut buf = [0u8; 64];
        let short = rbsp_prefix(payload, &mut buf);
        let bits = match self.slice_header_bits(&buf[..short], t) {
            Some(bits) => bits,
            None if short == buf.len() => {
                let long = rbsp(&payload[..payload.len().min(16 * 1024)]);
                self.slice_header_bits(&long, t)?
            }
            None => return None,
        };
        let in_payload = rbsp_len_in_payload(payload, bits / 8)?;
        Some(2 + in_payload)
    }

    /// The length in bits (a multiple of 8) of the slice segment header at
    /// the start of `data` (RBSP, after the NAL header).
    fn slice_header_bits(&self, data: &[u8], nal_type: u8) -> Option<usize> {
        const B: u32 = 0;
        const P: u32 = 1;
        const I: u32 = 2;
        let mut r = BitReader::new(data);
        let first_in_pic = r.flag()?;
        if (16..=23).contains(&nal_type) {
            r.flag()?; // no_output_of_prior_pics_flag
        }
        if r.ue()? != self.pps_id {
            return None;
        }
        let mut dependent = false;
        if !first_in_pic {
            if self.dependent_slice_segments {
                dependent = r.flag()?;
            }
            r.bits(self.address_bits)?; // slice_segment_address
        }
        if !dependent {
            r.bits(self.num_extra_slice_header_bits)?;
            let slice_type = r.ue()?;
            if slice_type > I {
                return None;
            }
            if self.output_flag_present {
                r.flag()?;
            }
            if self.separate_colour_plane {
                r.bits(2)?;
            }
            let mut used_by_curr = 0usize;
            let mut temporal_mvp = false;
            if nal_type != NAL_IDR_W_RADL && nal_type != NAL_IDR_N_LP {
                r.bits(self.log2_max_poc_lsb)?; // slice_pic_order_cnt_lsb
                let sets = &self.short_term_sets;
                if !r.flag()? {
                    used_by_curr += RefPicSet::parse(&mut r, sets, true)?.used();
                } else {
                    let idx = r.bits(ceil_log2(sets.len() as u64))? as usize;
                    used_by_curr += sets.get(idx)?.used();
                }
                if self.long_term_present {
                    let in_sps = self.long_term_sps_used.len();
                    let from_sps = if in_sps > 0 { r.ue()? as usize } else { 0 };
                    let own = r.ue()? as usize;
                    if from_sps > in_sps || own > 32 {
                        return None;
                    }
                    for i in 0..from_sps + own {
                        if i < from_sps {
                            let idx = r.bits(ceil_log2(in_sps as u64))? as usize;
                            used_by_curr += usize::from(*self.long_term_sps_used.get(idx)?);
                        } else {
                            r.bits(self.log2_max_poc_lsb)?; // poc_lsb_lt
                            used_by_curr += usize::from(r.flag()?);
                        }
                        if r.flag()? {
                            r.ue()?; // delta_poc_msb_cycle_lt
                        }
                    }
                }
                if self.temporal_mvp {
                    temporal_mvp = r.flag()?;
                }
            }
            let (mut sao_luma, mut sao_chroma) = (false, false);
            if self.sao {
                sao_luma = r.flag()?;
                if self.chroma_array_type != 0 {
                    sao_chroma = r.flag()?;
                }
            }
            if slice_type == P || slice_type == B {
                let mut active = self.num_ref_idx_default;
                if r.flag()? {
                    active[0] = r.ue()?;
                    if slice_type == B {
                        active[1] = r.ue()?;
                    }
                }
                if active.iter().any(|&n| n > 14) {
                    return None;
                }
                let lists = if slice_type == B { 2 } else { 1 };
                if self.lists_modification_present && used_by_curr > 1 {
                    let bits = ceil_log2(used_by_curr as u64);
                    for &n in &active[..lists] {
                        if r.flag()? {
                            for _ in 0..=n {
                                r.bits(bits)?; // list_entry_lX
                            }
                        }
                    }
                }
                if slice_type == B {
                    r.flag()?; // mvd_l1_zero_flag
                }
                if self.cabac_init_present {
                    r.flag()?;
                }
                if temporal_mvp {
                    let from_l0 = slice_type != B || r.flag()?;
                    if active[usize::from(!from_l0)] > 0 {
                        r.ue()?; // collocated_ref_idx
                    }
                }
                if (self.weighted_pred && slice_type == P)
                    || (self.weighted_bipred && slice_type == B)
                {
                    self.skip_pred_weight_table(&mut r, &active[..lists])?;
                }
                r.ue()?; // five_minus_max_num_merge_cand
            }
            r.se()?; // slice_qp_delta
            if self.slice_chroma_qp_offsets_present {
                r.se()?;
                r.se()?;
            }
            if self.chroma_qp_offset_list_enabled {
                r.flag()?; // cu_chroma_qp_offset_enabled_flag
            }
            let mut deblocking_disabled = self.deblocking_disabled;
            if self.deblocking_override_enabled && r.flag()? {
                deblocking_disabled = r.flag()?;
                if !deblocking_disabled {
                    r.se()?;
                    r.se()?;
                }
            }
            if self.loop_filter_across_slices && (sao_luma || sao_chroma || !deblocking_disabled) {
                r.flag()?;
            }
        }
        if self.entry_points {
            let offsets = r.ue()?;
            if offsets > 0 {
                let bits = r.ue()?.checked_add(1).filter(|&b| b <= 32)?;
                // At most one offset per CTB: a longer list is malformed.
                if offsets > 1 << self.address_bits.min(30) {
                    return None;
                }
                for _ in 0..offsets {
                    r.bits(bits)?;
                }
            }
        }
        if self.slice_header_extension_present {
            let len = r.ue()?;
            if len > 256 {
                return None;
            }
            for _ in 0..len {
                r.bits(8)?;
            }
        }
        // byte_alignment(): a one, then zeros up to the byte boundary.
        if r.bit()? != 1 {
            return None;
        }
        while r.position() & 7 != 0 {
            if r.bit()? != 0 {
                return None;
            }
        }
        Some(r.position())
    }

    /// `pred_weight_table()` (§7.3.6.3) for `active` (num_ref_idx_lX_active_minus1
    /// of each list), skipped.
    fn skip_pred_weight_table(&self, r: &mut BitReader<'_>, active: &[u32]) -> Option<()> {
        r.ue()?; // luma_log2_weight_denom
        let chroma = self.chroma_array_type != 0;
        if chroma {
            r.se()?; // delta_chroma_log2_weight_denom
        }
        for &n in active {
            let n = n as usize + 1;
            let mut luma = [false; 15];
            let mut chroma_flags = [false; 15];
            for f in &mut luma[..n] {
                *f = r.flag()?;
            }
            if chroma {
                for f in &mut chroma_flags[..n] {
                    *f = r.flag()?;
                }
            }
            for i in 0..n {
                if luma[i] {
                    r.se()?;
                    r.se()?;
                }
                if chroma_flags[i] {
                    for _ in 0..4 {
                        r.se()?;
                    }
                }
            }
        }
        Some(())
    }
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

    /// Writes RBSP bits (test-only), as an encoder would.
    #[derive(Default)]
    struct Bits {
        out: Vec<u8>,
        n: usize,
    }

    impl Bits {
        fn u(&mut self, v: u64, n: u32) -> &mut Self {
            for i in (0..n).rev() {
                if self.n & 7 == 0 {
                    self.out.push(0);
                }
                let bit = ((v >> i) & 1) as u8;
                *self.out.last_mut().unwrap() |= bit << (7 - self.n % 8);
                self.n += 1;
            }
            self
        }
        fn f(&mut self, b: bool) -> &mut Self {
            self.u(u64::from(b), 1)
        }
        fn ue(&mut self, v: u64) -> &mut Self {
            let x = v + 1;
            let len = 64 - x.leading_zeros();
            self.u(0, len - 1).u(x, len)
        }
        fn se(&mut self, v: i64) -> &mut Self {
            self.ue(if v > 0 {
                2 * v as u64 - 1
            } else {
                (-2 * v) as u64
            })
        }
        /// rbsp_trailing_bits() or byte_alignment(): a one, then zeros.
        fn align(&mut self) -> Vec<u8> {
            self.u(1, 1);
            while self.n & 7 != 0 {
                self.u(0, 1);
            }
            self.out.clone()
        }
    }

    /// Emulation prevention: RBSP → NAL payload.
    fn epb(rbsp: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut zeros = 0;
        for &b in rbsp {
            if zeros >= 2 && b <= 3 {
                out.push(3);
                zeros = 0;
            }
            zeros = if b == 0 { zeros + 1 } else { 0 };
            out.push(b);
        }
        out
    }

    fn nal(header: [u8; 2], rbsp: &[u8]) -> Vec<u8> {
        let mut n = header.to_vec();
        n.extend(epb(rbsp));
        n
    }

    /// An SPS with two sub-layers, 64x64 CTBs over 320x240 (20 CTBs: 5-bit
    /// addresses), 8-bit POC LSBs, three short-term RPS (the second predicted
    /// from the first), two long-term pictures, a VUI with HRD parameters
    /// and the range extension.
    fn sps() -> Vec<u8> {
        let mut b = Bits::default();
        b.u(0, 4).u(1, 3).f(true);
        b.u(0, 2)
            .u(0, 1)
            .u(1, 5)
            .u(0x6000_0000, 32)
            .u(0, 48)
            .u(93, 8);
        b.f(true).f(true);
        for _ in 1..8 {
            b.u(0, 2);
        }
        b.u(0, 32).u(0, 32).u(0, 24).u(90, 8); // sub-layer profile and level
        b.ue(0).ue(1).ue(320).ue(240).f(false).ue(0).ue(0).ue(4);
        b.f(true);
        for _ in 0..2 {
            b.ue(4).ue(2).ue(0);
        }
        b.ue(0).ue(3).ue(0).ue(3).ue(0).ue(0);
        b.f(false).f(true).f(true).f(false); // scaling, amp, SAO, PCM
        b.ue(3);
        // Set 0: S0 -1 (used), -3 (not used); S1 +1 (used).
        b.ue(2).ue(1).ue(0).f(true).ue(1).f(false).ue(0).f(true);
        // Set 1: predicted from set 0 with deltaRps +1, every picture used:
        // S0 -2, S1 +1 +2 (the picture at 0 drops out: 3 pictures, not 4).
        b.f(true).f(false).ue(0);
        for _ in 0..4 {
            b.f(true);
        }
        // Set 2: S0 -1 (used).
        b.f(false).ue(1).ue(0).ue(0).f(true);
        b.f(true).ue(2).u(5, 8).f(true).u(9, 8).f(false); // long-term
        b.f(true).f(false).f(true); // temporal MVP, strong intra, VUI
        b.f(true).u(255, 8).u(1, 16).u(1, 16); // SAR
        b.f(false)
            .f(true)
            .u(5, 3)
            .f(false)
            .f(true)
            .u(1, 8)
            .u(1, 8)
            .u(1, 8);
        b.f(false).u(0, 3).f(false);
        b.f(true).u(1001, 32).u(60000, 32).f(false).f(true); // timing, HRD
        b.f(true)
            .f(false)
            .f(false)
            .u(0, 4)
            .u(0, 4)
            .u(23, 5)
            .u(23, 5)
            .u(23, 5);
        for _ in 0..2 {
            b.f(false).f(false).f(false).ue(1); // two CPBs per sub-layer
            for _ in 0..2 {
                b.ue(1000).ue(2000).f(false);
            }
        }
        b.f(true).u(0, 3).ue(0).ue(0).ue(0).ue(15).ue(15); // restrictions
        b.f(true).f(true).u(0, 3).u(0, 4); // range extension only
        b.u(0, 9);
        nal([0x42, 0x01], &b.align())
    }

    /// A PPS using every PPS field the slice header depends on.
    fn pps() -> Vec<u8> {
        let mut b = Bits::default();
        b.ue(0).ue(0).f(true).f(true).u(2, 3).f(false).f(true); // dependent, output, 2 extra bits, cabac_init
        b.ue(1)
            .ue(0)
            .se(0)
            .f(false)
            .f(true)
            .f(true)
            .ue(1)
            .se(0)
            .se(0);
        b.f(true).f(true).f(true).f(false).f(true).f(true); // chroma QP offsets, weighted, tiles, WPP
        b.ue(1).ue(1).f(false).ue(2).ue(1).f(true); // 2x2 tiles, explicit sizes
        b.f(true).f(true).f(true).f(true); // across slices, deblocking control: override on, disabled
        b.f(false).f(true).ue(0).f(true); // lists modification, header extension
        b.f(true)
            .f(true)
            .u(0, 3)
            .u(0, 4)
            .ue(0)
            .f(false)
            .f(true)
            .ue(0)
            .ue(0)
            .se(1)
            .se(-1);
        b.ue(0).ue(0);
        nal([0x44, 0x01], &b.align())
    }

    fn parser() -> HevcSliceHeaderParser {
        HevcSliceHeaderParser::new(&sps(), &pps()).expect("parameter sets parse")
    }

    /// A slice NAL unit from its header's RBSP, followed by slice data; the
    /// bytes that must stay clear.
    fn slice(header: [u8; 2], rbsp: Vec<u8>) -> (Vec<u8>, usize) {
        let clear = 2 + epb(&rbsp).len();
        let mut all = rbsp;
        all.extend([0xAB; 100]);
        (nal(header, &all), clear)
    }

    #[test]
    fn derives_reference_picture_sets() {
        let p = parser();
        assert_eq!(p.address_bits, 5);
        let sets: Vec<(Vec<i64>, Vec<i64>)> = p
            .short_term_sets
            .iter()
            .map(|s| {
                (
                    s.s0.iter().map(|x| x.0).collect(),
                    s.s1.iter().map(|x| x.0).collect(),
                )
            })
            .collect();
        assert_eq!(
            sets,
            vec![
                (vec![-1, -3], vec![1]),
                (vec![-2], vec![1, 2]),
                (vec![-1], vec![]),
            ]
        );
        assert_eq!(p.long_term_sps_used, vec![true, false]);
        assert!(p.chroma_qp_offset_list_enabled && p.entry_points);
    }

    /// A B slice segment with everything x265 never writes: a slice RPS
    /// predicted from an SPS set (delta_idx), long-term pictures from the
    /// SPS and the slice, list modification, both weight tables, deblocking
    /// override, entry points and a header extension whose bytes need
    /// emulation prevention.
    #[test]
    fn b_slice_header_with_every_option() {
        let mut b = Bits::default();
        b.f(false).ue(0).f(false).u(3, 5); // not first, not dependent, address 3
        b.u(0, 2).ue(0).f(true).u(17, 8); // extra bits, B, pic_output, POC LSB
                                          // Slice RPS from set 1 (delta_idx 2), deltaRps -2: S0 -1 (used),
                                          // -2 (used), -4 (not used).
        b.f(false).f(true).ue(1).f(true).ue(1);
        b.f(false).f(true).f(true).f(false).f(false).f(true);
        b.ue(1).ue(1).u(0, 1).f(true).ue(2).u(7, 8).f(true).f(false); // long-term: 2 used
        b.f(true).f(true).f(true); // temporal MVP, SAO luma, chroma
        b.f(true).ue(2).ue(1); // 3 and 2 active references
                               // NumPicTotalCurr 4: 2-bit list entries.
        b.f(true).u(1, 2).u(2, 2).u(3, 2).f(true).u(0, 2).u(1, 2);
        b.f(false).f(true).f(false).ue(1); // mvd_l1_zero, cabac_init, from L1, ref 1
        b.ue(3).se(-1); // weight denominators
        b.f(true).f(false).f(true).f(false).f(true).f(false);
        b.se(1).se(-1).se(2).se(0).se(1).se(-2).se(3).se(4);
        b.f(false).f(false).f(true).f(false).se(1).se(1).se(1).se(1);
        b.ue(2).se(-3).se(1).se(-1).f(true); // merge, QP deltas, cu_chroma_qp_offset
        b.f(true).f(false).se(1).se(-1).f(true); // deblocking override, across slices
        b.ue(3).ue(9).u(100, 10).u(200, 10).u(300, 10); // entry points
        b.ue(3).u(0, 8).u(0, 8).u(1, 8); // extension 00 00 01
        let (nal, clear) = slice([0x02, 0x01], b.align());
        assert_eq!(parser().clear_bytes(&nal), Some(clear));
        assert!(
            epb(&b.out).len() > b.out.len(),
            "an emulation prevention byte counted"
        );
        // Another PPS id: not parsed (the caller leaves the unit clear).
        let mut other = Bits::default();
        other.f(true).ue(1);
        assert_eq!(
            parser().clear_bytes(&slice([0x02, 0x01], other.align()).0),
            None
        );
    }

    #[test]
    fn dependent_idr_and_sps_rps_slices() {
        let p = parser();
        // A dependent slice segment: address, entry points, extension only.
        let mut b = Bits::default();
        b.f(false).ue(0).f(true).u(7, 5).ue(0).ue(0);
        let (nal, clear) = slice([0x02, 0x01], b.align());
        assert_eq!(p.clear_bytes(&nal), Some(clear));
        // An IDR I slice: no POC or RPS; deblocking disabled by the PPS and
        // no SAO, so no slice_loop_filter_across_slices_enabled_flag.
        let mut b = Bits::default();
        b.f(true)
            .f(false)
            .ue(0)
            .u(3, 2)
            .ue(2)
            .f(true)
            .f(false)
            .f(false);
        b.se(2).se(0).se(0).f(false).f(false).ue(0).ue(0);
        let (nal, clear) = slice([0x28, 0x01], b.align());
        assert_eq!(p.clear_bytes(&nal), Some(clear));
        // A P slice naming SPS set 2 (2-bit index), no long-term pictures,
        // NumPicTotalCurr 1: no list modification.
        let mut b = Bits::default();
        b.f(true)
            .ue(0)
            .u(0, 2)
            .ue(1)
            .f(false)
            .u(3, 8)
            .f(true)
            .u(2, 2);
        b.ue(0).ue(0).f(false).f(false).f(false); // long-term, TMVP, SAO
        b.f(false).f(false); // override, cabac_init
        b.ue(0).se(0).f(false).f(false).f(false).f(false); // weights of 2 references
        b.ue(0).se(0).se(0).se(0).f(false).f(false).ue(0).ue(0);
        let (nal, clear) = slice([0x02, 0x01], b.align());
        assert_eq!(p.clear_bytes(&nal), Some(clear));
        // Parameter sets, SEI, reserved VCL types and other layers: clear.
        for header in [[0x40, 0x01], [0x4E, 0x01], [0x14, 0x01], [0x02, 0x09]] {
            let unit = [header[0], header[1], 1, 2, 3];
            assert_eq!(p.clear_bytes(&unit), Some(5));
        }
    }

    #[test]
    fn malformed_parameter_sets_and_slices_never_panic() {
        let (sps, pps) = (sps(), pps());
        for len in 0..sps.len() {
            let _ = HevcSliceHeaderParser::new(&sps[..len], &pps);
        }
        for len in 0..pps.len() {
            let _ = HevcSliceHeaderParser::new(&sps, &pps[..len]);
        }
        // SCC, multi-layer or 3D extensions: refused.
        let mut scc = pps.clone();
        let mut b = Bits::default();
        b.ue(0)
            .ue(0)
            .f(false)
            .f(false)
            .u(0, 3)
            .f(false)
            .f(false)
            .ue(0)
            .ue(0)
            .se(0);
        b.f(false)
            .f(false)
            .f(false)
            .se(0)
            .se(0)
            .f(false)
            .f(false)
            .f(false)
            .f(false);
        b.f(false)
            .f(false)
            .f(false)
            .f(false)
            .f(false)
            .f(false)
            .ue(0)
            .f(false);
        b.f(true).f(false).u(1, 3).u(0, 4);
        scc.truncate(2);
        scc.extend(epb(&b.align()));
        assert!(HevcSliceHeaderParser::new(&sps, &scc).is_none());
        // Random and truncated slices: an answer within the unit, or none.
        let p = parser();
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        for i in 0..20_000 {
            let len = i % 300;
            let mut unit: Vec<u8> = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    seed as u8
                })
                .collect();
            if let Some(b) = unit.first_mut() {
                *b &= 0x81 | (((i % 22) as u8) << 1); // mostly slice types
            }
            if let Some(b) = unit.get_mut(1) {
                *b = (*b & 0x07) | 1;
            }
            if let Some(n) = p.clear_bytes(&unit) {
                assert!(n <= unit.len());
            }
        }
    }
}
