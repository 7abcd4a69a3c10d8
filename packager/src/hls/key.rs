//! `EXT-X-KEY` (RFC 8216bis §4.4.4.4) and `EXT-X-SESSION-KEY` (§4.4.6.5): how
//! a player finds the key of the segments that follow. For CMAF with Common
//! Encryption the method names the scheme (`SAMPLE-AES` = `cbcs`,
//! `SAMPLE-AES-CTR` = `cenc`) and `KEYFORMAT` the key system; one tag per key
//! system, consecutive.

use super::attr::{AttrWriter, AttributeList};

#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    /// `NONE`, `AES-128`, `SAMPLE-AES`, `SAMPLE-AES-CTR`.
    pub method: String,
    pub uri: Option<String>,
    pub keyformat: Option<String>,
    /// `KEYID`: the KID as a hexadecimal-sequence (`0x…`), which hls.js uses
    /// to ask for the right key.
    pub keyid: Option<String>,
    /// Other attributes (`IV`, `KEYFORMATVERSIONS`, ...), as written.
    pub extra: AttributeList,
}

impl Key {
    pub fn new(method: &str, uri: String, keyformat: &str, kid: &[u8; 16]) -> Self {
        Self {
            method: method.to_string(),
            uri: Some(uri),
            keyformat: Some(keyformat.to_string()),
            keyid: Some(format!("0x{}", crate::cmaf::cenc::hex(kid))),
            extra: AttributeList::default(),
        }
    }

    /// A key from an attribute list as written after `#EXT-X-KEY:` (a DRM
    /// key provider's signalling): `METHOD` required.
    pub fn from_attrs(text: &str) -> Result<Self, super::ParseError> {
        use super::attr::AttrValue;
        let mut a = AttributeList::parse(text, 0)?;
        let method = match a.take("METHOD") {
            Some(AttrValue::Bare(m)) => m,
            _ => return Err(super::ParseError::new(0, "EXT-X-KEY without a bare METHOD")),
        };
        // KEYID is a hexadecimal-sequence, written bare: a quoted one stays
        // as written (among the other attributes).
        let bare_keyid = matches!(
            a.0.iter().find(|(n, _)| n == "KEYID"),
            Some((_, AttrValue::Bare(_)))
        );
        let keyid = if bare_keyid {
            a.take("KEYID").map(|v| v.as_str().to_string())
        } else {
            None
        };
        Ok(Self {
            method,
            uri: a.take_str("URI"),
            keyformat: a.take_str("KEYFORMAT"),
            keyid,
            extra: a,
        })
    }

    /// The attribute list as written after `#EXT-X-KEY:`.
    pub fn attrs(&self) -> String {
        let mut w = AttrWriter::default();
        w.bare("METHOD", &self.method);
        if let Some(u) = &self.uri {
            w.quoted("URI", u);
        }
        if let Some(k) = &self.keyformat {
            w.quoted("KEYFORMAT", k);
        }
        if let Some(k) = &self.keyid {
            w.bare("KEYID", k);
        }
        w.extra(&self.extra).finish()
    }
}
