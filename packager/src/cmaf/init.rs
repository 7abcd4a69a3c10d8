//! The CMAF header / HLS initialization segment: `ftyp` + `moov` (ISO/IEC 14496-12,
//! ISO/IEC 23000-19 §7.3), one `trak` per track, `mvex` for fragmented samples.

use super::boxes::{BoxWriter, UNITY_MATRIX};
use super::cenc::{self, ContentKey, TrackCrypt};
use crate::codec::aac::AacConfig;
use crate::codec::h264::AvcConfig;
use crate::codec::h265::HevcConfig;
use crate::codec::opus::{OpusConfig, OPUS_CLOCK};
use crate::media::{CodecConfig, TrackInfo, TrackKind};

/// Writes the initialization segment for `tracks`.
pub fn write_init(tracks: &[TrackInfo]) -> Vec<u8> {
    write_protected_init(tracks, &[])
}

/// [`write_init`] with `crypts[i]`, when there, protecting `tracks[i]`: its
/// sample entry becomes `encv`/`enca` with a `sinf`, and `moov` ends with a
/// common `pssh` for the default KIDs, then the configured extra `pssh` boxes.
pub fn write_protected_init(tracks: &[TrackInfo], crypts: &[Option<&TrackCrypt>]) -> Vec<u8> {
    let mut w = BoxWriter::new();
    w.bx(b"ftyp", |w| {
        w.bytes(b"iso6");
        w.u32(0);
        for brand in [b"iso6", b"cmfc", b"mp41", b"dash"] {
            w.bytes(brand);
        }
    });
    w.bx(b"moov", |w| {
        w.full(b"mvhd", 0, 0, |w| {
            w.u32(0); // creation_time
            w.u32(0); // modification_time
            w.u32(1000); // timescale
            w.u32(0); // duration: unknown, fragmented
            w.u32(0x0001_0000); // rate 1.0
            w.u16(0x0100); // volume 1.0
            w.zeros(10);
            UNITY_MATRIX.iter().for_each(|&m| w.u32(m));
            w.zeros(24); // pre_defined
            w.u32(tracks.iter().map(|t| t.id).max().unwrap_or(0) + 1);
        });
        for (i, t) in tracks.iter().enumerate() {
            write_trak(w, t, crypts.get(i).copied().flatten());
        }
        w.bx(b"mvex", |w| {
            for t in tracks {
                w.full(b"trex", 0, 0, |w| {
                    w.u32(t.id);
                    w.u32(1); // default_sample_description_index
                    w.u32(0);
                    w.u32(0);
                    w.u32(0);
                });
            }
        });
        let protected: Vec<&TrackCrypt> = crypts.iter().copied().flatten().collect();
        let mut kids: Vec<[u8; 16]> = protected.iter().map(|c| c.default_kid).collect();
        kids.dedup();
        if !kids.is_empty() {
            cenc::boxes::write_common_pssh(w, &kids);
        }
        if let Some(c) = protected.first() {
            for pssh in &c.encryption().extra_pssh {
                w.bytes(pssh);
            }
        }
    });
    w.buf
}

fn write_trak(w: &mut BoxWriter, t: &TrackInfo, crypt: Option<&TrackCrypt>) {
    let (width, height) = t.resolution().unwrap_or((0, 0));
    let video = t.kind() == TrackKind::Video;
    w.bx(b"trak", |w| {
        w.full(b"tkhd", 0, 0x3, |w| {
            w.u32(0);
            w.u32(0);
            w.u32(t.id);
            w.u32(0); // reserved
            w.u32(0); // duration
            w.zeros(8);
            w.u16(0); // layer
            w.u16(0); // alternate_group
            w.u16(if video { 0 } else { 0x0100 }); // volume
            w.u16(0);
            UNITY_MATRIX.iter().for_each(|&m| w.u32(m));
            w.u32(width << 16);
            w.u32(height << 16);
        });
        w.bx(b"mdia", |w| {
            w.full(b"mdhd", 0, 0, |w| {
                w.u32(0);
                w.u32(0);
                w.u32(t.timescale);
                w.u32(0);
                w.u16(0x55C4); // language "und"
                w.u16(0);
            });
            w.full(b"hdlr", 0, 0, |w| {
                w.u32(0);
                w.bytes(if video { b"vide" } else { b"soun" });
                w.zeros(12);
                w.bytes(if video {
                    b"Brook video\0"
                } else {
                    b"Brook audio\0"
                });
            });
            w.bx(b"minf", |w| {
                if video {
                    w.full(b"vmhd", 0, 1, |w| w.zeros(8));
                } else {
                    w.full(b"smhd", 0, 0, |w| w.zeros(4));
                }
                w.bx(b"dinf", |w| {
                    w.full(b"dref", 0, 0, |w| {
                        w.u32(1);
                        w.full(b"url ", 0, 1, |_| {}); // media is in the same file
                    })
                });
                w.bx(b"stbl", |w| {
                    w.full(b"stsd", 0, 0, |w| {
                        w.u32(1);
                        let sinf = crypt.and_then(|c| Some((c, c.init_key()?)));
                        let at = w.pos();
                        match &t.codec {
                            CodecConfig::Avc(c) => write_avc1(w, c),
                            CodecConfig::Hevc(c) => write_hvc1(w, c),
                            CodecConfig::Aac(c) => write_mp4a(w, c, t.id),
                            CodecConfig::Opus(c) => write_opus(w, c),
                        }
                        if let Some((c, key)) = sinf {
                            protect_entry(w, at, c, key);
                        }
                    });
                    w.full(b"stts", 0, 0, |w| w.u32(0));
                    w.full(b"stsc", 0, 0, |w| w.u32(0));
                    w.full(b"stsz", 0, 0, |w| {
                        w.u32(0);
                        w.u32(0)
                    });
                    w.full(b"stco", 0, 0, |w| w.u32(0));
                });
            });
        });
    });
}

/// Turns the sample entry written at `at` into `encv`/`enca` (ISO/IEC 23001-7
/// §8.12): the original fourcc moves to `frma`, a `sinf` goes at its end.
fn protect_entry(w: &mut BoxWriter, at: usize, c: &TrackCrypt, key: &ContentKey) {
    let mut original = [0u8; 4];
    original.copy_from_slice(&w.buf[at + 4..at + 8]);
    let protected = match c.kind {
        TrackKind::Video => b"encv",
        TrackKind::Audio => b"enca",
    };
    w.buf[at + 4..at + 8].copy_from_slice(protected);
    let enc = c.encryption();
    let pattern = cenc::pattern(enc.scheme, c.kind);
    cenc::boxes::write_sinf(w, &original, enc.scheme, pattern, enc.iv_size(), key);
    let size = (w.pos() - at) as u32;
    w.patch_u32(at, size);
}

fn write_avc1(w: &mut BoxWriter, c: &AvcConfig) {
    let (width, height) = (c.sps.width, c.sps.height);
    let record = c.decoder_configuration_record();
    write_visual_entry(w, b"avc1", width, height, b"avcC", &record);
}

fn write_hvc1(w: &mut BoxWriter, c: &HevcConfig) {
    let (width, height) = (c.sps.width, c.sps.height);
    let record = c.decoder_configuration_record();
    write_visual_entry(w, b"hvc1", width, height, b"hvcC", &record);
}

/// A VisualSampleEntry (ISO/IEC 14496-12 §12.1.3) with its configuration box.
fn write_visual_entry(
    w: &mut BoxWriter,
    fourcc: &[u8; 4],
    width: u32,
    height: u32,
    config_box: &[u8; 4],
    config: &[u8],
) {
    w.bx(fourcc, |w| {
        w.zeros(6);
        w.u16(1); // data_reference_index
        w.zeros(16); // pre_defined, reserved
        w.u16(width as u16);
        w.u16(height as u16);
        w.u32(0x0048_0000); // 72 dpi
        w.u32(0x0048_0000);
        w.u32(0);
        w.u16(1); // frame_count
        w.zeros(32); // compressorname
        w.u16(0x0018); // depth
        w.u16(0xFFFF); // pre_defined = -1
        w.bx(config_box, |w| w.bytes(config));
    });
}

fn write_mp4a(w: &mut BoxWriter, c: &AacConfig, track_id: u32) {
    w.bx(b"mp4a", |w| {
        w.zeros(6);
        w.u16(1);
        w.zeros(8);
        w.u16(c.channels());
        w.u16(16); // samplesize
        w.u32(0);
        w.u32(c.sample_rate.min(0xFFFF) << 16);
        w.full(b"esds", 0, 0, |w| {
            let asc = c.audio_specific_config();
            // ES_Descriptor(DecoderConfigDescriptor(DecoderSpecificInfo), SLConfigDescriptor)
            let dsi_len = asc.len();
            let dcd_len = 13 + 2 + dsi_len;
            let es_len = 3 + 2 + dcd_len + 3;
            w.u8(0x03);
            w.u8(es_len as u8);
            w.u16(track_id as u16);
            w.u8(0);
            w.u8(0x04);
            w.u8(dcd_len as u8);
            w.u8(0x40); // Audio ISO/IEC 14496-3
            w.u8(0x15); // streamType audio (5) << 2 | 1
            w.bytes(&[0, 0, 0]); // bufferSizeDB
            w.u32(0); // maxBitrate
            w.u32(0); // avgBitrate
            w.u8(0x05);
            w.u8(dsi_len as u8);
            w.bytes(&asc);
            w.u8(0x06);
            w.u8(1);
            w.u8(0x02);
        });
    });
}

fn write_opus(w: &mut BoxWriter, c: &OpusConfig) {
    w.bx(b"Opus", |w| {
        w.zeros(6);
        w.u16(1);
        w.zeros(8);
        w.u16(u16::from(c.channels));
        w.u16(16);
        w.u32(0);
        w.u32(OPUS_CLOCK << 16);
        w.bx(b"dOps", |w| w.bytes(&c.dops()));
    });
}
