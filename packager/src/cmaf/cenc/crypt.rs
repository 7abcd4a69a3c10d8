//! AES-128 over a sample's protected ranges (ISO/IEC 23001-7 §9.4 `cenc`,
//! §10.4 `cbcs`).
//!
//! - `cenc`: one CTR keystream per sample, starting at the sample's IV and
//!   running on across its subsamples' protected bytes.
//! - `cbcs`: CBC with the constant IV, restarted at every subsample; within a
//!   subsample the pattern encrypts `crypt` whole blocks and skips `skip`, the
//!   chain running across the skipped blocks; a partial last block stays clear.
//!   Pattern 0:0 (audio) encrypts every whole block.
//!
//! The fragment writer encrypts each sample where it lands in the fragment's
//! `mdat` (no copy of the sample, no allocation), with one key schedule per
//! fragment ([`Cipher`]).

use aes::cipher::{BlockEncryptMut, InnerIvInit, KeyInit, StreamCipher};
use aes::Aes128Enc;

use super::{Scheme, Subsample};

const BLOCK: usize = 16;

/// A content key's AES-128 encryption key schedule, made once per fragment.
/// The `aes` crate picks AES-NI at run time where the CPU has it.
#[derive(Clone)]
pub(crate) struct Cipher(Aes128Enc);

impl Cipher {
    pub(crate) fn new(key: &[u8; 16]) -> Self {
        Self(Aes128Enc::new(key.into()))
    }
}

impl std::fmt::Debug for Cipher {
    // Key material never reaches logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Cipher")
    }
}

/// Encrypts `data` in place: the protected ranges of `subsamples`, or the whole
/// sample when there are none.
pub fn encrypt_sample(
    scheme: Scheme,
    key: &[u8; 16],
    iv: &[u8; 16],
    pattern: (u8, u8),
    data: &mut [u8],
    subsamples: &[Subsample],
) {
    encrypt_sample_with(&Cipher::new(key), scheme, iv, pattern, data, subsamples);
}

/// [`encrypt_sample`] with a key schedule made once for many samples.
pub(crate) fn encrypt_sample_with(
    cipher: &Cipher,
    scheme: Scheme,
    iv: &[u8; 16],
    pattern: (u8, u8),
    data: &mut [u8],
    subsamples: &[Subsample],
) {
    match scheme {
        Scheme::Cenc => {
            let core = ctr::CtrCore::inner_iv_init(cipher.0.clone(), iv.into());
            let mut ctr = ctr::Ctr64BE::<Aes128Enc>::from_core(core);
            for_each_range(data, subsamples, |range| ctr.apply_keystream(range));
        }
        Scheme::Cbcs => {
            for_each_range(data, subsamples, |range| {
                cbcs_range(&cipher.0, iv, pattern, range)
            });
        }
    }
}

/// Calls `f` on every protected range of `data` in order: the whole of it
/// without subsamples, else each subsample's protected bytes after its clear
/// ones, cut at the end of `data` (a map longer than the sample protects only
/// what is there).
fn for_each_range(data: &mut [u8], subsamples: &[Subsample], mut f: impl FnMut(&mut [u8])) {
    if subsamples.is_empty() {
        if !data.is_empty() {
            f(data);
        }
        return;
    }
    let len = data.len();
    let mut at = 0usize;
    for s in subsamples {
        at = at.saturating_add(usize::from(s.clear));
        let end = at.saturating_add(s.protected as usize).min(len);
        if at < end {
            f(&mut data[at..end]);
        }
        at = end;
    }
}

/// One subsample's protected bytes under `cbcs`: a CBC chain from `iv` over
/// the pattern's encrypted blocks (runs of `crypt` whole blocks every
/// `crypt + skip`), the skipped blocks and a partial last block left clear.
fn cbcs_range(aes: &Aes128Enc, iv: &[u8; 16], (crypt, skip): (u8, u8), data: &mut [u8]) {
    let whole = data.len() / BLOCK * BLOCK;
    let (run, period) = match (usize::from(crypt), usize::from(skip)) {
        (0, 0) => (whole, whole), // every whole block, one chain
        (0, _) => return,         // nothing encrypted
        (c, s) => (c * BLOCK, (c + s) * BLOCK),
    };
    if whole == 0 {
        return;
    }
    let mut cbc = cbc::Encryptor::<Aes128Enc>::inner_iv_init(aes.clone(), iv.into());
    let mut at = 0;
    while at < whole {
        let end = whole.min(at + run);
        for block in data[at..end].chunks_exact_mut(BLOCK) {
            cbc.encrypt_block_mut(block.into());
        }
        at += period;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aes::cipher::block_padding::NoPadding;
    use aes::cipher::BlockEncrypt;
    use aes::Aes128;

    /// The implementation before the fragment writer encrypted in its output
    /// buffer (block by block, a `Vec` of ranges per sample), kept verbatim as
    /// the reference the current one must match byte for byte.
    fn reference(
        scheme: Scheme,
        key: &[u8; 16],
        iv: &[u8; 16],
        pattern: (u8, u8),
        data: &mut [u8],
        subsamples: &[Subsample],
    ) {
        let aes = Aes128::new(key.into());
        let mut ranges: Vec<(usize, usize)> = Vec::with_capacity(subsamples.len().max(1));
        if subsamples.is_empty() {
            ranges.push((0, data.len()));
        } else {
            let mut at = 0usize;
            for s in subsamples {
                at += usize::from(s.clear);
                let end = (at + s.protected as usize).min(data.len());
                if at < end {
                    ranges.push((at, end));
                }
                at = end;
            }
        }
        match scheme {
            Scheme::Cenc => {
                let mut ctr =
                    ctr::Ctr64BE::<Aes128>::from_core(ctr::CtrCore::inner_iv_init(aes, iv.into()));
                for (from, to) in ranges {
                    ctr.apply_keystream(&mut data[from..to]);
                }
            }
            Scheme::Cbcs => {
                for (from, to) in ranges {
                    reference_cbcs_range(&aes, iv, pattern, &mut data[from..to]);
                }
            }
        }
    }

    fn reference_cbcs_range(aes: &Aes128, iv: &[u8; 16], (crypt, skip): (u8, u8), data: &mut [u8]) {
        let whole = data.len() / BLOCK * BLOCK;
        if crypt == 0 && skip == 0 {
            if whole > 0 {
                let cbc = cbc::Encryptor::<Aes128>::inner_iv_init(aes.clone(), iv.into());
                let _ = cbc.encrypt_padded_mut::<NoPadding>(&mut data[..whole], whole);
            }
            return;
        }
        let (crypt, skip) = (usize::from(crypt), usize::from(skip));
        let mut chain = *iv;
        let mut block = 0usize;
        while (block + 1) * BLOCK <= whole {
            if block % (crypt + skip) < crypt {
                let b = &mut data[block * BLOCK..(block + 1) * BLOCK];
                for (x, c) in b.iter_mut().zip(chain) {
                    *x ^= c;
                }
                aes.encrypt_block(b.into());
                chain.copy_from_slice(b);
            }
            block += 1;
        }
    }

    /// xorshift64*: deterministic test data.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    #[test]
    fn matches_the_reference_implementation() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let patterns = [(1, 9), (0, 0), (2, 8), (5, 5), (1, 0), (0, 3), (15, 15)];
        for case in 0..3000 {
            let scheme = if case % 2 == 0 {
                Scheme::Cbcs
            } else {
                Scheme::Cenc
            };
            let pattern = patterns[case / 2 % patterns.len()];
            let mut key = [0u8; 16];
            let mut iv = [0u8; 16];
            key.iter_mut().for_each(|b| *b = rng.next() as u8);
            iv.iter_mut().for_each(|b| *b = rng.next() as u8);
            if case % 5 == 0 {
                iv[8..].fill(0xff); // the CTR counter wraps within the sample
            }
            let len = match case % 4 {
                0 => rng.below(40) as usize,
                1 => rng.below(3000) as usize,
                _ => rng.below(70_000) as usize,
            };
            let data: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            // Maps shorter than, as long as, and longer than the sample.
            let mut subsamples = Vec::new();
            if case % 3 != 0 {
                let mut left = len as u64 + rng.below(64);
                while left > 0 {
                    let clear = rng.below(left.min(300) + 1) as u16;
                    let protected = rng.below(left.min(20_000) + 1) as u32;
                    subsamples.push(Subsample { clear, protected });
                    left = left.saturating_sub(u64::from(clear) + u64::from(protected) + 1);
                }
                if case % 7 == 0 {
                    subsamples.push(Subsample {
                        clear: u16::MAX,
                        protected: u32::MAX,
                    });
                }
            }
            let mut want = data.clone();
            reference(scheme, &key, &iv, pattern, &mut want, &subsamples);
            let mut got = data;
            encrypt_sample(scheme, &key, &iv, pattern, &mut got, &subsamples);
            assert_eq!(got, want, "case {case}: {scheme:?} {pattern:?} {len} bytes");
        }
    }
}
