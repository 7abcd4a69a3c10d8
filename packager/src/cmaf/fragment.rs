//! CMAF fragments: `moof` + `mdat` (ISO/IEC 14496-12 §8.8), one `traf` per track,
//! 64-bit `tfdt`, `trun` with per-sample duration, size, flags and signed
//! composition offsets. A part is one fragment; a segment is its parts in order.

use super::boxes::BoxWriter;
use super::cenc::{self, TrafCrypt};
use crate::media::{Sample, TrackInfo, TrackKind};

const TFHD_DEFAULT_BASE_IS_MOOF: u32 = 0x02_0000;
const TRUN_DATA_OFFSET: u32 = 0x0001;
const TRUN_SAMPLE_DURATION: u32 = 0x0100;
const TRUN_SAMPLE_SIZE: u32 = 0x0200;
const TRUN_SAMPLE_FLAGS: u32 = 0x0400;
const TRUN_SAMPLE_CTO: u32 = 0x0800;

/// sample_depends_on = 2 (independent), sample_is_non_sync_sample = 0.
const SYNC_SAMPLE: u32 = 0x0200_0000;
/// sample_depends_on = 1, sample_is_non_sync_sample = 1.
const NON_SYNC_SAMPLE: u32 = 0x0101_0000;

/// Writes one fragment holding `samples[i]` for `tracks[i]` (tracks with no samples
/// get no `traf`). `sequence` is the `mfhd` sequence number.
pub fn write_fragment(sequence: u32, tracks: &[TrackInfo], samples: &[Vec<Sample>]) -> Vec<u8> {
    write(sequence, tracks, samples, &[])
}

/// [`write_fragment`] for one track whose clear `samples` are encrypted as
/// `crypt` ([`cenc::TrackCrypt::prepare`]) says, each where it lands in the
/// `mdat`: the `traf` also carries what `crypt` describes (`senc`, `saiz`,
/// `saio`; `sbgp`/`sgpd` and a `pssh` after a rotation).
pub(crate) fn write_protected_fragment(
    sequence: u32,
    track: &TrackInfo,
    samples: &[Sample],
    crypt: &TrafCrypt,
) -> Vec<u8> {
    write(
        sequence,
        std::slice::from_ref(track),
        &[samples],
        std::slice::from_ref(crypt),
    )
}

/// `crypts[i]`, when present, protects `tracks[i]`.
fn write<S: AsRef<[Sample]>>(
    sequence: u32,
    tracks: &[TrackInfo],
    samples: &[S],
    crypts: &[TrafCrypt],
) -> Vec<u8> {
    // Size it once: the moof is ~100 bytes per track plus 16 per sample.
    let count: usize = samples.iter().map(|ss| ss.as_ref().len()).sum();
    let media: usize = samples
        .iter()
        .flat_map(AsRef::as_ref)
        .map(|s| s.data.len())
        .sum();
    let mut w = BoxWriter::with_capacity(64 + 112 * tracks.len() + 16 * count + 8 + media);
    let mut offset_fields = Vec::new();
    let mut aux_fields = Vec::new();
    w.bx(b"moof", |w| {
        w.full(b"mfhd", 0, 0, |w| w.u32(sequence));
        for (i, (t, ss)) in tracks.iter().zip(samples).enumerate() {
            let ss = ss.as_ref();
            let Some(first) = ss.first() else { continue };
            w.bx(b"traf", |w| {
                w.full(b"tfhd", 0, TFHD_DEFAULT_BASE_IS_MOOF, |w| w.u32(t.id));
                w.full(b"tfdt", 1, 0, |w| w.u64(first.dts.max(0) as u64));
                let flags = TRUN_DATA_OFFSET
                    | TRUN_SAMPLE_DURATION
                    | TRUN_SAMPLE_SIZE
                    | TRUN_SAMPLE_FLAGS
                    | TRUN_SAMPLE_CTO;
                w.full(b"trun", 1, flags, |w| {
                    w.u32(ss.len() as u32);
                    offset_fields.push(w.pos());
                    w.i32(0); // data_offset, patched below
                    for s in ss {
                        w.u32(s.duration);
                        w.u32(s.data.len() as u32);
                        let sync = s.keyframe || t.kind() == TrackKind::Audio;
                        w.u32(if sync { SYNC_SAMPLE } else { NON_SYNC_SAMPLE });
                        w.i32(s.cts_offset);
                    }
                });
                if let Some(c) = crypts.get(i) {
                    aux_fields.extend(cenc::boxes::write_traf_boxes(w, c));
                }
            });
        }
        // A rotated key is announced where players look for new init data.
        let rotated: Vec<[u8; 16]> = crypts
            .iter()
            .filter_map(|c| c.rotated.as_ref().map(|k| k.kid))
            .collect();
        if !rotated.is_empty() {
            cenc::boxes::write_common_pssh(w, &rotated);
        }
    });
    // saio offsets are relative to the moof, which starts the buffer.
    for (field, senc_data) in aux_fields {
        w.patch_u32(field, senc_data as u32);
    }
    let moof_len = w.pos();
    let mdat_len = media;
    // data_offset is relative to the start of the moof (default-base-is-moof).
    let mut data_start = moof_len + 8;
    for (at, ss) in offset_fields
        .into_iter()
        .zip(samples.iter().map(AsRef::as_ref).filter(|s| !s.is_empty()))
    {
        w.patch_u32(at, data_start as u32);
        data_start += ss.iter().map(|s| s.data.len()).sum::<usize>();
    }
    w.u32((8 + mdat_len) as u32);
    w.bytes(b"mdat");
    for (i, ss) in samples.iter().enumerate() {
        let crypt = crypts.get(i);
        for (j, s) in ss.as_ref().iter().enumerate() {
            let at = w.pos();
            w.bytes(&s.data);
            if let Some(c) = crypt {
                // Encrypted in place while the sample is in cache; the
                // sample itself stays clear.
                c.encrypt_sample(j, &mut w.buf[at..]);
            }
        }
    }
    w.buf
}
