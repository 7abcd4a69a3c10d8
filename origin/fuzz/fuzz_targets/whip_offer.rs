//! SDP offers from anyone: Brook's policy check, str0m's parser, and (when
//! both accept) a session answering it. Also STUN routing on the same bytes.
#![no_main]
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use brook_origin::ingest::whip::session::{Session, SessionConfig};
use brook_origin::ingest::whip::sim::Sim;
use brook_origin::ingest::whip::{sdp, stun};
use brook_origin::ingest::{Admission, Claim, Publish, Refusal};
use brook_packager::UnixMillis;
use libfuzzer_sys::fuzz_target;

struct NoSink;

impl Admission for NoSink {
    fn admit(&self, _: &Claim<'_>) -> Result<(), Refusal> {
        Ok(())
    }
    fn open(&self, _: &Claim<'_>) -> Result<Box<dyn Publish>, Refusal> {
        Err(Refusal::Unavailable("fuzzing".into()))
    }
}

static CONFIG: OnceLock<SessionConfig> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    if let Some(u) = stun::local_ufrag(data) {
        assert!(!u.is_empty() && u.len() < data.len());
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok((offer, accepted)) = sdp::check_offer(text) else {
        return;
    };
    let config = CONFIG.get_or_init(Sim::session_config);
    let result = Session::new(
        "0".repeat(32),
        "cam1".into(),
        None,
        offer,
        accepted,
        config,
        Arc::new(NoSink),
        Instant::now(),
        UnixMillis(1_795_000_000_000),
    );
    if let Ok((mut session, answer)) = result {
        assert!(answer.contains("m=video 9 "));
        session.end("done");
    }
});
