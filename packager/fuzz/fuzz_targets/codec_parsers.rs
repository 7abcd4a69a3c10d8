//! The NAL, SPS, ADTS and Opus (OpusHead, TOC, MPEG-TS control headers)
//! parsers on arbitrary bytes: no panic, and what they accept is
//! self-consistent.
#![no_main]
use brook_packager::codec::{aac, h264, h265, opus};
use brook_packager::codec::{aac::AacConfig, h264::AvcConfig, h265::HevcConfig};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(sps) = h264::Sps::parse(data) {
        assert!(sps.width > 0 && sps.height > 0);
        assert!(sps.codec_string().starts_with("avc1."));
    }
    if let Ok(sps) = h265::HevcSps::parse(data) {
        assert!(sps.width > 0 && sps.height > 0);
        assert!(sps.codec_string().starts_with("hvc1."));
    }
    for nal in h264::annexb_nals(data) {
        assert!(!nal.is_empty() && nal.len() <= data.len());
    }
    if let Some(s) = h264::annexb_to_sample(data) {
        assert!(s.data.len() <= data.len() * 2 + 16);
    }
    let _ = h265::annexb_to_sample(data);
    let (frames, _) = aac::adts_frames(data);
    let total: usize = frames.iter().map(|f| f.payload.len()).sum();
    assert!(total <= data.len());
    if let Some(c) = opus::OpusConfig::from_opus_head(data) {
        assert_eq!(c.dops().len(), 11);
    }
    if let Some(d) = opus::packet_duration(data) {
        assert!(d > 0 && d <= 5760);
    }
    // Configuration records (RTMP sequence headers): what is accepted
    // writes back to a record that reads the same.
    if let Ok((c, len)) = AvcConfig::from_decoder_configuration_record(data) {
        assert!(matches!(len, 1 | 2 | 4));
        let back = AvcConfig::from_decoder_configuration_record(&c.decoder_configuration_record());
        assert_eq!(back.map(|(b, _)| b).as_ref(), Ok(&c));
    }
    if let Ok((c, len)) = HevcConfig::from_decoder_configuration_record(data) {
        assert!(matches!(len, 1 | 2 | 4));
        let _ = c.decoder_configuration_record();
    }
    if let Ok(c) = AacConfig::from_audio_specific_config(data) {
        assert_eq!(AacConfig::from_audio_specific_config(&c.audio_specific_config()), Ok(c));
    }
    let (packets, _) = opus::ts_packets(data);
    let total: usize = packets.iter().map(|p| p.len()).sum();
    assert!(total <= data.len());
});
