//! Safe wrapper over the libsrt calls in `ffi.rs`: a refcounted library
//! handle, RAII sockets, a listener whose connect hook is a Rust closure, and
//! typed errors that carry libsrt's own error text.
//!
//! This file and `ffi.rs` are the only places with `unsafe`.

#![deny(unsafe_op_in_unsafe_fn)]

use std::ffi::CStr;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};
use std::os::raw::{c_char, c_int, c_void};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Once;
use std::time::Duration;

use super::ffi;

/// A failed libsrt call: which call, libsrt's error code (`SRT_ERRNO`), the
/// system errno it reported, and its message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{op}: {message} (libsrt error {code}, errno {sys_errno})")]
pub struct SrtError {
    pub op: &'static str,
    pub code: i32,
    pub sys_errno: i32,
    pub message: String,
}

impl SrtError {
    /// Reads libsrt's thread-local last error; call right after the failure.
    fn last(op: &'static str) -> Self {
        let mut sys_errno: c_int = 0;
        // SAFETY: srt_getlasterror writes one int through the valid pointer.
        let code = unsafe { ffi::srt_getlasterror(&mut sys_errno) };
        // SAFETY: srt_getlasterror_str returns null or a NUL-terminated string
        // owned by libsrt's thread-local error slot, valid until the next
        // libsrt call on this thread; it is copied before any such call.
        let message = unsafe {
            let text = ffi::srt_getlasterror_str();
            if text.is_null() {
                String::from("unknown error")
            } else {
                CStr::from_ptr(text).to_string_lossy().into_owned()
            }
        };
        SrtError {
            op,
            code,
            sys_errno,
            message,
        }
    }

    /// The receive timeout (`SRTO_RCVTIMEO`) expired without data.
    pub fn is_timeout(&self) -> bool {
        matches!(self.code, ffi::SRT_ETIMEOUT | ffi::SRT_EASYNCRCV)
    }

    /// The socket was closed locally or the connection is gone.
    pub fn is_closed(&self) -> bool {
        matches!(
            self.code,
            ffi::SRT_ESCLOSED
                | ffi::SRT_EINVSOCK
                | ffi::SRT_ENOLISTEN
                | ffi::SRT_ECONNLOST
                | ffi::SRT_ENOCONN
        )
    }

    /// The peer went away (as opposed to a local close).
    pub fn is_connection_lost(&self) -> bool {
        matches!(self.code, ffi::SRT_ECONNLOST | ffi::SRT_ENOCONN)
    }
}

fn check(ret: c_int, op: &'static str) -> Result<c_int, SrtError> {
    if ret == ffi::SRT_ERROR {
        Err(SrtError::last(op))
    } else {
        Ok(ret)
    }
}

/// One `srt_startup` reference: libsrt counts them and tears its threads down
/// on the `srt_cleanup` that matches the last one. Keep it alive longer than
/// every socket made under it.
pub(crate) struct Runtime(());

impl Runtime {
    pub(crate) fn acquire() -> Result<Self, SrtError> {
        static LOGGING: Once = Once::new();
        LOGGING.call_once(|| {
            // SAFETY: plain setters of libsrt's global logger config; the
            // handler is a `'static` function that ignores `opaque`.
            unsafe {
                ffi::srt_setlogflags(
                    ffi::SRT_LOGF_DISABLE_TIME
                        | ffi::SRT_LOGF_DISABLE_THREADNAME
                        | ffi::SRT_LOGF_DISABLE_SEVERITY
                        | ffi::SRT_LOGF_DISABLE_EOL,
                );
                ffi::srt_setloghandler(std::ptr::null_mut(), Some(log_to_tracing));
                ffi::srt_setloglevel(ffi::LOG_WARNING);
            }
        });
        // SAFETY: srt_startup has no preconditions; it is refcounted and
        // guarded by libsrt's init lock.
        let ret = unsafe { ffi::srt_startup() };
        if ret < 0 {
            return Err(SrtError::last("srt_startup"));
        }
        Ok(Runtime(()))
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        // SAFETY: matches the successful srt_startup of this handle.
        unsafe { ffi::srt_cleanup() };
    }
}

/// libsrt's log lines, as `tracing` events with target `libsrt`. libsrt
/// logs expected conditions as errors (a closed listener, a rejected
/// handshake) and warnings (every receive timeout), so its levels are shifted
/// down: failures that matter reach Brook as API errors anyway.
unsafe extern "C" fn log_to_tracing(
    _opaque: *mut c_void,
    level: c_int,
    _file: *const c_char,
    _line: c_int,
    area: *const c_char,
    message: *const c_char,
) {
    let _ = catch_unwind(|| {
        if message.is_null() {
            return;
        }
        // SAFETY: libsrt passes NUL-terminated strings valid for this call;
        // `area` may be null.
        let (message, area) = unsafe {
            (
                CStr::from_ptr(message).to_string_lossy(),
                if area.is_null() {
                    "".into()
                } else {
                    CStr::from_ptr(area).to_string_lossy()
                },
            )
        };
        match level {
            l if l <= ffi::LOG_CRIT => tracing::error!(target: "libsrt", %area, "{message}"),
            ffi::LOG_ERR => tracing::info!(target: "libsrt", %area, "{message}"),
            ffi::LOG_WARNING => tracing::debug!(target: "libsrt", %area, "{message}"),
            _ => tracing::trace!(target: "libsrt", %area, "{message}"),
        }
    });
}

const OPEN: u8 = 0;
const CLOSED: u8 = 1;
const CLOSE_FAILED: u8 = 2;

/// An SRT socket, closed on drop. `close` may be called from another thread
/// while one blocks in `accept`/`recv_msg` on it: libsrt wakes the blocked
/// call with an error. libsrt socket ids are not reused until its id space
/// (2^30) wraps, so calls racing with the close fail with `SRT_EINVSOCK`
/// rather than hitting another socket.
#[derive(Debug)]
pub(crate) struct Socket {
    id: ffi::SRTSOCKET,
    state: AtomicU8,
}

impl Socket {
    pub(crate) fn new(_runtime: &Runtime) -> Result<Self, SrtError> {
        // SAFETY: no preconditions; returns a fresh id or SRT_INVALID_SOCK.
        let id = unsafe { ffi::srt_create_socket() };
        if id == ffi::SRT_INVALID_SOCK {
            return Err(SrtError::last("srt_create_socket"));
        }
        Ok(Socket::from_id(id))
    }

    fn from_id(id: ffi::SRTSOCKET) -> Self {
        Socket {
            id,
            state: AtomicU8::new(OPEN),
        }
    }

    /// libsrt's socket id, for logs.
    pub(crate) fn id(&self) -> i32 {
        self.id
    }

    /// Closes the socket once; later calls return `Ok`.
    pub(crate) fn close(&self) -> Result<(), SrtError> {
        if self
            .state
            .compare_exchange(OPEN, CLOSED, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return Ok(());
        }
        // SAFETY: srt_close takes an id; libsrt validates it.
        let ret = unsafe { ffi::srt_close(self.id) };
        check(ret, "srt_close").map(drop).inspect_err(|_| {
            self.state.store(CLOSE_FAILED, Ordering::Release);
        })
    }

    fn set_i32(&self, opt: c_int, value: i32, op: &'static str) -> Result<(), SrtError> {
        // SAFETY: the option is an int-typed SRTO_*; optval points to a live
        // i32 and optlen is its size.
        let ret = unsafe {
            ffi::srt_setsockflag(
                self.id,
                opt,
                (&value as *const i32).cast(),
                std::mem::size_of::<i32>() as c_int,
            )
        };
        check(ret, op).map(drop)
    }

    fn set_bool(&self, opt: c_int, value: bool, op: &'static str) -> Result<(), SrtError> {
        // libsrt takes bool options as either a C++ bool or an int.
        self.set_i32(opt, i32::from(value), op)
    }

    /// Live mode (TSBPD, message API, too-late packet drop). libsrt's default,
    /// set explicitly so a changed default cannot switch us to file mode.
    pub(crate) fn set_live_mode(&self) -> Result<(), SrtError> {
        self.set_i32(ffi::SRTO_TRANSTYPE, ffi::SRTT_LIVE, "set SRTO_TRANSTYPE")
    }

    pub(crate) fn set_receive_latency(&self, latency_ms: u32) -> Result<(), SrtError> {
        let ms = i32::try_from(latency_ms).unwrap_or(i32::MAX);
        self.set_i32(ffi::SRTO_RCVLATENCY, ms, "set SRTO_RCVLATENCY")
    }

    pub(crate) fn set_payload_size(&self, bytes: u32) -> Result<(), SrtError> {
        let bytes = i32::try_from(bytes).unwrap_or(i32::MAX);
        self.set_i32(ffi::SRTO_PAYLOADSIZE, bytes, "set SRTO_PAYLOADSIZE")
    }

    /// `false` makes an IPv6 wildcard listener accept IPv4 too.
    pub(crate) fn set_ipv6_only(&self, only: bool) -> Result<(), SrtError> {
        self.set_i32(ffi::SRTO_IPV6ONLY, i32::from(only), "set SRTO_IPV6ONLY")
    }

    /// Whether libsrt itself refuses a connection whose two sides disagree
    /// on encryption (inherited by accepted sockets).
    pub(crate) fn set_enforced_encryption(&self, enforced: bool) -> Result<(), SrtError> {
        self.set_bool(
            ffi::SRTO_ENFORCEDENCRYPTION,
            enforced,
            "set SRTO_ENFORCEDENCRYPTION",
        )
    }

    pub(crate) fn set_blocking_receive(&self, blocking: bool) -> Result<(), SrtError> {
        self.set_bool(ffi::SRTO_RCVSYN, blocking, "set SRTO_RCVSYN")
    }

    /// `recv_msg` fails with a timeout error (`is_timeout`) after this long.
    pub(crate) fn set_receive_timeout(&self, timeout: Duration) -> Result<(), SrtError> {
        let ms = i32::try_from(timeout.as_millis())
            .unwrap_or(i32::MAX)
            .max(1);
        self.set_i32(ffi::SRTO_RCVTIMEO, ms, "set SRTO_RCVTIMEO")
    }

    fn get_i32(&self, opt: c_int, op: &'static str) -> Result<i32, SrtError> {
        let mut value: i32 = 0;
        let mut len = std::mem::size_of::<i32>() as c_int;
        // SAFETY: the option is an int-typed SRTO_*; optval points to a
        // writable i32 and `len` is its size.
        let ret = unsafe {
            ffi::srt_getsockflag(self.id, opt, (&mut value as *mut i32).cast(), &mut len)
        };
        check(ret, op)?;
        Ok(value)
    }

    /// How decryption of what the peer sends stands (`SRTO_RCVKMSTATE`).
    pub(crate) fn receive_encryption(&self) -> Result<KmState, SrtError> {
        let state = self.get_i32(ffi::SRTO_RCVKMSTATE, "get SRTO_RCVKMSTATE")?;
        Ok(KmState::from_raw(state))
    }

    /// The caller's `SRTO_STREAMID` (empty when it sent none).
    pub(crate) fn stream_id(&self) -> Result<Vec<u8>, SrtError> {
        let mut buf = [0u8; ffi::MAX_SID_LENGTH + 1];
        let mut len = buf.len() as c_int;
        // SAFETY: optval points to `len` writable bytes; libsrt writes at most
        // that many and stores the string length in `len`.
        let ret = unsafe {
            ffi::srt_getsockflag(
                self.id,
                ffi::SRTO_STREAMID,
                buf.as_mut_ptr().cast(),
                &mut len,
            )
        };
        check(ret, "get SRTO_STREAMID")?;
        let len = usize::try_from(len).unwrap_or(0).min(ffi::MAX_SID_LENGTH);
        let value = &buf[..len];
        let end = value.iter().position(|&b| b == 0).unwrap_or(len);
        Ok(value[..end].to_vec())
    }

    pub(crate) fn bind(&self, addr: SocketAddr) -> Result<(), SrtError> {
        let raw = RawAddr::from(addr);
        // SAFETY: `raw` holds a sockaddr_in/sockaddr_in6 of the given length.
        let ret = unsafe { ffi::srt_bind(self.id, raw.as_ptr(), raw.len()) };
        check(ret, "srt_bind").map(drop)
    }

    pub(crate) fn local_addr(&self) -> Result<SocketAddr, SrtError> {
        let mut storage = zeroed_storage();
        let mut len = std::mem::size_of::<libc::sockaddr_storage>() as c_int;
        // SAFETY: storage is writable for `len` bytes.
        let ret = unsafe {
            ffi::srt_getsockname(
                self.id,
                (&mut storage as *mut libc::sockaddr_storage).cast(),
                &mut len,
            )
        };
        check(ret, "srt_getsockname")?;
        storage_to_addr(&storage).ok_or_else(|| SrtError {
            op: "srt_getsockname",
            code: ffi::SRT_EINVPARAM,
            sys_errno: 0,
            message: "unsupported address family".into(),
        })
    }

    /// Blocks for the next message (one SRT live-mode payload).
    /// `Ok(0)` means the connection ended.
    pub(crate) fn recv_msg(&self, buf: &mut [u8]) -> Result<usize, SrtError> {
        let len = c_int::try_from(buf.len()).unwrap_or(c_int::MAX);
        // SAFETY: buf is writable for `len` bytes; libsrt writes at most that.
        let ret = unsafe { ffi::srt_recvmsg(self.id, buf.as_mut_ptr().cast(), len) };
        check(ret, "srt_recvmsg").map(|n| usize::try_from(n).unwrap_or(0))
    }

    /// Link statistics. `clear` resets the interval counters and the
    /// interval over which rates are computed.
    pub(crate) fn stats(&self, clear: bool) -> Result<ffi::CBytePerfMon, SrtError> {
        let mut perf = ffi::CBytePerfMon::default();
        // SAFETY: perf is a writable CBytePerfMon with the 1.5.x layout
        // (checked by ffi::tests::abi_matches_srt_h).
        let ret = unsafe { ffi::srt_bstats(self.id, &mut perf, c_int::from(clear)) };
        check(ret, "srt_bstats")?;
        Ok(perf)
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        if let Err(e) = self.close() {
            tracing::debug!(socket = self.id, error = %e, "closing SRT socket");
        }
    }
}

/// Where the encryption of a connection's received data stands
/// (`SRT_KM_STATE`, as the listener sees its caller).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KmState {
    /// The caller sends in the clear.
    Unsecured,
    /// Encrypted, keys exchanged, decrypting.
    Secured,
    /// The caller encrypts and this side has no passphrase.
    NoSecret,
    /// The caller encrypts with another passphrase.
    BadSecret,
    /// Key exchange still under way, or a state this build does not know.
    Other(i32),
}

impl KmState {
    fn from_raw(state: i32) -> Self {
        match state {
            ffi::SRT_KM_S_UNSECURED => KmState::Unsecured,
            ffi::SRT_KM_S_SECURED => KmState::Secured,
            ffi::SRT_KM_S_NOSECRET => KmState::NoSecret,
            ffi::SRT_KM_S_BADSECRET => KmState::BadSecret,
            other => KmState::Other(other),
        }
    }
}

/// A connection attempt as seen by the listen hook, before it is accepted.
#[derive(Debug)]
pub(crate) struct Incoming<'a> {
    /// The pending socket libsrt made for this attempt.
    socket: ffi::SRTSOCKET,
    /// `None` only if libsrt reports an address family other than IPv4/IPv6.
    pub peer: Option<SocketAddr>,
    /// The caller's stream id, up to the first NUL (at most 512 bytes).
    pub stream_id: &'a [u8],
    /// Handshake version: 5 for SRT >= 1.3, 4 for older callers (which cannot
    /// send a stream id).
    pub hs_version: i32,
}

impl Incoming<'_> {
    /// Sets the passphrase this connection's data is decrypted with (AES, the
    /// key length the caller chose). The listener does not let libsrt enforce
    /// it ([`Socket::set_enforced_encryption`]): whether a caller that sends
    /// in the clear or with another passphrase may stay is decided after
    /// accept from [`Socket::receive_encryption`], so the refusal is logged
    /// with its reason. A passphrase outside libsrt's 10..=79 characters is
    /// an error.
    pub(crate) fn set_passphrase(&self, passphrase: &str) -> Result<(), SrtError> {
        let len = c_int::try_from(passphrase.len()).unwrap_or(c_int::MAX);
        // SAFETY: the pending socket libsrt passed to the hook may be
        // configured from it (libsrt's access-control documentation); optval
        // points to `len` readable bytes.
        let ret = unsafe {
            ffi::srt_setsockflag(
                self.socket,
                ffi::SRTO_PASSPHRASE,
                passphrase.as_ptr().cast(),
                len,
            )
        };
        check(ret, "set SRTO_PASSPHRASE").map(drop)
    }
}

/// Decides on a connection attempt: `Ok` accepts, `Err(code)` rejects with an
/// `SRT_REJC_PREDEFINED` or `SRT_REJC_USERDEFINED`-range code. Runs on
/// libsrt's receive thread while it holds the listener's lock: must not block
/// and must not touch the listener.
pub(crate) type ListenHook = dyn Fn(&Incoming<'_>) -> Result<(), i32> + Send + Sync + 'static;

struct HookBox(Box<ListenHook>);

/// A listening socket whose connection attempts go through a [`ListenHook`].
pub(crate) struct Listener {
    socket: Socket,
    /// Referenced by libsrt as the hook's `opaque` pointer until the socket
    /// is closed; freed in `drop` only after a successful close.
    hook: Option<Box<HookBox>>,
}

impl Listener {
    /// Installs `hook` on a bound socket and starts listening.
    pub(crate) fn listen(
        socket: Socket,
        backlog: usize,
        hook: Box<ListenHook>,
    ) -> Result<Self, SrtError> {
        let hook = Box::new(HookBox(hook));
        let opaque = (&*hook as *const HookBox).cast_mut().cast::<c_void>();
        // SAFETY: `opaque` points to the boxed HookBox, which lives at a
        // stable address until `Listener::drop`, and is freed only after
        // srt_close on this socket returned success. libsrt runs the hook on
        // its receive thread under the queue's listener lock, and srt_close
        // of a listening socket removes the listener under that same lock
        // (libsrt 1.5.1: CUDTUnited::close -> notListening -> removeListener),
        // so no hook call can be in flight or start after a successful close.
        // HookBox is Sync, so calls from libsrt's thread are fine.
        let ret = unsafe { ffi::srt_listen_callback(socket.id, Some(listen_trampoline), opaque) };
        // On failure `hook` is dropped here, never registered.
        check(ret, "srt_listen_callback")?;
        let listener = Listener {
            socket,
            hook: Some(hook),
        };
        let backlog = c_int::try_from(backlog).unwrap_or(c_int::MAX).max(1);
        // SAFETY: srt_listen takes an id and an int.
        let ret = unsafe { ffi::srt_listen(listener.socket.id, backlog) };
        check(ret, "srt_listen")?;
        Ok(listener)
    }

    pub(crate) fn local_addr(&self) -> Result<SocketAddr, SrtError> {
        self.socket.local_addr()
    }

    /// Blocks until a connection the hook accepted completes its handshake.
    /// Fails with an `is_closed` error once `close` was called.
    pub(crate) fn accept(&self) -> Result<(Socket, Option<SocketAddr>), SrtError> {
        let mut storage = zeroed_storage();
        let mut len = std::mem::size_of::<libc::sockaddr_storage>() as c_int;
        // SAFETY: storage is writable for `len` bytes; libsrt writes the peer
        // address and its length.
        let id = unsafe {
            ffi::srt_accept(
                self.socket.id,
                (&mut storage as *mut libc::sockaddr_storage).cast(),
                &mut len,
            )
        };
        if id == ffi::SRT_INVALID_SOCK {
            return Err(SrtError::last("srt_accept"));
        }
        Ok((Socket::from_id(id), storage_to_addr(&storage)))
    }

    /// Stops listening and wakes a blocked `accept`.
    pub(crate) fn close(&self) -> Result<(), SrtError> {
        self.socket.close()
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let closed =
            self.socket.close().is_ok() && self.socket.state.load(Ordering::Acquire) == CLOSED;
        if !closed {
            // libsrt may still hold the pointer: leak the hook rather than
            // free memory it could call into.
            tracing::error!(
                socket = self.socket.id,
                "SRT listener did not close; leaking its hook"
            );
            std::mem::forget(self.hook.take());
        }
    }
}

/// The C hook: forwards to the Rust closure, never unwinds into libsrt.
unsafe extern "C" fn listen_trampoline(
    opaque: *mut c_void,
    ns: ffi::SRTSOCKET,
    hs_version: c_int,
    peer: *const libc::sockaddr,
    stream_id: *const c_char,
) -> c_int {
    let verdict = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: `opaque` is the HookBox registered in Listener::listen, alive
        // while libsrt can call this (see there).
        let hook = unsafe { &*(opaque as *const HookBox) };
        // SAFETY: libsrt passes the peer address of the handshake (or null).
        let peer = unsafe { sockaddr_ptr_to_addr(peer) };
        let stream_id = if stream_id.is_null() {
            &[][..]
        } else {
            // SAFETY: libsrt passes a NUL-terminated buffer of at most 513
            // bytes that outlives this call.
            unsafe { CStr::from_ptr(stream_id) }.to_bytes()
        };
        (hook.0)(&Incoming {
            socket: ns,
            peer,
            stream_id,
            hs_version,
        })
    }));
    let code = match verdict {
        Ok(Ok(())) => return 0,
        Ok(Err(code)) if code >= ffi::SRT_REJC_PREDEFINED => code,
        Ok(Err(_)) | Err(_) => ffi::SRT_REJX_ISE,
    };
    // SAFETY: `ns` is the pending socket libsrt passed in; setting a reject
    // reason on it from the hook is the documented use.
    unsafe { ffi::srt_setrejectreason(ns, code) };
    -1
}

fn zeroed_storage() -> libc::sockaddr_storage {
    // SAFETY: sockaddr_storage is plain old data; all-zero is a valid value.
    unsafe { std::mem::zeroed() }
}

fn storage_to_addr(storage: &libc::sockaddr_storage) -> Option<SocketAddr> {
    // SAFETY: a sockaddr_storage is large and aligned enough for any sockaddr.
    unsafe { sockaddr_ptr_to_addr((storage as *const libc::sockaddr_storage).cast()) }
}

/// # Safety
/// `addr` is null or points to a sockaddr whose `sa_family` tells its real
/// type (sockaddr_in / sockaddr_in6), readable in full.
unsafe fn sockaddr_ptr_to_addr(addr: *const libc::sockaddr) -> Option<SocketAddr> {
    if addr.is_null() {
        return None;
    }
    // SAFETY: per the contract, the family field is readable and says which
    // struct `addr` points to; read_unaligned needs no alignment.
    unsafe {
        match c_int::from((*addr).sa_family) {
            libc::AF_INET => {
                let v4 = std::ptr::read_unaligned(addr.cast::<libc::sockaddr_in>());
                let ip = Ipv4Addr::from(u32::from_be(v4.sin_addr.s_addr));
                Some(SocketAddr::new(IpAddr::V4(ip), u16::from_be(v4.sin_port)))
            }
            libc::AF_INET6 => {
                let v6 = std::ptr::read_unaligned(addr.cast::<libc::sockaddr_in6>());
                let ip = Ipv6Addr::from(v6.sin6_addr.s6_addr);
                let port = u16::from_be(v6.sin6_port);
                Some(match ip.to_ipv4_mapped() {
                    Some(v4) => SocketAddr::new(IpAddr::V4(v4), port),
                    None => SocketAddr::V6(SocketAddrV6::new(
                        ip,
                        port,
                        v6.sin6_flowinfo,
                        v6.sin6_scope_id,
                    )),
                })
            }
            _ => None,
        }
    }
}

enum RawAddr {
    V4(libc::sockaddr_in),
    V6(libc::sockaddr_in6),
}

impl From<SocketAddr> for RawAddr {
    fn from(addr: SocketAddr) -> Self {
        match addr {
            SocketAddr::V4(a) => RawAddr::V4(libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from(*a.ip()).to_be(),
                },
                sin_zero: [0; 8],
            }),
            SocketAddr::V6(a) => RawAddr::V6(libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            }),
        }
    }
}

impl RawAddr {
    fn as_ptr(&self) -> *const libc::sockaddr {
        match self {
            RawAddr::V4(a) => (a as *const libc::sockaddr_in).cast(),
            RawAddr::V6(a) => (a as *const libc::sockaddr_in6).cast(),
        }
    }

    fn len(&self) -> c_int {
        (match self {
            RawAddr::V4(_) => std::mem::size_of::<libc::sockaddr_in>(),
            RawAddr::V6(_) => std::mem::size_of::<libc::sockaddr_in6>(),
        }) as c_int
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_addresses_round_trip() {
        for addr in [
            "127.0.0.1:9000",
            "0.0.0.0:0",
            "[::1]:9000",
            "[fe80::1%3]:65535",
        ] {
            let addr: SocketAddr = addr.parse().unwrap();
            let raw = RawAddr::from(addr);
            // SAFETY: raw.as_ptr() points to the sockaddr it holds.
            let back = unsafe { sockaddr_ptr_to_addr(raw.as_ptr()) };
            assert_eq!(back, Some(addr));
        }
        let mapped: SocketAddr = "[::ffff:10.0.0.1]:5".parse().unwrap();
        let raw = RawAddr::from(mapped);
        // SAFETY: as above.
        let back = unsafe { sockaddr_ptr_to_addr(raw.as_ptr()) };
        assert_eq!(back, Some("10.0.0.1:5".parse().unwrap()));
        // SAFETY: null is allowed.
        assert_eq!(unsafe { sockaddr_ptr_to_addr(std::ptr::null()) }, None);
    }

    #[test]
    fn errors_carry_libsrt_text() {
        let runtime = Runtime::acquire().unwrap();
        let socket = Socket::new(&runtime).unwrap();
        let err = socket.recv_msg(&mut [0u8; 16]).unwrap_err();
        assert_eq!(err.op, "srt_recvmsg");
        assert_eq!(err.code, ffi::SRT_ENOCONN, "{err}");
        assert!(!err.message.is_empty());
        assert!(err.is_closed() && !err.is_timeout());
        socket.close().unwrap();
        socket.close().unwrap();
        let err = socket.stream_id().unwrap_err();
        assert_eq!(err.code, ffi::SRT_EINVSOCK, "{err}");
    }
}
