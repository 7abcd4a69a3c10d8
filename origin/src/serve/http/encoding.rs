//! Content coding for playlists: brotli or gzip, as the client's
//! `Accept-Encoding` allows (RFC 9110 §12.5.3). Media is never compressed (it
//! does not shrink, and byte ranges must address the stored bytes).

use std::io::Write;

use bytes::Bytes;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    Identity,
    Gzip,
    Br,
}

impl Coding {
    pub fn name(self) -> Option<&'static str> {
        match self {
            Coding::Identity => None,
            Coding::Gzip => Some("gzip"),
            Coding::Br => Some("br"),
        }
    }

    /// The preferred coding among those the header accepts (`q=0` refuses one);
    /// brotli over gzip at equal weight.
    pub fn negotiate(accept_encoding: Option<&str>) -> Coding {
        let Some(header) = accept_encoding else {
            return Coding::Identity;
        };
        let (mut br, mut gzip, mut star) = (None, None, None);
        for item in header.split(',') {
            let mut params = item.split(';');
            let name = params.next().unwrap_or("").trim().to_ascii_lowercase();
            let q = params
                .filter_map(|p| p.trim().strip_prefix("q=").or(p.trim().strip_prefix("Q=")))
                .find_map(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            match name.as_str() {
                "br" => br = Some(q),
                "gzip" | "x-gzip" => gzip = Some(q),
                "*" => star = Some(q),
                _ => {}
            }
        }
        let br = br.or(star).unwrap_or(0.0);
        let gzip = gzip.or(star).unwrap_or(0.0);
        if br > 0.0 && br >= gzip {
            Coding::Br
        } else if gzip > 0.0 {
            Coding::Gzip
        } else {
            Coding::Identity
        }
    }
}

pub fn gzip(data: &[u8]) -> Bytes {
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(data.len() / 3 + 64),
        flate2::Compression::new(6),
    );
    // Writing to a Vec cannot fail.
    let _ = enc.write_all(data);
    Bytes::from(enc.finish().unwrap_or_default())
}

pub fn brotli(data: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(data.len() / 3 + 64);
    {
        // Quality 5: most of the gain of higher levels at a fraction of the CPU; a
        // playlist is compressed once per change, not per request.
        let mut w = brotli::CompressorWriter::new(&mut out, 4096, 5, 20);
        let _ = w.write_all(data);
    }
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn negotiation() {
        for (h, want) in [
            (None, Coding::Identity),
            (Some(""), Coding::Identity),
            (Some("gzip"), Coding::Gzip),
            (Some("gzip, deflate, br"), Coding::Br),
            (Some("br;q=0, gzip"), Coding::Gzip),
            (Some("br;q=0.5, gzip;q=0.8"), Coding::Gzip),
            (Some("*"), Coding::Br),
            (Some("*;q=0"), Coding::Identity),
            (Some("identity"), Coding::Identity),
            (Some("GZIP"), Coding::Gzip),
        ] {
            assert_eq!(Coding::negotiate(h), want, "{h:?}");
        }
    }

    #[test]
    fn round_trips() {
        let text = "#EXTM3U\n#EXT-X-PART:DURATION=0.2,URI=\"part1.0.m4s\"\n".repeat(50);
        let gz = gzip(text.as_bytes());
        let mut back = String::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_string(&mut back)
            .unwrap();
        assert_eq!(back, text);
        let br = brotli(text.as_bytes());
        assert!(br.len() < text.len() / 5);
        let mut back = Vec::new();
        brotli::Decompressor::new(&br[..], 4096)
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, text.as_bytes());
    }
}
