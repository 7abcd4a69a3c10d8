//! H.264 / AVC (ITU-T H.264): Annex B NAL units, the sequence parameter set fields
//! CMAF and HLS need, and the `avcC` decoder configuration (ISO/IEC 14496-15 §5.3.3).

use super::bits::{rbsp, rbsp_len_in_payload, rbsp_prefix, BitReader};
use super::CodecError;

pub const NAL_SLICE: u8 = 1;
pub const NAL_IDR: u8 = 5;
pub const NAL_SEI: u8 = 6;
pub const NAL_SPS: u8 = 7;
pub const NAL_PPS: u8 = 8;
pub const NAL_AUD: u8 = 9;

pub fn nal_type(nal: &[u8]) -> u8 {
    nal.first().map_or(0, |b| b & 0x1F)
}

/// Whether an access unit in MP4 form (4-byte NAL lengths) holds an IDR
/// picture.
pub fn au_has_idr(au: &[u8]) -> bool {
    super::length_prefixed_nals(au).any(|nal| nal_type(nal) == NAL_IDR)
}

/// Splits an Annex B byte stream into NAL units (start codes removed).
pub fn annexb_nals(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    // Start codes end in 0x01; find those bytes with memchr (SIMD) and check the two
    // zeros before. Emulation prevention guarantees 00 00 01 never occurs inside a NAL.
    let starts: Vec<usize> = memchr::memchr_iter(1, data)
        .filter(|&i| i >= 2 && data[i - 1] == 0 && data[i - 2] == 0)
        .map(|i| i + 1)
        .collect();
    let mut ranges = Vec::with_capacity(starts.len());
    for (k, &s) in starts.iter().enumerate() {
        let mut end = starts.get(k + 1).map_or(data.len(), |&n| n - 3);
        // Trailing zero bytes belong to the next (4-byte) start code or are padding.
        while end > s && data[end - 1] == 0 {
            end -= 1;
        }
        if end > s {
            ranges.push(s..end);
        }
    }
    ranges.into_iter().map(move |r| &data[r])
}

/// What the packager needs from a sequence parameter set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sps {
    pub profile_idc: u8,
    pub constraint_flags: u8,
    pub level_idc: u8,
    pub chroma_format_idc: u32,
    pub bit_depth_luma: u32,
    pub bit_depth_chroma: u32,
    pub width: u32,
    pub height: u32,
}

fn is_high_profile(profile_idc: u8) -> bool {
    matches!(
        profile_idc,
        100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135
    )
}

impl Sps {
    /// Parses an SPS NAL unit (with its one-byte NAL header).
    pub fn parse(nal: &[u8]) -> Result<Sps, CodecError> {
        Self::parse_inner(nal).ok_or(CodecError::H264("malformed sequence parameter set"))
    }

    fn parse_inner(nal: &[u8]) -> Option<Sps> {
        if nal_type(nal) != NAL_SPS {
            return None;
        }
        let data = rbsp(nal.get(1..)?);
        let mut r = BitReader::new(&data);
        let profile_idc = r.bits(8)? as u8;
        let constraint_flags = r.bits(8)? as u8;
        let level_idc = r.bits(8)? as u8;
        let _sps_id = r.ue()?;
        let (mut chroma_format_idc, mut bit_depth_luma, mut bit_depth_chroma) = (1, 8, 8);
        let mut separate_colour_plane = false;
        if is_high_profile(profile_idc) {
            chroma_format_idc = r.ue()?;
            if chroma_format_idc > 3 {
                return None;
            }
            if chroma_format_idc == 3 {
                separate_colour_plane = r.flag()?;
            }
            bit_depth_luma = r.ue()?.checked_add(8)?;
            bit_depth_chroma = r.ue()?.checked_add(8)?;
            let _qpprime_y_zero_transform_bypass = r.flag()?;
            if r.flag()? {
                // seq_scaling_matrix_present_flag: skip the scaling lists.
                let lists = if chroma_format_idc == 3 { 12 } else { 8 };
                for i in 0..lists {
                    if r.flag()? {
                        let size = if i < 6 { 16 } else { 64 };
                        let (mut last, mut next) = (8i32, 8i32);
                        for _ in 0..size {
                            if next != 0 {
                                next = (last + r.se()? + 256) % 256;
                            }
                            last = if next == 0 { last } else { next };
                        }
                    }
                }
            }
        }
        let _log2_max_frame_num = r.ue()?;
        match r.ue()? {
            0 => {
                let _log2_max_poc_lsb = r.ue()?;
            }
            1 => {
                let _delta_pic_order_always_zero = r.flag()?;
                let _offset_for_non_ref_pic = r.se()?;
                let _offset_for_top_to_bottom = r.se()?;
                let cycle = r.ue()?;
                if cycle > 255 {
                    return None;
                }
                for _ in 0..cycle {
                    r.se()?;
                }
            }
            2 => {}
            _ => return None,
        }
        let _max_num_ref_frames = r.ue()?;
        let _gaps_in_frame_num_allowed = r.flag()?;
        let width_mbs = u64::from(r.ue()?) + 1;
        let height_map_units = u64::from(r.ue()?) + 1;
        let frame_mbs_only = r.flag()?;
        if !frame_mbs_only {
            let _mb_adaptive_frame_field = r.flag()?;
        }
        let _direct_8x8_inference = r.flag()?;
        let (mut crop_l, mut crop_r, mut crop_t, mut crop_b) = (0u64, 0u64, 0u64, 0u64);
        if r.flag()? {
            crop_l = r.ue()?.into();
            crop_r = r.ue()?.into();
            crop_t = r.ue()?.into();
            crop_b = r.ue()?.into();
        }
        let field_factor = if frame_mbs_only { 1 } else { 2 };
        let array_type = if separate_colour_plane {
            0
        } else {
            chroma_format_idc
        };
        let (crop_x, crop_y) = match array_type {
            1 => (2, 2 * field_factor),
            2 => (2, field_factor),
            _ => (1, field_factor),
        };
        let width = (width_mbs * 16).checked_sub(crop_x * (crop_l + crop_r))?;
        let height =
            (height_map_units * 16 * field_factor).checked_sub(crop_y * (crop_t + crop_b))?;
        if width == 0 || height == 0 || width > 16_384 || height > 16_384 {
            return None;
        }
        Some(Sps {
            profile_idc,
            constraint_flags,
            level_idc,
            chroma_format_idc,
            bit_depth_luma,
            bit_depth_chroma,
            width: width as u32,
            height: height as u32,
        })
    }

    /// RFC 6381 codec string, e.g. `avc1.64001f`.
    pub fn codec_string(&self) -> String {
        format!(
            "avc1.{:02x}{:02x}{:02x}",
            self.profile_idc, self.constraint_flags, self.level_idc
        )
    }
}

/// The parameter sets of one H.264 stream configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AvcConfig {
    pub sps: Sps,
    pub sps_nal: Vec<u8>,
    pub pps_nal: Vec<u8>,
}

impl AvcConfig {
    /// Reads an `AVCDecoderConfigurationRecord` (ISO/IEC 14496-15 §5.3.3.1,
    /// as `avcC` boxes and RTMP/FLV sequence headers carry it): the first SPS
    /// and PPS, and the NAL length size of the samples it describes (1, 2 or
    /// 4 bytes).
    pub fn from_decoder_configuration_record(
        record: &[u8],
    ) -> Result<(AvcConfig, usize), CodecError> {
        let bad = CodecError::H264("malformed AVCDecoderConfigurationRecord");
        let mut r = record;
        let head = take(&mut r, 6).ok_or(bad.clone())?;
        if head[0] != 1 {
            return Err(CodecError::H264(
                "unknown AVCDecoderConfigurationRecord version",
            ));
        }
        let length_size = usize::from(head[4] & 0x03) + 1;
        if length_size == 3 {
            return Err(CodecError::H264("3-byte NAL lengths"));
        }
        let mut sps_nal = None;
        for _ in 0..(head[5] & 0x1F) {
            let nal = take_sized(&mut r).ok_or(bad.clone())?;
            sps_nal.get_or_insert(nal);
        }
        let count = take(&mut r, 1).ok_or(bad.clone())?[0];
        let mut pps_nal = None;
        for _ in 0..count {
            let nal = take_sized(&mut r).ok_or(bad.clone())?;
            pps_nal.get_or_insert(nal);
        }
        let (Some(sps_nal), Some(pps_nal)) = (sps_nal, pps_nal) else {
            return Err(CodecError::H264(
                "no SPS or no PPS in the configuration record",
            ));
        };
        if nal_type(pps_nal) != 8 {
            return Err(CodecError::H264("the PPS array holds another NAL type"));
        }
        let sps = Sps::parse(sps_nal)?;
        Ok((
            AvcConfig {
                sps,
                sps_nal: sps_nal.to_vec(),
                pps_nal: pps_nal.to_vec(),
            },
            length_size,
        ))
    }

    /// The `AVCDecoderConfigurationRecord` carried in an `avcC` box.
    pub fn decoder_configuration_record(&self) -> Vec<u8> {
        let mut out = vec![
            1,
            self.sps.profile_idc,
            self.sps.constraint_flags,
            self.sps.level_idc,
            0xFC | 3, // lengthSizeMinusOne = 3: 4-byte NAL lengths
            0xE0 | 1, // one SPS
        ];
        out.extend_from_slice(&(self.sps_nal.len() as u16).to_be_bytes());
        out.extend_from_slice(&self.sps_nal);
        out.push(1); // one PPS
        out.extend_from_slice(&(self.pps_nal.len() as u16).to_be_bytes());
        out.extend_from_slice(&self.pps_nal);
        if matches!(self.sps.profile_idc, 100 | 110 | 122 | 144) {
            out.push(0xFC | (self.sps.chroma_format_idc as u8 & 0x03));
            out.push(0xF8 | (self.sps.bit_depth_luma.saturating_sub(8) as u8 & 0x07));
            out.push(0xF8 | (self.sps.bit_depth_chroma.saturating_sub(8) as u8 & 0x07));
            out.push(0); // no SPS extensions
        }
        out
    }
}

/// One access unit converted for MP4: 4-byte length-prefixed NAL units.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AvcSample {
    pub data: Vec<u8>,
    pub keyframe: bool,
    /// Parameter sets seen in this access unit, if any.
    pub sps: Option<Vec<u8>>,
    pub pps: Option<Vec<u8>>,
}

/// Converts an Annex B access unit to an MP4 sample. Access unit delimiters are
/// dropped (MP4 does not carry them); parameter sets stay in-band as well, so a
/// decoder joining at any IDR has them.
pub fn annexb_to_sample(au: &[u8]) -> Option<AvcSample> {
    let mut sample = AvcSample {
        data: Vec::with_capacity(au.len() + 16),
        keyframe: false,
        sps: None,
        pps: None,
    };
    let mut has_slice = false;
    for nal in annexb_nals(au) {
        match nal_type(nal) {
            NAL_AUD => continue,
            NAL_SPS => sample.sps = Some(nal.to_vec()),
            NAL_PPS => sample.pps = Some(nal.to_vec()),
            NAL_IDR => {
                sample.keyframe = true;
                has_slice = true;
            }
            NAL_SLICE => has_slice = true,
            _ => {}
        }
        sample
            .data
            .extend_from_slice(&(nal.len() as u32).to_be_bytes());
        sample.data.extend_from_slice(nal);
    }
    has_slice.then_some(sample)
}

/// [`annexb_to_sample`] for an access unit the caller owns (a PES payload): when
/// every kept NAL unit is introduced by a 4-byte start code and they follow each
/// other directly (the usual layout: AUD first, then the rest), the start codes
/// are overwritten with the NAL lengths in place and nothing is copied.
pub fn annexb_to_sample_owned(au: bytes::Bytes) -> Option<OwnedSample> {
    let mut keyframe = false;
    let mut has_slice = false;
    let (mut sps, mut pps) = (None, None);
    // (start of the NAL, end of the NAL) for the NAL units that stay.
    let mut kept: Vec<(usize, usize)> = Vec::new();
    let base = au.as_ptr() as usize;
    for nal in annexb_nals(&au) {
        let start = nal.as_ptr() as usize - base;
        match nal_type(nal) {
            NAL_AUD => continue,
            NAL_SPS => sps = Some(nal.to_vec()),
            NAL_PPS => pps = Some(nal.to_vec()),
            NAL_IDR => {
                keyframe = true;
                has_slice = true;
            }
            NAL_SLICE => has_slice = true,
            _ => {}
        }
        kept.push((start, start + nal.len()));
    }
    if !has_slice {
        return None;
    }
    let contiguous = kept.iter().enumerate().all(|(i, &(start, _))| {
        start >= 4 && au[start - 4..start] == [0, 0, 0, 1] && (i == 0 || kept[i - 1].1 == start - 4)
    });
    let (first, last) = (kept.first()?.0, kept.last()?.1);
    let data = match au.try_into_mut() {
        Ok(mut buf) if contiguous => {
            for &(start, end) in &kept {
                buf[start - 4..start].copy_from_slice(&((end - start) as u32).to_be_bytes());
            }
            buf.freeze().slice(first - 4..last)
        }
        Ok(buf) => copy_length_prefixed(&buf, &kept),
        Err(shared) => copy_length_prefixed(&shared, &kept),
    };
    Some(OwnedSample {
        data,
        keyframe,
        sps,
        pps,
    })
}

fn copy_length_prefixed(au: &[u8], kept: &[(usize, usize)]) -> bytes::Bytes {
    let mut out = Vec::with_capacity(au.len() + 4 * kept.len());
    for &(start, end) in kept {
        out.extend_from_slice(&((end - start) as u32).to_be_bytes());
        out.extend_from_slice(&au[start..end]);
    }
    bytes::Bytes::from(out)
}

/// An MP4 sample made from an owned access unit; see [`annexb_to_sample_owned`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedSample {
    pub data: bytes::Bytes,
    pub keyframe: bool,
    pub sps: Option<Vec<u8>>,
    pub pps: Option<Vec<u8>>,
}

/// The next `n` bytes of `r`, advancing it.
pub(crate) fn take<'a>(r: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    if r.len() < n {
        return None;
    }
    let (head, rest) = r.split_at(n);
    *r = rest;
    Some(head)
}

/// A 16-bit length and that many bytes (a parameter set in a configuration
/// record); empty sets are malformed.
pub(crate) fn take_sized<'a>(r: &mut &'a [u8]) -> Option<&'a [u8]> {
    let len = take(r, 2)?;
    let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
    take(r, len).filter(|nal| !nal.is_empty())
}

/// What slice header parsing needs from the SPS and PPS (ITU-T H.264 §7.3.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SliceHeaderParser {
    pps_id: u32,
    separate_colour_plane: bool,
    chroma_array_type: u32,
    log2_max_frame_num: u32,
    poc_type: u32,
    log2_max_poc_lsb: u32,
    delta_pic_order_always_zero: bool,
    frame_mbs_only: bool,
    pic_size_in_map_units: u64,
    entropy_coding_mode: bool,
    bottom_field_pic_order_in_frame_present: bool,
    num_slice_groups_minus1: u32,
    slice_group_map_type: u32,
    slice_group_change_rate: u32,
    num_ref_idx_default: [u32; 2],
    weighted_pred: bool,
    weighted_bipred_idc: u32,
    deblocking_filter_control_present: bool,
    redundant_pic_cnt_present: bool,
}

impl SliceHeaderParser {
    /// From the track's SPS and PPS NAL units (with their headers).
    pub fn new(sps: &[u8], pps: &[u8]) -> Option<Self> {
        if nal_type(sps) != NAL_SPS || nal_type(pps) != NAL_PPS {
            return None;
        }
        let data = rbsp(sps.get(1..)?);
        let mut r = BitReader::new(&data);
        let profile_idc = r.bits(8)? as u8;
        r.bits(16)?;
        let sps_id = r.ue()?;
        let mut chroma_format_idc = 1;
        let mut separate_colour_plane = false;
        if is_high_profile(profile_idc) {
            chroma_format_idc = r.ue()?;
            if chroma_format_idc > 3 {
                return None;
            }
            if chroma_format_idc == 3 {
                separate_colour_plane = r.flag()?;
            }
            r.ue()?;
            r.ue()?;
            r.flag()?;
            if r.flag()? {
                let lists = if chroma_format_idc == 3 { 12 } else { 8 };
                for i in 0..lists {
                    if r.flag()? {
                        skip_scaling_list(&mut r, if i < 6 { 16 } else { 64 })?;
                    }
                }
            }
        }
        let log2_max_frame_num = r.ue()?.checked_add(4).filter(|&v| v <= 16)?;
        let poc_type = r.ue()?;
        let (mut log2_max_poc_lsb, mut delta_pic_order_always_zero) = (0, false);
        match poc_type {
            0 => log2_max_poc_lsb = r.ue()?.checked_add(4).filter(|&v| v <= 16)?,
            1 => {
                delta_pic_order_always_zero = r.flag()?;
                r.se()?;
                r.se()?;
                let cycle = r.ue()?;
                if cycle > 255 {
                    return None;
                }
                for _ in 0..cycle {
                    r.se()?;
                }
            }
            2 => {}
            _ => return None,
        }
        r.ue()?; // max_num_ref_frames
        r.flag()?;
        let width_mbs = u64::from(r.ue()?) + 1;
        let height_map_units = u64::from(r.ue()?) + 1;
        let frame_mbs_only = r.flag()?;

        let data = rbsp(pps.get(1..)?);
        let mut r = BitReader::new(&data);
        let pps_id = r.ue()?;
        if r.ue()? != sps_id {
            return None;
        }
        let entropy_coding_mode = r.flag()?;
        let bottom_field_pic_order_in_frame_present = r.flag()?;
        let num_slice_groups_minus1 = r.ue()?;
        let (mut slice_group_map_type, mut slice_group_change_rate) = (0, 1);
        if num_slice_groups_minus1 > 0 {
            if num_slice_groups_minus1 > 7 {
                return None;
            }
            slice_group_map_type = r.ue()?;
            match slice_group_map_type {
                0 => {
                    for _ in 0..=num_slice_groups_minus1 {
                        r.ue()?;
                    }
                }
                2 => {
                    for _ in 0..num_slice_groups_minus1 {
                        r.ue()?;
                        r.ue()?;
                    }
                }
                3..=5 => {
                    r.flag()?;
                    slice_group_change_rate = r.ue()?.checked_add(1)?;
                }
                6 => {
                    let units = r.ue()?.checked_add(1)?;
                    let bits = 32 - num_slice_groups_minus1.leading_zeros();
                    for _ in 0..units.min(1 << 20) {
                        r.bits(bits)?;
                    }
                }
                _ => {}
            }
        }
        let num_ref_idx_default = [r.ue()?.checked_add(1)?, r.ue()?.checked_add(1)?];
        let weighted_pred = r.flag()?;
        let weighted_bipred_idc = r.bits(2)?;
        r.se()?; // pic_init_qp_minus26
        r.se()?; // pic_init_qs_minus26
        r.se()?; // chroma_qp_index_offset
        let deblocking_filter_control_present = r.flag()?;
        r.flag()?; // constrained_intra_pred_flag
        let redundant_pic_cnt_present = r.flag()?;
        Some(Self {
            pps_id,
            separate_colour_plane,
            chroma_array_type: if separate_colour_plane {
                0
            } else {
                chroma_format_idc
            },
            log2_max_frame_num,
            poc_type,
            log2_max_poc_lsb,
            delta_pic_order_always_zero,
            frame_mbs_only,
            pic_size_in_map_units: width_mbs * height_map_units,
            entropy_coding_mode,
            bottom_field_pic_order_in_frame_present,
            num_slice_groups_minus1,
            slice_group_map_type,
            slice_group_change_rate,
            num_ref_idx_default,
            weighted_pred,
            weighted_bipred_idc,
            deblocking_filter_control_present,
            redundant_pic_cnt_present,
        })
    }

    /// How many leading bytes of `nal` (from its NAL header, emulation
    /// prevention bytes counted) must stay clear under Common Encryption: the
    /// whole unit unless it is a slice (types 1 and 5), else its header and
    /// slice header, rounded up to whole bytes. `None` when the slice header
    /// cannot be parsed (another PPS, or malformed).
    pub fn clear_bytes(&self, nal: &[u8]) -> Option<usize> {
        let t = nal_type(nal);
        if t != NAL_SLICE && t != NAL_IDR {
            return Some(nal.len());
        }
        let payload = nal.get(1..)?;
        // The slice header is short: parse a bounded prefix (512 bytes of
        // payload at most), on the stack. Most headers fit in the first 64
        // RBSP bytes; a parse that runs out of them is redone on the whole
        // prefix. Reads only depend on the bits before them, so a parse that
        // succeeds on fewer bytes gives the same answer.
        let payload_prefix = &payload[..payload.len().min(512)];
        let mut buf = [0u8; 512];
        let short = rbsp_prefix(payload_prefix, &mut buf[..64]);
        let ref_idc = nal[0] >> 5 & 3;
        let bits = match self.slice_header_bits(&buf[..short], t, ref_idc) {
            Some(bits) => bits,
            None if short == 64 => {
                let n = rbsp_prefix(payload_prefix, &mut buf);
                self.slice_header_bits(&buf[..n], t, ref_idc)?
            }
            None => return None,
        };
        let in_payload = rbsp_len_in_payload(payload, bits.div_ceil(8))?;
        Some(1 + in_payload)
    }

    fn slice_header_bits(&self, data: &[u8], nal_type: u8, nal_ref_idc: u8) -> Option<usize> {
        let mut r = BitReader::new(data);
        r.ue()?; // first_mb_in_slice
        let slice_type = r.ue()? % 5;
        if r.ue()? != self.pps_id {
            return None;
        }
        if self.separate_colour_plane {
            r.bits(2)?;
        }
        r.bits(self.log2_max_frame_num)?;
        let mut field_pic = false;
        if !self.frame_mbs_only {
            field_pic = r.flag()?;
            if field_pic {
                r.flag()?;
            }
        }
        if nal_type == NAL_IDR {
            r.ue()?; // idr_pic_id
        }
        if self.poc_type == 0 {
            r.bits(self.log2_max_poc_lsb)?;
            if self.bottom_field_pic_order_in_frame_present && !field_pic {
                r.se()?;
            }
        }
        if self.poc_type == 1 && !self.delta_pic_order_always_zero {
            r.se()?;
            if self.bottom_field_pic_order_in_frame_present && !field_pic {
                r.se()?;
            }
        }
        if self.redundant_pic_cnt_present {
            r.ue()?;
        }
        const P: u32 = 0;
        const B: u32 = 1;
        const I: u32 = 2;
        const SP: u32 = 3;
        const SI: u32 = 4;
        if slice_type == B {
            r.flag()?; // direct_spatial_mv_pred_flag
        }
        let mut num_ref_idx = self.num_ref_idx_default;
        if matches!(slice_type, P | SP | B) && r.flag()? {
            num_ref_idx[0] = r.ue()?.checked_add(1)?;
            if slice_type == B {
                num_ref_idx[1] = r.ue()?.checked_add(1)?;
            }
        }
        if num_ref_idx[0] > 32 || num_ref_idx[1] > 32 {
            return None;
        }
        // ref_pic_list_modification
        let lists = match slice_type {
            I | SI => 0,
            B => 2,
            _ => 1,
        };
        for _ in 0..lists {
            if r.flag()? {
                for _ in 0..=256 {
                    match r.ue()? {
                        0..=2 => {
                            r.ue()?;
                        }
                        3 => break,
                        _ => return None,
                    }
                }
            }
        }
        if (self.weighted_pred && matches!(slice_type, P | SP))
            || (self.weighted_bipred_idc == 1 && slice_type == B)
        {
            r.ue()?; // luma_log2_weight_denom
            if self.chroma_array_type != 0 {
                r.ue()?;
            }
            for &n in &num_ref_idx[..if slice_type == B { 2 } else { 1 }] {
                for _ in 0..n {
                    if r.flag()? {
                        r.se()?;
                        r.se()?;
                    }
                    if self.chroma_array_type != 0 && r.flag()? {
                        for _ in 0..4 {
                            r.se()?;
                        }
                    }
                }
            }
        }
        if nal_ref_idc != 0 {
            // dec_ref_pic_marking
            if nal_type == NAL_IDR {
                r.flag()?;
                r.flag()?;
            } else if r.flag()? {
                for _ in 0..=256 {
                    match r.ue()? {
                        0 => break,
                        1 | 2 | 4 | 6 => {
                            r.ue()?;
                        }
                        3 => {
                            r.ue()?;
                            r.ue()?;
                        }
                        5 => {}
                        _ => return None,
                    }
                }
            }
        }
        if self.entropy_coding_mode && !matches!(slice_type, I | SI) {
            r.ue()?; // cabac_init_idc
        }
        r.se()?; // slice_qp_delta
        if matches!(slice_type, SP | SI) {
            if slice_type == SP {
                r.flag()?;
            }
            r.se()?;
        }
        if self.deblocking_filter_control_present && r.ue()? != 1 {
            r.se()?;
            r.se()?;
        }
        if self.num_slice_groups_minus1 > 0 && (3..=5).contains(&self.slice_group_map_type) {
            let units = self.pic_size_in_map_units / u64::from(self.slice_group_change_rate) + 1;
            // Ceil(Log2(units))
            let bits = 64 - (units - 1).leading_zeros();
            r.bits(bits.min(32))?;
        }
        Some(r.position())
    }
}

fn skip_scaling_list(r: &mut BitReader<'_>, size: usize) -> Option<()> {
    let (mut last, mut next) = (8i32, 8i32);
    for _ in 0..size {
        if next != 0 {
            next = (last + r.se()? + 256) % 256;
        }
        last = if next == 0 { last } else { next };
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owned_conversion_matches_the_copying_one() {
        let cases: [&[u8]; 4] = [
            // AUD, SPS, PPS, IDR with 4-byte start codes: converted in place.
            &[
                0, 0, 0, 1, 0x09, 0xF0, 0, 0, 0, 1, 0x67, 0xAA, 0, 0, 0, 1, 0x68, 0xBB, 0, 0, 0, 1,
                0x65, 1, 2,
            ],
            // Mixed 3- and 4-byte start codes: copied.
            &[
                0, 0, 0, 1, 0x09, 0xF0, 0, 0, 1, 0x41, 9, 9, 0, 0, 0, 1, 0x41, 7,
            ],
            // Trailing zeros between NAL units: copied.
            &[0, 0, 0, 1, 0x41, 5, 0, 0, 0, 0, 0, 1, 0x41, 6],
            // No slice at all.
            &[0, 0, 0, 1, 0x09, 0xF0],
        ];
        for au in cases {
            let copied = annexb_to_sample(au);
            let owned = annexb_to_sample_owned(bytes::Bytes::copy_from_slice(au));
            assert_eq!(copied.is_some(), owned.is_some());
            if let (Some(c), Some(o)) = (copied, owned) {
                assert_eq!(&o.data[..], &c.data[..]);
                assert_eq!((o.keyframe, o.sps, o.pps), (c.keyframe, c.sps, c.pps));
            }
        }
    }

    /// SPS of x264 at 1280x720, High profile, level 3.1 (from `ffmpeg -f lavfi -i
    /// testsrc2=size=1280x720 -c:v libx264`).
    const SPS_720P_HIGH: &[u8] = &[
        0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9, 0x40, 0x50, 0x05, 0xbb, 0x01, 0x6a, 0x02, 0x02, 0x02,
        0x80, 0x00, 0x00, 0x03, 0x00, 0x80, 0x00, 0x00, 0x1e, 0x07, 0x8c, 0x18, 0xcb,
    ];

    #[test]
    fn parses_sps_of_a_real_encoder() {
        let sps = Sps::parse(SPS_720P_HIGH).unwrap();
        assert_eq!((sps.width, sps.height), (1280, 720));
        assert_eq!(sps.codec_string(), "avc1.64001f");
        assert_eq!(sps.chroma_format_idc, 1);
    }

    #[test]
    fn truncated_sps_never_panics_or_lies() {
        let full = Sps::parse(SPS_720P_HIGH).unwrap();
        for len in 0..SPS_720P_HIGH.len() {
            // Either an error, or (when only the unparsed VUI was cut) the same answer.
            if let Ok(sps) = Sps::parse(&SPS_720P_HIGH[..len]) {
                assert_eq!(sps, full, "len {len}");
            }
        }
        assert!(Sps::parse(&SPS_720P_HIGH[..8]).is_err());
    }

    #[test]
    fn annexb_split_and_sample_conversion() {
        let au = [
            0, 0, 0, 1, 0x09, 0xF0, // AUD
            0, 0, 0, 1, 0x67, 0xAA, // SPS (not a real one)
            0, 0, 1, 0x68, 0xBB, // PPS
            0, 0, 1, 0x65, 0x01, 0x02, 0x00, // IDR with a trailing zero
        ];
        let nals: Vec<&[u8]> = annexb_nals(&au).collect();
        assert_eq!(nals.len(), 4);
        let s = annexb_to_sample(&au).unwrap();
        assert!(s.keyframe);
        assert_eq!(s.sps.as_deref(), Some(&[0x67, 0xAA][..]));
        assert_eq!(
            s.data,
            vec![0, 0, 0, 2, 0x67, 0xAA, 0, 0, 0, 2, 0x68, 0xBB, 0, 0, 0, 3, 0x65, 1, 2]
        );
        assert!(annexb_to_sample(&[0, 0, 1, 0x09, 0xF0]).is_none());
    }
}
