//! AES-128 over a sample's protected ranges (ISO/IEC 23001-7 §9.4 `cenc`,
//! §10.4 `cbcs`).
//!
//! - `cenc`: one CTR keystream per sample, starting at the sample's IV and
//!   running on across its subsamples' protected bytes.
//! - `cbcs`: CBC with the constant IV, restarted at every subsample; within a
//!   subsample the pattern encrypts `crypt` whole blocks and skips `skip`, the
//!   chain running across the skipped blocks; a partial last block stays clear.
//!   Pattern 0:0 (audio) encrypts every whole block.

use aes::cipher::block_padding::NoPadding;
use aes::cipher::{BlockEncrypt, BlockEncryptMut, InnerIvInit, KeyInit, StreamCipher};
use aes::Aes128;

use super::{Scheme, Subsample};

const BLOCK: usize = 16;

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
                cbcs_range(&aes, iv, pattern, &mut data[from..to]);
            }
        }
    }
}

fn cbcs_range(aes: &Aes128, iv: &[u8; 16], (crypt, skip): (u8, u8), data: &mut [u8]) {
    let whole = data.len() / BLOCK * BLOCK;
    if crypt == 0 && skip == 0 {
        if whole > 0 {
            let cbc = cbc::Encryptor::<Aes128>::inner_iv_init(aes.clone(), iv.into());
            // Cannot fail: the length is a whole number of blocks.
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
