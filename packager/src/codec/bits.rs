//! A bit reader for codec headers (exp-Golomb included), over RBSP bytes.

/// Reads bits MSB-first. Every read returns `None` at the end of the data, so a
/// truncated header is an error at the caller, never a panic.
pub(crate) struct BitReader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> BitReader<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Self {
        Self { data, pos: 0 }
    }

    /// Bits read so far.
    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    pub(crate) fn bit(&mut self) -> Option<u32> {
        let byte = *self.data.get(self.pos / 8)?;
        let bit = (byte >> (7 - (self.pos % 8))) & 1;
        self.pos += 1;
        Some(u32::from(bit))
    }

    pub(crate) fn flag(&mut self) -> Option<bool> {
        self.bit().map(|b| b == 1)
    }

    pub(crate) fn bits(&mut self, n: u32) -> Option<u32> {
        debug_assert!(n <= 32);
        let mut v = 0u32;
        for _ in 0..n {
            v = (v << 1) | self.bit()?;
        }
        Some(v)
    }

    /// Unsigned exp-Golomb, ue(v).
    pub(crate) fn ue(&mut self) -> Option<u32> {
        let mut zeros = 0;
        while self.bit()? == 0 {
            zeros += 1;
            if zeros > 31 {
                return None;
            }
        }
        let rest = self.bits(zeros)?;
        Some(((1u64 << zeros) - 1 + u64::from(rest)).min(u64::from(u32::MAX)) as u32)
    }

    /// Signed exp-Golomb, se(v).
    pub(crate) fn se(&mut self) -> Option<i32> {
        let k = i64::from(self.ue()?);
        let v = if k % 2 == 1 { (k + 1) / 2 } else { -(k / 2) };
        Some(v as i32)
    }
}

/// Removes emulation prevention bytes (`00 00 03` → `00 00`): NAL payload → RBSP.
pub(crate) fn rbsp(nal: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(nal.len());
    let mut zeros = 0;
    for &b in nal {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        out.push(b);
    }
    out
}

/// [`rbsp`] of `nal`'s first bytes into `out`, without allocating: as many as
/// fill `out` (or all of `nal`). Returns the RBSP bytes written, a prefix of
/// `rbsp(nal)`.
pub(crate) fn rbsp_prefix(nal: &[u8], out: &mut [u8]) -> usize {
    let (mut zeros, mut n) = (0, 0);
    for &b in nal {
        if n == out.len() {
            break;
        }
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        out[n] = b;
        n += 1;
    }
    n
}

/// Where the first `rbsp_len` bytes of the RBSP of `payload` end in `payload`
/// itself, counting the emulation prevention bytes among them.
pub(crate) fn rbsp_len_in_payload(payload: &[u8], rbsp_len: usize) -> Option<usize> {
    let (mut zeros, mut seen) = (0, 0);
    for (i, &b) in payload.iter().enumerate() {
        if seen == rbsp_len {
            return Some(i);
        }
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        seen += 1;
    }
    (seen == rbsp_len).then_some(payload.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_golomb() {
        // 1 | 010 | 011 | 00100 | 00101 -> ue 0,1,2,3 then se(4) = -2
        let mut r = BitReader::new(&[0b1010_0110, 0b0100_0010, 0b1000_0000]);
        assert_eq!(r.ue(), Some(0));
        assert_eq!(r.ue(), Some(1));
        assert_eq!(r.ue(), Some(2));
        assert_eq!(r.ue(), Some(3));
        assert_eq!(r.se(), Some(-2));
        assert_eq!(BitReader::new(&[0, 0, 0, 0, 0]).ue(), None);
    }

    #[test]
    fn removes_emulation_prevention() {
        assert_eq!(rbsp(&[0, 0, 3, 1, 0, 0, 3]), vec![0, 0, 1, 0, 0]);
    }

    #[test]
    fn rbsp_prefix_is_a_prefix_of_rbsp() {
        let nal = [0, 0, 3, 1, 0, 0, 3, 0, 0, 3, 3, 7, 0, 0, 3];
        let full = rbsp(&nal);
        for room in 0..20 {
            let mut out = [0xAAu8; 20];
            let n = rbsp_prefix(&nal, &mut out[..room]);
            assert_eq!(n, room.min(full.len()));
            assert_eq!(&out[..n], &full[..n]);
        }
    }
}
