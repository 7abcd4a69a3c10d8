//! The Common Encryption boxes (ISO/IEC 23001-7 §8, ISO/IEC 14496-12 §8.7.8-9,
//! §8.12): `sinf` (`frma`, `schm`, `schi`/`tenc`) in a protected sample entry,
//! `pssh`, and per `traf` `saiz`, `saio`, `senc` and, after a key rotation,
//! `sbgp`/`sgpd` with a `seig` entry naming the fragment's key.

use super::{ContentKey, Scheme, TrafCrypt, COMMON_SYSTEM_ID};
use crate::cmaf::boxes::BoxWriter;

/// `sinf` for a sample entry whose original format was `original`.
pub(crate) fn write_sinf(
    w: &mut BoxWriter,
    original: &[u8; 4],
    scheme: Scheme,
    pattern: (u8, u8),
    iv_size: u8,
    key: &ContentKey,
) {
    w.bx(b"sinf", |w| {
        w.bx(b"frma", |w| w.bytes(original));
        w.full(b"schm", 0, 0, |w| {
            w.bytes(scheme.fourcc());
            w.u32(0x0001_0000); // scheme_version 1.0
        });
        w.bx(b"schi", |w| write_tenc(w, scheme, pattern, iv_size, key));
    });
}

fn write_tenc(w: &mut BoxWriter, scheme: Scheme, pattern: (u8, u8), iv_size: u8, key: &ContentKey) {
    // Version 1 carries the pattern; `cenc` has none.
    let version = u8::from(scheme == Scheme::Cbcs);
    w.full(b"tenc", version, 0, |w| {
        w.u8(0);
        w.u8(if version == 1 {
            pattern.0 << 4 | (pattern.1 & 0xF)
        } else {
            0
        });
        w.u8(1); // default_isProtected
        w.u8(iv_size);
        w.bytes(&key.kid);
        if iv_size == 0 {
            w.u8(16);
            w.bytes(&key.iv);
        }
    });
}

/// A version 1 `pssh` of the common system listing `kids` (no data).
pub(crate) fn write_common_pssh(w: &mut BoxWriter, kids: &[[u8; 16]]) {
    w.full(b"pssh", 1, 0, |w| {
        w.bytes(&COMMON_SYSTEM_ID);
        w.u32(kids.len() as u32);
        for kid in kids {
            w.bytes(kid);
        }
        w.u32(0);
    });
}

/// The `traf` boxes after `trun`. Returns where `saio`'s offset is, to be
/// patched once the moof is complete with [`aux_offset`]'s value, if any.
pub(crate) fn write_traf_boxes(w: &mut BoxWriter, c: &TrafCrypt) -> Option<(usize, usize)> {
    let count = c.len() as u32;
    if let Some(key) = &c.rotated {
        w.full(b"sbgp", 0, 0, |w| {
            w.bytes(b"seig");
            w.u32(1);
            w.u32(count);
            w.u32(0x1_0001); // the first description of this fragment
        });
        w.full(b"sgpd", 1, 0, |w| {
            w.bytes(b"seig");
            w.u32(if c.iv_size == 0 { 37 } else { 20 });
            w.u32(1);
            w.u8(0);
            w.u8(c.pattern.0 << 4 | (c.pattern.1 & 0xF));
            w.u8(1);
            w.u8(c.iv_size);
            w.bytes(&key.kid);
            if c.iv_size == 0 {
                w.u8(16);
                w.bytes(&key.iv);
            }
        });
    }
    let subsamples = !c.subsamples.is_empty();
    let iv_size = usize::from(c.iv_size).min(16);
    // Sample i's auxiliary information size (saiz).
    let size = |i: usize| {
        let n = iv_size
            + if subsamples {
                2 + 6 * c.subsamples(i).len()
            } else {
                0
            };
        n.min(255) as u8
    };
    // Constant IV, whole samples (cbcs audio): no auxiliary information, as
    // shaka-packager writes it: `senc` lists the samples, no `saiz`/`saio`.
    let has_aux = (0..c.len()).any(|i| size(i) > 0);
    let mut saio_field = None;
    if has_aux {
        w.full(b"saiz", 0, 0, |w| {
            let first = if c.len() > 0 { size(0) } else { 0 };
            if (0..c.len()).all(|i| size(i) == first) {
                w.u8(first);
                w.u32(count);
            } else {
                w.u8(0);
                w.u32(count);
                for i in 0..c.len() {
                    w.u8(size(i));
                }
            }
        });
        w.full(b"saio", 0, 0, |w| {
            w.u32(1);
            saio_field = Some(w.pos());
            w.u32(0);
        });
    }
    let mut senc_data = 0;
    w.full(b"senc", 0, if subsamples { 0x2 } else { 0 }, |w| {
        w.u32(count);
        senc_data = w.pos();
        for i in 0..c.len() {
            let iv = c.iv(i);
            let subs = c.subsamples(i);
            w.bytes(&iv[..iv_size]);
            if subsamples {
                w.u16(subs.len() as u16);
                for s in subs {
                    w.u16(s.clear);
                    w.u32(s.protected);
                }
            }
        }
    });
    saio_field.map(|f| (f, senc_data))
}
