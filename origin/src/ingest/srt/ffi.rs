//! Hand-written declarations for the part of libsrt's C API (`srt/srt.h`,
//! 1.5.x) that the ingest uses. No bindgen: the surface is small, and the
//! `abi_matches_srt_h` test compiles a C program against the installed header
//! to check every constant and the stats struct layout below.
//!
//! Only `socket.rs` calls these functions (and wraps them safely); the
//! constants are also used by `ingest.rs`.

#![allow(
    non_camel_case_types,
    non_snake_case,
    dead_code,
    clippy::upper_case_acronyms
)]

use libc::{c_char, c_double, c_int, c_void, sockaddr};

/// `typedef int32_t SRTSOCKET;`
pub type SRTSOCKET = i32;

pub const SRT_INVALID_SOCK: SRTSOCKET = -1;
pub const SRT_ERROR: c_int = -1;

// `enum SRT_SOCKOPT` (passed as int).
pub const SRTO_RCVSYN: c_int = 2;
pub const SRTO_RCVTIMEO: c_int = 14;
pub const SRTO_REUSEADDR: c_int = 15;
pub const SRTO_STATE: c_int = 17;
pub const SRTO_PASSPHRASE: c_int = 26;
pub const SRTO_RCVKMSTATE: c_int = 41;
pub const SRTO_RCVLATENCY: c_int = 43;
pub const SRTO_PEERLATENCY: c_int = 44;
pub const SRTO_STREAMID: c_int = 46;
pub const SRTO_PAYLOADSIZE: c_int = 49;
pub const SRTO_TRANSTYPE: c_int = 50;
pub const SRTO_ENFORCEDENCRYPTION: c_int = 53;
pub const SRTO_IPV6ONLY: c_int = 54;
pub const SRTO_PEERIDLETIMEO: c_int = 55;

// `enum SRT_TRANSTYPE`.
pub const SRTT_LIVE: c_int = 0;

// `enum SRT_KM_STATE`: how the receiving side's encryption stands.
pub const SRT_KM_S_UNSECURED: c_int = 0;
pub const SRT_KM_S_SECURED: c_int = 2;
pub const SRT_KM_S_NOSECRET: c_int = 3;
pub const SRT_KM_S_BADSECRET: c_int = 4;

/// `SRTO_PASSPHRASE` bounds (characters).
pub const PASSPHRASE_LEN: std::ops::RangeInclusive<usize> = 10..=79;

// `enum SRT_ERRNO` values the wrapper tells apart.
pub const SRT_ECONNSETUP: c_int = 1000;
pub const SRT_ECONNREJ: c_int = 1002;
pub const SRT_ESCLOSED: c_int = 1005;
pub const SRT_ECONNLOST: c_int = 2001;
pub const SRT_ENOCONN: c_int = 2002;
pub const SRT_EINVPARAM: c_int = 5003;
pub const SRT_EINVSOCK: c_int = 5004;
pub const SRT_ENOLISTEN: c_int = 5006;
pub const SRT_EASYNCRCV: c_int = 6002;
pub const SRT_ETIMEOUT: c_int = 6003;

// Reject-reason number spaces (`SRT_REJC_*`) and the access-control codes
// from `srt/access_control.h` that Brook sends.
pub const SRT_REJC_PREDEFINED: c_int = 1000;
pub const SRT_REJC_USERDEFINED: c_int = 2000;
pub const SRT_REJX_BAD_REQUEST: c_int = 1400;
pub const SRT_REJX_UNAUTHORIZED: c_int = 1401;
pub const SRT_REJX_OVERLOAD: c_int = 1402;
pub const SRT_REJX_FORBIDDEN: c_int = 1403;
pub const SRT_REJX_NOTFOUND: c_int = 1404;
pub const SRT_REJX_BAD_MODE: c_int = 1405;
pub const SRT_REJX_CONFLICT: c_int = 1409;
pub const SRT_REJX_ISE: c_int = 1500;
pub const SRT_REJX_DOWN: c_int = 1503;

/// libsrt's limit for `SRTO_STREAMID` (`CSrtConfig::MAX_SID_LENGTH`).
pub const MAX_SID_LENGTH: usize = 512;
/// `SRT_LIVE_MAX_PLSIZE`: the largest payload of one live-mode message.
pub const SRT_LIVE_MAX_PLSIZE: usize = 1456;

// syslog levels used by `srt_setloglevel` and the log handler.
pub const LOG_CRIT: c_int = 2;
pub const LOG_ERR: c_int = 3;
pub const LOG_WARNING: c_int = 4;
pub const LOG_NOTICE: c_int = 5;
pub const LOG_DEBUG: c_int = 7;

pub const SRT_LOGF_DISABLE_TIME: c_int = 1;
pub const SRT_LOGF_DISABLE_THREADNAME: c_int = 2;
pub const SRT_LOGF_DISABLE_SEVERITY: c_int = 4;
pub const SRT_LOGF_DISABLE_EOL: c_int = 8;

/// `srt_listen_callback_fn`: runs on libsrt's receive thread for every
/// conclusion handshake; return 0 to accept, -1 to reject.
pub type srt_listen_callback_fn = unsafe extern "C" fn(
    opaque: *mut c_void,
    ns: SRTSOCKET,
    hsversion: c_int,
    peeraddr: *const sockaddr,
    streamid: *const c_char,
) -> c_int;

/// `SRT_LOG_HANDLER_FN` from `srt/logging_api.h`.
pub type SRT_LOG_HANDLER_FN = unsafe extern "C" fn(
    opaque: *mut c_void,
    level: c_int,
    file: *const c_char,
    line: c_int,
    area: *const c_char,
    message: *const c_char,
);

/// `struct CBytePerfMon` (`SRT_TRACEBSTATS`), field for field as in libsrt
/// 1.5.1. The layout test checks size and offsets against the C compiler.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct CBytePerfMon {
    // global measurements
    pub msTimeStamp: i64,
    pub pktSentTotal: i64,
    pub pktRecvTotal: i64,
    pub pktSndLossTotal: c_int,
    pub pktRcvLossTotal: c_int,
    pub pktRetransTotal: c_int,
    pub pktSentACKTotal: c_int,
    pub pktRecvACKTotal: c_int,
    pub pktSentNAKTotal: c_int,
    pub pktRecvNAKTotal: c_int,
    pub usSndDurationTotal: i64,
    pub pktSndDropTotal: c_int,
    pub pktRcvDropTotal: c_int,
    pub pktRcvUndecryptTotal: c_int,
    pub byteSentTotal: u64,
    pub byteRecvTotal: u64,
    pub byteRcvLossTotal: u64,
    pub byteRetransTotal: u64,
    pub byteSndDropTotal: u64,
    pub byteRcvDropTotal: u64,
    pub byteRcvUndecryptTotal: u64,
    // local measurements
    pub pktSent: i64,
    pub pktRecv: i64,
    pub pktSndLoss: c_int,
    pub pktRcvLoss: c_int,
    pub pktRetrans: c_int,
    pub pktRcvRetrans: c_int,
    pub pktSentACK: c_int,
    pub pktRecvACK: c_int,
    pub pktSentNAK: c_int,
    pub pktRecvNAK: c_int,
    pub mbpsSendRate: c_double,
    pub mbpsRecvRate: c_double,
    pub usSndDuration: i64,
    pub pktReorderDistance: c_int,
    pub pktRcvAvgBelatedTime: c_double,
    pub pktRcvBelated: i64,
    pub pktSndDrop: c_int,
    pub pktRcvDrop: c_int,
    pub pktRcvUndecrypt: c_int,
    pub byteSent: u64,
    pub byteRecv: u64,
    pub byteRcvLoss: u64,
    pub byteRetrans: u64,
    pub byteSndDrop: u64,
    pub byteRcvDrop: u64,
    pub byteRcvUndecrypt: u64,
    // instant measurements
    pub usPktSndPeriod: c_double,
    pub pktFlowWindow: c_int,
    pub pktCongestionWindow: c_int,
    pub pktFlightSize: c_int,
    pub msRTT: c_double,
    pub mbpsBandwidth: c_double,
    pub byteAvailSndBuf: c_int,
    pub byteAvailRcvBuf: c_int,
    pub mbpsMaxBW: c_double,
    pub byteMSS: c_int,
    pub pktSndBuf: c_int,
    pub byteSndBuf: c_int,
    pub msSndBuf: c_int,
    pub msSndTsbPdDelay: c_int,
    pub pktRcvBuf: c_int,
    pub byteRcvBuf: c_int,
    pub msRcvBuf: c_int,
    pub msRcvTsbPdDelay: c_int,
    pub pktSndFilterExtraTotal: c_int,
    pub pktRcvFilterExtraTotal: c_int,
    pub pktRcvFilterSupplyTotal: c_int,
    pub pktRcvFilterLossTotal: c_int,
    pub pktSndFilterExtra: c_int,
    pub pktRcvFilterExtra: c_int,
    pub pktRcvFilterSupply: c_int,
    pub pktRcvFilterLoss: c_int,
    pub pktReorderTolerance: c_int,
    // new in 1.5.0
    pub pktSentUniqueTotal: i64,
    pub pktRecvUniqueTotal: i64,
    pub byteSentUniqueTotal: u64,
    pub byteRecvUniqueTotal: u64,
    pub pktSentUnique: i64,
    pub pktRecvUnique: i64,
    pub byteSentUnique: u64,
    pub byteRecvUnique: u64,
}

// Linking: origin/build.rs emits `cargo:rustc-link-lib=srt`.
extern "C" {
    pub fn srt_startup() -> c_int;
    pub fn srt_cleanup() -> c_int;

    pub fn srt_create_socket() -> SRTSOCKET;
    pub fn srt_bind(u: SRTSOCKET, name: *const sockaddr, namelen: c_int) -> c_int;
    pub fn srt_listen(u: SRTSOCKET, backlog: c_int) -> c_int;
    pub fn srt_listen_callback(
        lsn: SRTSOCKET,
        hook_fn: Option<srt_listen_callback_fn>,
        hook_opaque: *mut c_void,
    ) -> c_int;
    pub fn srt_accept(u: SRTSOCKET, addr: *mut sockaddr, addrlen: *mut c_int) -> SRTSOCKET;
    pub fn srt_close(u: SRTSOCKET) -> c_int;
    pub fn srt_getpeername(u: SRTSOCKET, name: *mut sockaddr, namelen: *mut c_int) -> c_int;
    pub fn srt_getsockname(u: SRTSOCKET, name: *mut sockaddr, namelen: *mut c_int) -> c_int;
    pub fn srt_getsockflag(
        u: SRTSOCKET,
        opt: c_int,
        optval: *mut c_void,
        optlen: *mut c_int,
    ) -> c_int;
    pub fn srt_setsockflag(u: SRTSOCKET, opt: c_int, optval: *const c_void, optlen: c_int)
        -> c_int;
    pub fn srt_recvmsg(u: SRTSOCKET, buf: *mut c_char, len: c_int) -> c_int;
    pub fn srt_bstats(u: SRTSOCKET, perf: *mut CBytePerfMon, clear: c_int) -> c_int;
    pub fn srt_setrejectreason(sock: SRTSOCKET, value: c_int) -> c_int;

    pub fn srt_getlasterror(errno_loc: *mut c_int) -> c_int;
    pub fn srt_getlasterror_str() -> *const c_char;
    pub fn srt_clearlasterror();

    pub fn srt_setloglevel(ll: c_int);
    pub fn srt_setlogflags(flags: c_int);
    pub fn srt_setloghandler(opaque: *mut c_void, handler: Option<SRT_LOG_HANDLER_FN>);
    pub fn srt_getversion() -> u32;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fmt::Write as _;
    use std::mem::{offset_of, size_of};
    use std::process::Command;

    /// Compiles a C program against the installed `srt/srt.h` that prints the
    /// header's values for every constant and layout fact declared above, and
    /// compares. Fails (does not skip) when the header or a C compiler is
    /// missing: libsrt's headers are a build requirement of this crate.
    #[test]
    fn abi_matches_srt_h() {
        let ints: &[(&str, i64)] = &[
            ("SRT_INVALID_SOCK", SRT_INVALID_SOCK.into()),
            ("SRT_ERROR", SRT_ERROR.into()),
            ("SRTO_RCVSYN", SRTO_RCVSYN.into()),
            ("SRTO_RCVTIMEO", SRTO_RCVTIMEO.into()),
            ("SRTO_REUSEADDR", SRTO_REUSEADDR.into()),
            ("SRTO_STATE", SRTO_STATE.into()),
            ("SRTO_PASSPHRASE", SRTO_PASSPHRASE.into()),
            ("SRTO_RCVKMSTATE", SRTO_RCVKMSTATE.into()),
            ("SRTO_ENFORCEDENCRYPTION", SRTO_ENFORCEDENCRYPTION.into()),
            ("SRT_KM_S_UNSECURED", SRT_KM_S_UNSECURED.into()),
            ("SRT_KM_S_SECURED", SRT_KM_S_SECURED.into()),
            ("SRT_KM_S_NOSECRET", SRT_KM_S_NOSECRET.into()),
            ("SRT_KM_S_BADSECRET", SRT_KM_S_BADSECRET.into()),
            ("SRTO_RCVLATENCY", SRTO_RCVLATENCY.into()),
            ("SRTO_PEERLATENCY", SRTO_PEERLATENCY.into()),
            ("SRTO_STREAMID", SRTO_STREAMID.into()),
            ("SRTO_PAYLOADSIZE", SRTO_PAYLOADSIZE.into()),
            ("SRTO_TRANSTYPE", SRTO_TRANSTYPE.into()),
            ("SRTO_IPV6ONLY", SRTO_IPV6ONLY.into()),
            ("SRTO_PEERIDLETIMEO", SRTO_PEERIDLETIMEO.into()),
            ("SRTT_LIVE", SRTT_LIVE.into()),
            ("SRT_ECONNSETUP", SRT_ECONNSETUP.into()),
            ("SRT_ECONNREJ", SRT_ECONNREJ.into()),
            ("SRT_ESCLOSED", SRT_ESCLOSED.into()),
            ("SRT_ECONNLOST", SRT_ECONNLOST.into()),
            ("SRT_ENOCONN", SRT_ENOCONN.into()),
            ("SRT_EINVPARAM", SRT_EINVPARAM.into()),
            ("SRT_EINVSOCK", SRT_EINVSOCK.into()),
            ("SRT_ENOLISTEN", SRT_ENOLISTEN.into()),
            ("SRT_EASYNCRCV", SRT_EASYNCRCV.into()),
            ("SRT_ETIMEOUT", SRT_ETIMEOUT.into()),
            ("SRT_REJC_PREDEFINED", SRT_REJC_PREDEFINED.into()),
            ("SRT_REJC_USERDEFINED", SRT_REJC_USERDEFINED.into()),
            ("SRT_REJX_BAD_REQUEST", SRT_REJX_BAD_REQUEST.into()),
            ("SRT_REJX_UNAUTHORIZED", SRT_REJX_UNAUTHORIZED.into()),
            ("SRT_REJX_OVERLOAD", SRT_REJX_OVERLOAD.into()),
            ("SRT_REJX_FORBIDDEN", SRT_REJX_FORBIDDEN.into()),
            ("SRT_REJX_NOTFOUND", SRT_REJX_NOTFOUND.into()),
            ("SRT_REJX_BAD_MODE", SRT_REJX_BAD_MODE.into()),
            ("SRT_REJX_CONFLICT", SRT_REJX_CONFLICT.into()),
            ("SRT_REJX_ISE", SRT_REJX_ISE.into()),
            ("SRT_REJX_DOWN", SRT_REJX_DOWN.into()),
            ("SRT_LIVE_MAX_PLSIZE", SRT_LIVE_MAX_PLSIZE as i64),
            ("LOG_CRIT", LOG_CRIT.into()),
            ("LOG_ERR", LOG_ERR.into()),
            ("LOG_WARNING", LOG_WARNING.into()),
            ("LOG_NOTICE", LOG_NOTICE.into()),
            ("LOG_DEBUG", LOG_DEBUG.into()),
            ("SRT_LOGF_DISABLE_TIME", SRT_LOGF_DISABLE_TIME.into()),
            (
                "SRT_LOGF_DISABLE_THREADNAME",
                SRT_LOGF_DISABLE_THREADNAME.into(),
            ),
            (
                "SRT_LOGF_DISABLE_SEVERITY",
                SRT_LOGF_DISABLE_SEVERITY.into(),
            ),
            ("SRT_LOGF_DISABLE_EOL", SRT_LOGF_DISABLE_EOL.into()),
            ("sizeof(SRTSOCKET)", size_of::<SRTSOCKET>() as i64),
            ("sizeof(SRT_SOCKOPT)", size_of::<c_int>() as i64),
            (
                "sizeof(struct CBytePerfMon)",
                size_of::<CBytePerfMon>() as i64,
            ),
        ];
        macro_rules! offsets {
            ($($field:ident),* $(,)?) => {
                &[$((
                    concat!("offsetof(struct CBytePerfMon, ", stringify!($field), ")"),
                    offset_of!(CBytePerfMon, $field) as i64,
                )),*]
            };
        }
        let offsets: &[(&str, i64)] = offsets!(
            pktRecvTotal,
            pktRcvLossTotal,
            usSndDurationTotal,
            pktRcvDropTotal,
            byteRecvTotal,
            pktSent,
            pktRcvRetrans,
            mbpsRecvRate,
            pktRcvAvgBelatedTime,
            pktRcvBelated,
            byteRecv,
            usPktSndPeriod,
            msRTT,
            mbpsMaxBW,
            msRcvBuf,
            msRcvTsbPdDelay,
            pktReorderTolerance,
            pktSentUniqueTotal,
            byteRecvUnique,
        );

        let mut program = String::from(
            "#include <stdio.h>\n#include <stddef.h>\n#include <syslog.h>\n\
             #include <srt/srt.h>\n#include <srt/access_control.h>\n\
             #include <srt/logging_api.h>\nint main(void) {\n",
        );
        for (expr, _) in ints.iter().chain(offsets) {
            writeln!(program, "  printf(\"%lld\\n\", (long long)({expr}));").unwrap();
        }
        program.push_str("  return 0;\n}\n");

        let dir = std::env::temp_dir().join(format!("brook-srt-abi-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let src = dir.join("abi.c");
        let exe = dir.join("abi");
        std::fs::write(&src, program).unwrap();
        let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
        let out = Command::new(&cc)
            .arg(&src)
            .arg("-o")
            .arg(&exe)
            .output()
            .unwrap_or_else(|e| panic!("running {cc}: {e}"));
        assert!(
            out.status.success(),
            "compiling the ABI check against srt/srt.h failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = Command::new(&exe).output().unwrap();
        assert!(out.status.success());
        let printed = String::from_utf8(out.stdout).unwrap();
        let c_values: Vec<i64> = printed.lines().map(|l| l.parse().unwrap()).collect();
        let _ = std::fs::remove_dir_all(&dir);

        let ours: Vec<(&str, i64)> = ints.iter().chain(offsets).copied().collect();
        assert_eq!(c_values.len(), ours.len());
        let mismatches: Vec<String> = ours
            .iter()
            .zip(&c_values)
            .filter(|((_, rust), c)| rust != *c)
            .map(|((name, rust), c)| format!("{name}: Rust {rust}, srt.h {c}"))
            .collect();
        assert!(mismatches.is_empty(), "ABI mismatches: {mismatches:#?}");
    }

    #[test]
    fn linked_library_is_1_5() {
        // SAFETY: srt_getversion takes no arguments and only reads a constant.
        let version = unsafe { srt_getversion() };
        assert_eq!(version >> 16, 1, "major");
        assert_eq!((version >> 8) & 0xff, 5, "minor");
    }
}
