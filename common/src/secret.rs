//! Comparing secrets (stream keys, bearer tokens, the metrics token).

use subtle::ConstantTimeEq;

/// Whether `a == b`, in time that depends on their lengths but not on where
/// they differ (the `subtle` crate's `ConstantTimeEq`, which also keeps the
/// compiler from turning it back into an early-exit loop). Lengths are not
/// secret: only which bytes differ is.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_only_when_equal() {
        for (a, b, eq) in [
            (&b"abc"[..], &b"abc"[..], true),
            (b"", b"", true),
            (b"abc", b"abd", false),
            (b"abc", b"abcd", false),
            (b"", b"a", false),
            (b"xbc", b"abc", false),
        ] {
            assert_eq!(constant_time_eq(a, b), eq, "{a:?} {b:?}");
        }
    }
}
