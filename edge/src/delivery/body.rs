//! Reading a body with its size checked while it is read, never after: a
//! client (or an origin) that sends more than allowed costs at most the
//! limit in memory, whatever it declares.
//!
//! ```text
//! let mut body = Limited::new(16 * 1024);
//! body.declared(content_length)?;          // a Content-Length over the limit: refused before reading
//! for chunk in stream { body.push(&chunk)?; } // refused as soon as the limit is passed
//! let bytes = body.finish();
//! ```

/// A body that grew (or was declared) larger than its limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooLarge {
    pub limit: usize,
}

impl std::fmt::Display for TooLarge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "body larger than {} bytes", self.limit)
    }
}

/// Bytes read so far, at most `limit` of them.
#[derive(Debug, Clone)]
pub struct Limited {
    limit: usize,
    bytes: Vec<u8>,
}

impl Limited {
    pub fn new(limit: usize) -> Self {
        Self {
            limit,
            bytes: Vec::new(),
        }
    }

    /// Refuses a `Content-Length` over the limit before anything is read
    /// (one that does not parse says nothing: the reading decides).
    pub fn declared(&self, content_length: Option<&str>) -> Result<(), TooLarge> {
        match content_length.and_then(|l| l.trim().parse::<u64>().ok()) {
            Some(n) if n > self.limit as u64 => Err(TooLarge { limit: self.limit }),
            _ => Ok(()),
        }
    }

    /// Adds a chunk; refused (and not kept) when the body would pass the limit.
    pub fn push(&mut self, chunk: &[u8]) -> Result<(), TooLarge> {
        if self.bytes.len().saturating_add(chunk.len()) > self.limit {
            return Err(TooLarge { limit: self.limit });
        }
        self.bytes.extend_from_slice(chunk);
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    pub fn finish(self) -> Vec<u8> {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_is_checked_while_reading() {
        let mut b = Limited::new(10);
        assert_eq!(b.declared(Some("10")), Ok(()));
        assert_eq!(b.declared(Some(" 11 ")), Err(TooLarge { limit: 10 }));
        assert_eq!(b.declared(Some("lots")), Ok(()));
        assert_eq!(b.declared(None), Ok(()));
        assert_eq!(b.push(b"12345"), Ok(()));
        assert_eq!(b.push(b"67890"), Ok(()));
        assert_eq!(b.push(b"x"), Err(TooLarge { limit: 10 }));
        assert_eq!(b.len(), 10, "the refused chunk is not kept");
        assert_eq!(b.finish(), b"1234567890");
        // A single chunk over the limit is refused whole.
        let mut b = Limited::new(4);
        assert!(b.push(&[0; 5]).is_err());
        assert!(b.is_empty());
    }
}
