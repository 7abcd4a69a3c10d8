//! Structural checks of what the writers produce; decoding with ffmpeg is checked
//! by the fixture tests in `tests/`.

use bytes::Bytes;

use super::*;
use crate::codec::aac::AacConfig;
use crate::codec::h264::{AvcConfig, Sps};
use crate::media::{CodecConfig, Sample, TrackInfo};

/// A parsed box: fourcc, payload range.
#[derive(Debug)]
pub(crate) struct Bx<'a> {
    pub(crate) fourcc: [u8; 4],
    pub(crate) body: &'a [u8],
}

/// Splits a buffer into consecutive boxes, checking every size fits.
pub(crate) fn boxes(mut buf: &[u8]) -> Vec<Bx<'_>> {
    let mut out = Vec::new();
    while !buf.is_empty() {
        assert!(buf.len() >= 8, "truncated box header");
        let size = u32::from_be_bytes(buf[..4].try_into().unwrap()) as usize;
        assert!(
            size >= 8 && size <= buf.len(),
            "box size {size} of {}",
            buf.len()
        );
        out.push(Bx {
            fourcc: buf[4..8].try_into().unwrap(),
            body: &buf[8..size],
        });
        buf = &buf[size..];
    }
    out
}

fn child<'a>(parent: &'a [u8], fourcc: &[u8; 4], skip: usize) -> &'a [u8] {
    boxes(&parent[skip..])
        .into_iter()
        .find(|b| &b.fourcc == fourcc)
        .unwrap_or_else(|| panic!("no {}", String::from_utf8_lossy(fourcc)))
        .body
}

fn tracks() -> Vec<TrackInfo> {
    vec![
        TrackInfo {
            id: 1,
            timescale: 90_000,
            codec: CodecConfig::Avc(AvcConfig {
                sps: Sps {
                    profile_idc: 66,
                    constraint_flags: 0xC0,
                    level_idc: 30,
                    chroma_format_idc: 1,
                    bit_depth_luma: 8,
                    bit_depth_chroma: 8,
                    width: 640,
                    height: 360,
                },
                sps_nal: vec![0x67, 0x42, 0xC0, 0x1E],
                pps_nal: vec![0x68, 0xCE],
            }),
        },
        TrackInfo {
            id: 2,
            timescale: 48_000,
            codec: CodecConfig::Aac(AacConfig {
                object_type: 2,
                sample_rate_index: 3,
                sample_rate: 48_000,
                channel_config: 2,
            }),
        },
    ]
}

#[test]
fn init_segment_structure() {
    let init = write_init(&tracks());
    let top = boxes(&init);
    assert_eq!(&top[0].fourcc, b"ftyp");
    assert_eq!(&top[1].fourcc, b"moov");
    let moov = top[1].body;
    let traks: Vec<Bx<'_>> = boxes(moov)
        .into_iter()
        .filter(|b| &b.fourcc == b"trak")
        .collect();
    assert_eq!(traks.len(), 2);
    let stsd = child(
        child(
            child(child(traks[0].body, b"mdia", 0), b"minf", 0),
            b"stbl",
            0,
        ),
        b"stsd",
        0,
    );
    // stsd: version/flags + entry_count, then avc1 with 78 bytes of fields before avcC.
    let avc1 = child(stsd, b"avc1", 8);
    assert_eq!(u16::from_be_bytes([avc1[24], avc1[25]]), 640);
    assert_eq!(u16::from_be_bytes([avc1[26], avc1[27]]), 360);
    let avcc = child(avc1, b"avcC", 78);
    assert_eq!(&avcc[..4], &[1, 66, 0xC0, 30]);
    let mvex = child(moov, b"mvex", 0);
    assert_eq!(boxes(mvex).len(), 2);
}

#[test]
fn fragment_offsets_point_at_each_tracks_samples() {
    let video = vec![
        Sample {
            dts: 900_000,
            duration: 3000,
            cts_offset: 6000,
            keyframe: true,
            data: Bytes::from_static(b"VVVV"),
        },
        Sample {
            dts: 903_000,
            duration: 3000,
            cts_offset: -3000,
            keyframe: false,
            data: Bytes::from_static(b"vv"),
        },
    ];
    let audio = vec![Sample {
        dts: 480_000,
        duration: 1024,
        cts_offset: 0,
        keyframe: true,
        data: Bytes::from_static(b"AAA"),
    }];
    let frag = write_fragment(7, &tracks(), &[video, audio]);
    let top = boxes(&frag);
    assert_eq!(&top[0].fourcc, b"moof");
    assert_eq!(&top[1].fourcc, b"mdat");
    assert_eq!(top[1].body, b"VVVVvvAAA");
    let moof_size = top[0].body.len() + 8;
    let trafs: Vec<Bx<'_>> = boxes(top[0].body)
        .into_iter()
        .filter(|b| &b.fourcc == b"traf")
        .collect();
    let mut expected_offset = moof_size + 8;
    for (traf, (tfdt_want, bytes)) in trafs.iter().zip([(900_000u64, 6), (480_000, 3)]) {
        let tfdt = child(traf.body, b"tfdt", 0);
        assert_eq!(tfdt[0], 1, "64-bit tfdt");
        assert_eq!(
            u64::from_be_bytes(tfdt[4..12].try_into().unwrap()),
            tfdt_want
        );
        let trun = child(traf.body, b"trun", 0);
        let offset = u32::from_be_bytes(trun[8..12].try_into().unwrap()) as usize;
        assert_eq!(offset, expected_offset);
        expected_offset += bytes;
    }
    // Second video sample: non-sync flags and a negative composition offset.
    let trun = child(trafs[0].body, b"trun", 0);
    let second = &trun[12 + 16..12 + 32];
    assert_eq!(
        u32::from_be_bytes(second[8..12].try_into().unwrap()),
        0x0101_0000
    );
    assert_eq!(
        i32::from_be_bytes(second[12..16].try_into().unwrap()),
        -3000
    );
}
