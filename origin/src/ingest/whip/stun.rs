//! Just enough STUN (RFC 8489) to route a datagram to its session: the
//! `USERNAME` of a binding request is `<receiver ufrag>:<sender ufrag>` (RFC
//! 8445 §7.2.2), and the receiver's ufrag names the session. Integrity is
//! checked by the session's ICE agent afterwards.

const MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xA4, 0x42];
const HEADER_LEN: usize = 20;
const ATTR_USERNAME: u16 = 0x0006;

/// Whether `data` looks like a STUN message (RFC 7983 §7: first byte 0..=3,
/// then the magic cookie).
pub fn is_stun(data: &[u8]) -> bool {
    data.len() >= HEADER_LEN && data[0] < 4 && data[4..8] == MAGIC_COOKIE
}

/// The local (receiver's) ufrag of a STUN message's `USERNAME`, if it has one.
pub fn local_ufrag(data: &[u8]) -> Option<&str> {
    if !is_stun(data) {
        return None;
    }
    let declared = usize::from(u16::from_be_bytes([data[2], data[3]]));
    let body = data.get(HEADER_LEN..HEADER_LEN + declared)?;
    let mut rest = body;
    while rest.len() >= 4 {
        let kind = u16::from_be_bytes([rest[0], rest[1]]);
        let len = usize::from(u16::from_be_bytes([rest[2], rest[3]]));
        let value = rest.get(4..4 + len)?;
        if kind == ATTR_USERNAME {
            let username = std::str::from_utf8(value).ok()?;
            let (local, _remote) = username.split_once(':')?;
            return (!local.is_empty()).then_some(local);
        }
        let padded = (len + 3) & !3;
        rest = rest.get(4 + padded..)?;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A binding request as Chromium sends it: USERNAME, then other attributes.
    fn binding(username: &[u8], declared_extra: i32) -> Vec<u8> {
        let mut attrs = Vec::new();
        attrs.extend_from_slice(&0xC057u16.to_be_bytes()); // network cost
        attrs.extend_from_slice(&4u16.to_be_bytes());
        attrs.extend_from_slice(&[0, 1, 0, 10]);
        attrs.extend_from_slice(&ATTR_USERNAME.to_be_bytes());
        attrs.extend_from_slice(&(username.len() as u16).to_be_bytes());
        attrs.extend_from_slice(username);
        while attrs.len() % 4 != 0 {
            attrs.push(0);
        }
        let mut m = vec![0x00, 0x01];
        m.extend_from_slice(&((attrs.len() as i32 + declared_extra) as u16).to_be_bytes());
        m.extend_from_slice(&MAGIC_COOKIE);
        m.extend_from_slice(&[7; 12]);
        m.extend_from_slice(&attrs);
        m
    }

    #[test]
    fn finds_the_local_ufrag() {
        assert_eq!(local_ufrag(&binding(b"EkR3:y3NF", 0)), Some("EkR3"));
        assert_eq!(local_ufrag(&binding(b"abc", 0)), None, "no colon");
        assert_eq!(
            local_ufrag(&binding(b":y3NF", 0)),
            None,
            "empty local ufrag"
        );
        assert_eq!(
            local_ufrag(&binding(b"a:b", 8)),
            None,
            "length past the end"
        );
        assert_eq!(
            local_ufrag(&binding(&[0xff, b':', b'a'], 0)),
            None,
            "not UTF-8"
        );
    }

    #[test]
    fn not_stun() {
        assert!(!is_stun(&[0x80; 40]), "RTP");
        assert!(!is_stun(&[22; 40]), "DTLS");
        assert!(!is_stun(&[0; 19]));
        let m = binding(b"a:b", 0);
        for cut in 0..m.len() {
            let _ = local_ufrag(&m[..cut]);
        }
    }
}
