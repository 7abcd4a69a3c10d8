use brook_packager::frontend::{FrontEndEvent, TsFrontEnd};

use super::*;

const H264_AAC: &[u8] =
    include_bytes!("../../../../../packager/tests/fixtures/lavfi_h264_aac_zerolatency.ts");
const H265_AAC: &[u8] = include_bytes!("../../../../../packager/tests/fixtures/lavfi_h265_aac.ts");

/// Where the RTP clocks start (random on the wire; retina extends them to 64
/// bits, so a start just below the 32-bit wrap crosses it without a step).
const VIDEO_RTP_START: i64 = 0xFFFF_0000;
const AUDIO_RTP_START: i64 = 12_345;
const T0: u64 = 1_795_000_000_000;

/// What retina would hand over for a camera sending this capture: the
/// configuration records, then each frame with RTP timestamps from a random
/// start and an arrival time that follows the media clock (audio 20 ms later
/// than its media time, as an encoder's audio path tends to be).
struct Camera {
    record: Vec<u8>,
    codec: VideoCodec,
    asc: Vec<u8>,
    sample_rate: u32,
    frames: Vec<Frame>,
}

fn camera(ts: &[u8]) -> Camera {
    let mut demux = TsFrontEnd::default();
    demux.push(ts).unwrap();
    demux.flush().unwrap();
    let (mut tracks, mut frames) = (None, Vec::new());
    while let Some(ev) = demux.poll() {
        match ev {
            FrontEndEvent::Tracks(t) => {
                tracks.get_or_insert(t);
            }
            FrontEndEvent::Frame(f) => frames.push(f),
            _ => {}
        }
    }
    let tracks = tracks.unwrap();
    let (record, codec) = match &tracks[0].codec {
        CodecConfig::Avc(c) => (c.decoder_configuration_record(), VideoCodec::H264),
        CodecConfig::Hevc(c) => (c.decoder_configuration_record(), VideoCodec::H265),
        other => panic!("{other:?}"),
    };
    let CodecConfig::Aac(aac) = &tracks[1].codec else {
        panic!("no AAC");
    };
    assert_eq!(tracks[0].timescale, VIDEO_TIMESCALE);
    Camera {
        record,
        codec,
        asc: aac.audio_specific_config().to_vec(),
        sample_rate: aac.sample_rate,
        frames,
    }
}

impl Camera {
    /// Feeds every frame in order; returns what came out.
    fn play(&self, media: &mut RtspMedia) -> Vec<Out> {
        media.set_video(self.codec, &self.record).unwrap();
        media.set_audio(&self.asc).unwrap();
        let mut out = Vec::new();
        let start = self
            .frames
            .iter()
            .map(|f| self.media_ms(f))
            .min()
            .unwrap_or(0);
        for f in &self.frames {
            let ms = |f: &Frame| u64::try_from(self.media_ms(f) - start).unwrap_or(0);
            if f.track == 0 {
                media
                    .video(
                        VideoIn {
                            timestamp: VIDEO_RTP_START + f.pts,
                            clock_rate: 90_000,
                            random_access: f.keyframe,
                            loss: 0,
                            arrival: UnixMillis(T0 + ms(f)),
                            data: &f.data,
                        },
                        &mut out,
                    )
                    .unwrap();
            } else {
                media
                    .audio(
                        AudioIn {
                            timestamp: AUDIO_RTP_START + f.dts,
                            clock_rate: self.sample_rate,
                            frame_length: 1024,
                            arrival: UnixMillis(T0 + 20 + ms(f)),
                            data: &f.data,
                        },
                        &mut out,
                    )
                    .unwrap();
            }
            media.check_invariants();
        }
        out
    }

    /// A source frame's media time, ms.
    fn media_ms(&self, f: &Frame) -> i64 {
        if f.track == 0 {
            f.pts * 1000 / 90_000
        } else {
            f.dts * 1000 / i64::from(self.sample_rate)
        }
    }
}

fn frames(out: &[Out], track: usize) -> Vec<&Frame> {
    out.iter()
        .filter_map(|o| match o {
            Out::Frame(f) if f.track == track => Some(f),
            _ => None,
        })
        .collect()
}

/// A real H.264 + AAC capture as retina would deliver it: one announcement
/// of both tracks first, then a keyframe; video on 90 kHz from 0, strictly
/// increasing; audio on its sample rate, placed by arrival (20 ms after the
/// video) and then on its own clock, 1024 samples apart.
#[test]
fn h264_and_aac_become_tracks_and_frames() {
    let cam = camera(H264_AAC);
    let mut media = RtspMedia::new();
    let out = cam.play(&mut media);
    let Out::Tracks(tracks) = &out[0] else {
        panic!("first: {:?}", out[0]);
    };
    assert_eq!(tracks.len(), 2);
    assert!(matches!(tracks[0].codec, CodecConfig::Avc(_)));
    assert_eq!(tracks[1].timescale, cam.sample_rate);
    assert_eq!(
        out.iter().filter(|o| matches!(o, Out::Tracks(_))).count(),
        1
    );
    let video = frames(&out, VIDEO);
    assert!(video[0].keyframe);
    assert!(video.windows(2).all(|w| w[1].dts > w[0].dts));
    assert!(video.iter().all(|f| f.pts == f.dts), "no B-frames here");
    let keyframes = video.iter().filter(|f| f.keyframe).count();
    let source_keys = cam
        .frames
        .iter()
        .filter(|f| f.track == 0 && f.keyframe)
        .count();
    assert_eq!(keyframes, source_keys);
    let audio = frames(&out, AUDIO);
    assert!(audio.len() > 40, "{}", audio.len());
    assert!(audio.windows(2).all(|w| w[1].dts - w[0].dts == 1024));
    assert!(audio.iter().all(|f| f.duration == Some(1024)));
    // Audio sits where it arrived relative to the video (20 ms late here),
    // then follows its own clock.
    let first_video = cam.frames.iter().position(|f| f.track == 0).unwrap();
    let source_audio = cam.frames[first_video..]
        .iter()
        .find(|f| f.track == 1)
        .unwrap();
    let expect = cam.media_ms(source_audio) - cam.media_ms(&cam.frames[first_video]) + 20;
    let got = audio[0].dts * 1000 / i64::from(cam.sample_rate) - video[0].dts / 90;
    assert!((got - expect).abs() <= 2, "{got} ms vs {expect} ms");
    assert_eq!(media.stats.video_frames as usize, video.len());
    assert_eq!(
        media.stats.video_frames + media.stats.audio_frames + media.stats.dropped,
        cam.frames.len() as u64
    );
}

#[test]
fn h265_becomes_an_hevc_track() {
    let cam = camera(H265_AAC);
    let mut media = RtspMedia::new();
    let out = cam.play(&mut media);
    let Out::Tracks(tracks) = &out[0] else {
        panic!("first: {:?}", out[0]);
    };
    assert!(matches!(tracks[0].codec, CodecConfig::Hevc(_)));
    let video = frames(&out, VIDEO);
    assert!(video[0].keyframe);
    assert!(video.len() > 30);
}

fn video_in(timestamp: i64, key: bool, data: &[u8]) -> VideoIn<'_> {
    VideoIn {
        timestamp,
        clock_rate: 90_000,
        random_access: key,
        loss: 0,
        arrival: UnixMillis(T0 + u64::try_from(timestamp / 90).unwrap_or(0)),
        data,
    }
}

/// Length-prefixed units: an IDR (type 5) or a non-IDR slice (type 1).
fn au(idr: bool) -> Vec<u8> {
    let nal = if idr {
        [0x65, 0x88, 0x84]
    } else {
        [0x41, 0x9a, 0x02]
    };
    let mut v = 3u32.to_be_bytes().to_vec();
    v.extend_from_slice(&nal);
    v
}

/// Frames before the configuration and before the first keyframe are
/// dropped; after lost packets video waits for the next keyframe; a frame
/// flagged random-access without an IDR inside is not taken for one.
#[test]
fn keyframe_rules() {
    let cam = camera(H264_AAC);
    let mut m = RtspMedia::new();
    let mut out = Vec::new();
    m.video(video_in(0, true, &au(true)), &mut out).unwrap();
    assert!(out.is_empty(), "no configuration yet");
    m.set_video(VideoCodec::H264, &cam.record).unwrap();
    m.video(video_in(3000, false, &au(false)), &mut out)
        .unwrap();
    m.video(video_in(6000, true, &au(false)), &mut out).unwrap();
    assert!(out.is_empty(), "no keyframe yet");
    m.video(video_in(9000, true, &au(true)), &mut out).unwrap();
    assert!(matches!(&out[0], Out::Tracks(t) if t.len() == 1));
    assert!(matches!(&out[1], Out::Frame(f) if f.keyframe));
    out.clear();
    let p_frame = au(false);
    let mut lost = video_in(12_000, false, &p_frame);
    lost.loss = 3;
    m.video(lost, &mut out).unwrap();
    m.video(video_in(15_000, false, &au(false)), &mut out)
        .unwrap();
    assert!(out.is_empty(), "waiting for a keyframe after loss");
    m.video(video_in(18_000, true, &au(true)), &mut out)
        .unwrap();
    assert_eq!(out.len(), 1, "no new announcement: {out:?}");
    assert_eq!(m.stats.loss_events, 1);
    m.check_invariants();
}

/// An H.265 CRA picture (x265's keyframes after the first IDR) starts a
/// segment although retina does not flag it.
#[test]
fn h265_cra_is_a_keyframe() {
    let cam = camera(H265_AAC);
    let mut m = RtspMedia::new();
    let mut out = Vec::new();
    m.set_video(VideoCodec::H265, &cam.record).unwrap();
    let unit = |t: u8| [0, 0, 0, 3, t << 1, 1, 0xaf];
    m.video(video_in(0, false, &unit(21)), &mut out).unwrap();
    m.video(video_in(3000, false, &unit(1)), &mut out).unwrap();
    m.video(video_in(6000, true, &unit(1)), &mut out).unwrap();
    let keys: Vec<bool> = frames(&out, VIDEO).iter().map(|f| f.keyframe).collect();
    assert_eq!(keys, [true, false, false]);
}

/// A new configuration (a camera switching resolution) is announced with
/// the next keyframe; audio before its announcement is dropped.
#[test]
fn configuration_changes_are_announced_at_the_next_keyframe() {
    let h264 = camera(H264_AAC);
    let mut m = RtspMedia::new();
    let mut out = Vec::new();
    m.set_video(VideoCodec::H264, &h264.record).unwrap();
    m.video(video_in(0, true, &au(true)), &mut out).unwrap();
    m.set_video(VideoCodec::H264, &h264.record).unwrap();
    m.video(video_in(3000, false, &au(false)), &mut out)
        .unwrap();
    assert_eq!(out.len(), 3, "the same configuration is no change");
    let audio = |ts: i64| AudioIn {
        timestamp: ts,
        clock_rate: 48_000,
        frame_length: 1024,
        arrival: UnixMillis(T0 + 100),
        data: &[0x21, 0x10],
    };
    m.set_audio(&h264.asc).unwrap();
    m.audio(audio(0), &mut out).unwrap();
    assert_eq!(out.len(), 3, "audio waits for the announcement");
    m.video(video_in(6000, false, &au(false)), &mut out)
        .unwrap();
    assert_eq!(out.len(), 3, "and so does video, until a keyframe");
    m.video(video_in(9000, true, &au(true)), &mut out).unwrap();
    assert!(matches!(&out[3], Out::Tracks(t) if t.len() == 2));
    m.audio(audio(1024), &mut out).unwrap();
    assert!(matches!(out.last(), Some(Out::Frame(f)) if f.track == AUDIO));
}

/// A clock that steps by more than MAX_JUMP_SECS either way ends the
/// session (it restarts, the pipeline makes that a discontinuity); a step
/// back within it (a reordered picture) keeps the decode timeline moving.
#[test]
fn clock_steps() {
    let cam = camera(H264_AAC);
    let mut m = RtspMedia::new();
    let mut out = Vec::new();
    m.set_video(VideoCodec::H264, &cam.record).unwrap();
    m.video(video_in(90_000, true, &au(true)), &mut out)
        .unwrap();
    m.video(video_in(87_000, false, &au(false)), &mut out)
        .unwrap();
    let [Out::Tracks(_), Out::Frame(a), Out::Frame(b)] = &out[..] else {
        panic!("{out:?}");
    };
    assert_eq!((a.dts, b.dts, b.pts), (0, 1, 1));
    let far = 90_000 + 11 * 90_000;
    assert!(matches!(
        m.video(video_in(far, false, &au(false)), &mut out),
        Err(MediaError::TimestampJump { .. })
    ));
    assert!(matches!(
        m.video(video_in(-far, false, &au(false)), &mut out),
        Err(MediaError::TimestampJump { .. })
    ));
}

/// Malformed frames and configurations are refused without a panic.
#[test]
fn malformed_input() {
    let cam = camera(H264_AAC);
    let mut m = RtspMedia::new();
    assert!(m.set_video(VideoCodec::H264, &[1, 2, 3]).is_err());
    assert!(m.set_video(VideoCodec::H265, &cam.record).is_err());
    assert!(m.set_audio(&[]).is_err());
    m.set_video(VideoCodec::H264, &cam.record).unwrap();
    let mut out = Vec::new();
    for data in [&[][..], &[0, 0, 0, 9, 0x65], &[0, 0, 0, 0], &[0, 0, 1]] {
        m.video(video_in(0, true, data), &mut out).unwrap();
    }
    let mut zero = video_in(0, true, &[0, 0, 0, 1, 0x65]);
    zero.clock_rate = 0;
    assert_eq!(m.video(zero, &mut out), Err(MediaError::ClockRate));
    assert!(out.is_empty());
    assert_eq!(m.stats.dropped, 4);
}

#[test]
fn stream_selection() {
    let o = |media, encoding| Offered { media, encoding };
    /// Offered streams; the video and audio picked; why the rest are left out.
    type Case<'a> = (
        &'a [Offered<'a>],
        Option<(usize, VideoCodec)>,
        Option<usize>,
        &'a [&'a str],
    );
    let cases: &[Case<'_>] = &[
        (
            &[o("video", "H264"), o("audio", "mpeg4-generic")],
            Some((0, VideoCodec::H264)),
            Some(1),
            &[],
        ),
        (
            &[o("audio", "pcmu"), o("video", "H265")],
            Some((1, VideoCodec::H265)),
            None,
            &["G.711 audio (PCMU)"],
        ),
        (
            &[
                o("video", "JPEG"),
                o("audio", "PCMA"),
                o("application", "vnd.onvif.metadata"),
                o("video", "h264"),
                o("video", "h264"),
                o("audio", "opus"),
            ],
            Some((3, VideoCodec::H264)),
            None,
            &[
                "video codec JPEG",
                "G.711 audio (PCMA)",
                "application stream",
                "a second video stream",
                "audio codec opus",
            ],
        ),
    ];
    for (offered, video, audio, dropped) in cases {
        let s = select(offered);
        assert_eq!((s.video, s.audio), (*video, *audio), "{offered:?}");
        assert_eq!(s.dropped.len(), dropped.len(), "{:?}", s.dropped);
        for ((_, why), expect) in s.dropped.iter().zip(dropped.iter()) {
            assert!(why.contains(expect), "{why} / {expect}");
        }
    }
}
