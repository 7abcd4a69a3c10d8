//! What an input URL must be before Brook fetches it, as pure functions: the
//! URL's form (http or https, a host, no credentials), its normal form (the
//! dedupe key), a redirect's target, and whether an address may be connected
//! to. The fetch (`super`) calls these on every hop and on every address a
//! name resolves to.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use url::{Host, Url};

/// Longer input URLs are refused before parsing.
pub const MAX_URL_LEN: usize = 4096;

/// Why an input URL is not fetched.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UrlRefusal {
    #[error("input_url is longer than {MAX_URL_LEN} bytes")]
    TooLong,
    #[error("input_url is not a URL: {0}")]
    Unparsable(String),
    #[error("input_url must be http or https, not {0:?}")]
    Scheme(String),
    #[error("input_url has no host")]
    NoHost,
    #[error("input_url must not carry credentials (user:password@)")]
    Credentials,
    /// The host is, or resolves to, an address Brook does not connect to.
    #[error("{host} is or resolves to a non-public address ({why}): not fetched")]
    Address {
        host: String,
        addr: IpAddr,
        why: &'static str,
    },
    /// The host name does not resolve (now).
    #[error("{host} does not resolve: {reason}")]
    Unresolved { host: String, reason: String },
    /// A redirect without a usable `Location`.
    #[error("a redirect from {from} without a usable Location")]
    BadRedirect { from: String },
}

impl UrlRefusal {
    /// Whether the URL is well formed but names a place Brook will not
    /// fetch from (the API's 422; the others are 400).
    pub fn is_about_the_host(&self) -> bool {
        matches!(self, Self::Address { .. } | Self::Unresolved { .. })
    }
}

/// The URL as it is fetched, stored and compared for dedupe: parsed and
/// serialized by the `url` crate (scheme and host lowercased, default port
/// dropped, dot segments resolved, percent-encoding made uniform), without
/// its fragment (never sent to a server).
pub fn parse_input_url(s: &str) -> Result<Url, UrlRefusal> {
    if s.len() > MAX_URL_LEN {
        return Err(UrlRefusal::TooLong);
    }
    let mut url = Url::parse(s).map_err(|e| UrlRefusal::Unparsable(e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(UrlRefusal::Scheme(url.scheme().to_owned()));
    }
    if url.host().is_none() {
        return Err(UrlRefusal::NoHost);
    }
    // A stored credential would show in the asset's JSON and its webhooks.
    if !url.username().is_empty() || url.password().is_some() {
        return Err(UrlRefusal::Credentials);
    }
    url.set_fragment(None);
    Ok(url)
}

/// Where a redirect's `Location` (absolute or relative) leads from
/// `current`, held to the same rules as the first URL.
pub fn redirect_target(current: &Url, location: Option<&str>) -> Result<Url, UrlRefusal> {
    let bad = || UrlRefusal::BadRedirect {
        from: current.to_string(),
    };
    let location = location.filter(|l| !l.trim().is_empty()).ok_or_else(bad)?;
    let next = current.join(location.trim()).map_err(|_| bad())?;
    parse_input_url(next.as_str())
}

/// The address a URL's host names literally (`http://10.0.0.1/`,
/// `http://[::1]/`), checked; `Ok(None)` for a name (checked when it is
/// resolved).
pub fn check_literal(url: &Url, allow_private: bool) -> Result<Option<IpAddr>, UrlRefusal> {
    let addr = match url.host() {
        Some(Host::Ipv4(a)) => IpAddr::V4(a),
        Some(Host::Ipv6(a)) => IpAddr::V6(a),
        Some(Host::Domain(_)) => return Ok(None),
        None => return Err(UrlRefusal::NoHost),
    };
    check_addrs(&addr.to_string(), &[addr], allow_private)?;
    Ok(Some(addr))
}

/// Every address `host` resolved to must be one Brook may connect to: a
/// name that also points inside the network is refused whole (the
/// connection could go to any of them).
pub fn check_addrs(host: &str, addrs: &[IpAddr], allow_private: bool) -> Result<(), UrlRefusal> {
    if addrs.is_empty() {
        return Err(UrlRefusal::Unresolved {
            host: host.to_owned(),
            reason: "no addresses".into(),
        });
    }
    if allow_private {
        return Ok(());
    }
    for &addr in addrs {
        if let Some(why) = refused_address(addr) {
            return Err(UrlRefusal::Address {
                host: host.to_owned(),
                addr,
                why,
            });
        }
    }
    Ok(())
}

/// Why Brook does not connect to `addr` unless `vod.import_allow_private`
/// says so, or `None` for a public address. IPv6 forms that carry an IPv4
/// address (mapped, compatible, NAT64, 6to4) are judged by that address.
pub fn refused_address(addr: IpAddr) -> Option<&'static str> {
    match addr {
        IpAddr::V4(a) => refused_v4(a),
        IpAddr::V6(a) => refused_v6(a),
    }
}

fn refused_v4(a: Ipv4Addr) -> Option<&'static str> {
    let [b0, b1, ..] = a.octets();
    Some(if a.is_unspecified() {
        "unspecified"
    } else if b0 == 0 {
        "\"this network\" (0.0.0.0/8)"
    } else if a.is_loopback() {
        "loopback"
    } else if a.is_private() {
        "private (RFC 1918)"
    } else if a.is_link_local() {
        "link-local"
    } else if b0 == 100 && (b1 & 0xc0) == 64 {
        "shared address space (CGNAT, 100.64.0.0/10)"
    } else if a.is_broadcast() {
        "broadcast"
    } else if a.is_multicast() {
        "multicast"
    } else if b0 >= 240 {
        "reserved (240.0.0.0/4)"
    } else if b0 == 192 && b1 == 0 && a.octets()[2] == 0 {
        // IETF protocol assignments: DS-Lite, NAT64 discovery, and a cloud
        // metadata address (192.0.0.192).
        "IETF protocol assignments (192.0.0.0/24)"
    } else if b0 == 198 && (b1 & 0xfe) == 18 {
        "benchmarking (198.18.0.0/15)"
    } else if b0 == 192 && b1 == 88 && a.octets()[2] == 99 {
        "6to4 relay anycast (192.88.99.0/24)"
    } else if (b0, b1, a.octets()[2]) == (192, 0, 2)
        || (b0, b1, a.octets()[2]) == (198, 51, 100)
        || (b0, b1, a.octets()[2]) == (203, 0, 113)
    {
        "documentation (TEST-NET)"
    } else {
        return None;
    })
}

fn refused_v6(a: Ipv6Addr) -> Option<&'static str> {
    let s = a.segments();
    let o = a.octets();
    let v4 = |b: [u8; 4]| refused_v4(Ipv4Addr::from(b));
    if a.is_unspecified() {
        return Some("unspecified");
    }
    if a.is_loopback() {
        return Some("loopback");
    }
    // ::ffff:a.b.c.d (mapped) and ::a.b.c.d (compatible, deprecated).
    if s[..5] == [0; 5] && (s[5] == 0xffff || s[5] == 0) {
        return v4([o[12], o[13], o[14], o[15]]);
    }
    // 64:ff9b::a.b.c.d: a NAT64 gateway connects to the IPv4 address.
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return v4([o[12], o[13], o[14], o[15]]);
    }
    // 64:ff9b:1::/48: local-use NAT64 (RFC 8215), whatever it maps to.
    if s[..3] == [0x64, 0xff9b, 1] {
        return Some("local-use NAT64 (64:ff9b:1::/48)");
    }
    // 2002:aabb:ccdd::/48: 6to4 for a.b.c.d.
    if s[0] == 0x2002 {
        return v4([o[2], o[3], o[4], o[5]]);
    }
    // 2001:0::/32: Teredo (tunnels to an address it hides).
    if s[..2] == [0x2001, 0] {
        return Some("Teredo (2001::/32)");
    }
    if s[..2] == [0x2001, 0xdb8] {
        return Some("documentation (2001:db8::/32)");
    }
    Some(if (s[0] & 0xfe00) == 0xfc00 {
        "private (unique local, fc00::/7)"
    } else if (s[0] & 0xffc0) == 0xfe80 {
        "link-local"
    } else if (s[0] & 0xffc0) == 0xfec0 {
        "site-local (fec0::/10)"
    } else if (s[0] & 0xff00) == 0xff00 {
        "multicast"
    } else if (s[0] & 0xe000) != 0x2000 {
        // Only global unicast (2000::/3) is public; the rest is reserved
        // or special (::ffff:0:0:0/96, 100::/64, ...).
        "not global unicast (outside 2000::/3)"
    } else {
        return None;
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_non_public_range_is_refused() {
        for (addr, why) in [
            ("0.0.0.0", "unspecified"),
            ("0.1.2.3", "this network"),
            ("127.0.0.1", "loopback"),
            ("127.255.255.254", "loopback"),
            ("10.0.0.1", "RFC 1918"),
            ("10.255.255.255", "RFC 1918"),
            ("172.16.0.1", "RFC 1918"),
            ("172.31.255.255", "RFC 1918"),
            ("192.168.1.1", "RFC 1918"),
            ("169.254.169.254", "link-local"),
            ("100.64.0.1", "CGNAT"),
            ("100.127.255.255", "CGNAT"),
            ("224.0.0.1", "multicast"),
            ("239.255.255.250", "multicast"),
            ("255.255.255.255", "broadcast"),
            ("240.0.0.1", "reserved"),
            ("::", "unspecified"),
            ("::1", "loopback"),
            ("fc00::1", "unique local"),
            ("fd12:3456::1", "unique local"),
            ("fe80::1", "link-local"),
            ("febf::1", "link-local"),
            ("fec0::1", "site-local"),
            ("ff02::1", "multicast"),
            // IPv4 inside IPv6: judged by the IPv4 address.
            ("::ffff:127.0.0.1", "loopback"),
            ("::ffff:10.1.2.3", "RFC 1918"),
            ("::ffff:169.254.169.254", "link-local"),
            ("::ffff:100.64.0.1", "CGNAT"),
            ("::ffff:0.0.0.0", "unspecified"),
            ("::127.0.0.1", "loopback"),
            ("::192.168.0.1", "RFC 1918"),
            ("64:ff9b::a9fe:a9fe", "link-local"),
            ("64:ff9b::7f00:1", "loopback"),
            ("2002:7f00:1::1", "loopback"),
            ("2002:c0a8:101::1", "RFC 1918"),
            ("192.0.0.192", "192.0.0.0/24"),
            ("198.18.0.1", "benchmarking"),
            ("198.19.255.255", "benchmarking"),
            ("192.88.99.1", "6to4 relay"),
            ("192.0.2.1", "TEST-NET"),
            ("203.0.113.9", "TEST-NET"),
            ("64:ff9b:1::a9fe:a9fe", "local-use NAT64"),
            ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "Teredo"),
            ("2001:db8::1", "documentation"),
            ("100::1", "outside 2000::/3"),
            ("::1:2:3:4", "outside 2000::/3"),
            ("::ffff:0:7f00:1", "outside 2000::/3"),
        ] {
            let ip: IpAddr = addr.parse().unwrap();
            let got = refused_address(ip);
            assert!(got.is_some_and(|g| g.contains(why)), "{addr}: {got:?}");
            let e = check_addrs("h.example", &[ip], false).unwrap_err();
            assert!(e.is_about_the_host(), "{addr}");
            assert!(check_addrs("h.example", &[ip], true).is_ok(), "{addr}");
        }
    }

    #[test]
    fn public_addresses_are_allowed() {
        for addr in [
            "8.8.8.8",
            "1.1.1.1",
            "93.184.215.14",
            "100.63.255.255",
            "100.128.0.1",
            "172.15.255.255",
            "172.32.0.1",
            "169.253.1.1",
            "192.169.0.1",
            "223.255.255.254",
            "2606:4700:4700::1111",
            "2a00:1450:4001:82b::200e",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
        ] {
            let ip: IpAddr = addr.parse().unwrap();
            assert_eq!(refused_address(ip), None, "{addr}");
        }
        let public: IpAddr = "8.8.8.8".parse().unwrap();
        let private: IpAddr = "10.0.0.8".parse().unwrap();
        assert!(check_addrs("h", &[public], false).is_ok());
        // One bad address among good ones refuses the name.
        let e = check_addrs("h", &[public, private], false).unwrap_err();
        assert_eq!(
            e.to_string(),
            // The address itself stays out of the message (the API's
            // answer and the asset's error): no oracle for internal DNS.
            "h is or resolves to a non-public address (private (RFC 1918)): not fetched"
        );
        assert!(matches!(
            check_addrs("h", &[], true),
            Err(UrlRefusal::Unresolved { .. })
        ));
    }

    #[test]
    fn input_urls_are_checked_and_normalized() {
        for (given, want) in [
            (
                "https://cdn.example.com/ad.mp4",
                "https://cdn.example.com/ad.mp4",
            ),
            (
                "HTTPS://CDN.Example.COM:443/a/../ad.mp4#t=3",
                "https://cdn.example.com/ad.mp4",
            ),
            (
                "http://cdn.example.com:80/x y.mp4?b=1&a=2",
                "http://cdn.example.com/x%20y.mp4?b=1&a=2",
            ),
            (
                "http://cdn.example.com:8080",
                "http://cdn.example.com:8080/",
            ),
            ("http://[2606:4700::1111]/v", "http://[2606:4700::1111]/v"),
        ] {
            assert_eq!(parse_input_url(given).unwrap().as_str(), want, "{given}");
        }
        for (given, want) in [
            (
                "",
                UrlRefusal::Unparsable("relative URL without a base".into()),
            ),
            (
                "/ad.mp4",
                UrlRefusal::Unparsable("relative URL without a base".into()),
            ),
            (
                "ftp://cdn.example.com/ad.mp4",
                UrlRefusal::Scheme("ftp".into()),
            ),
            ("file:///etc/passwd", UrlRefusal::Scheme("file".into())),
            ("gopher://h/", UrlRefusal::Scheme("gopher".into())),
            (
                "data:video/mp4;base64,AAAA",
                UrlRefusal::Scheme("data".into()),
            ),
            (
                "http://user:pw@cdn.example.com/a.mp4",
                UrlRefusal::Credentials,
            ),
            ("http://user@cdn.example.com/a.mp4", UrlRefusal::Credentials),
        ] {
            assert_eq!(parse_input_url(given), Err(want), "{given}");
        }
        assert!(matches!(
            parse_input_url("http://"),
            Err(UrlRefusal::Unparsable(_))
        ));
        let long = format!("https://h.example/{}", "a".repeat(MAX_URL_LEN));
        assert_eq!(parse_input_url(&long), Err(UrlRefusal::TooLong));
        for bad in [
            UrlRefusal::TooLong,
            UrlRefusal::Scheme("ftp".into()),
            UrlRefusal::Credentials,
        ] {
            assert!(!bad.is_about_the_host());
        }
    }

    #[test]
    fn literal_addresses_are_checked_names_are_left_to_resolution() {
        let url = |s| parse_input_url(s).unwrap();
        for refused in [
            "http://127.0.0.1:8080/a.mp4",
            "http://[::1]/a.mp4",
            "http://[::ffff:7f00:1]/a.mp4",
            "http://169.254.169.254/latest/meta-data",
            "http://0x7f.1/a.mp4", // the url crate reads it as 127.0.0.1
            "http://2130706433/a.mp4",
            "http://[fd00::1]/",
        ] {
            let e = check_literal(&url(refused), false).unwrap_err();
            assert!(matches!(e, UrlRefusal::Address { .. }), "{refused}: {e:?}");
            assert!(check_literal(&url(refused), true).is_ok(), "{refused}");
        }
        assert_eq!(
            check_literal(&url("http://8.8.8.8/a.mp4"), false),
            Ok(Some("8.8.8.8".parse().unwrap()))
        );
        assert_eq!(
            check_literal(&url("http://localhost/a.mp4"), false),
            Ok(None)
        );
    }

    #[test]
    fn redirect_targets_follow_the_same_rules() {
        let from = parse_input_url("https://a.example/ads/x.mp4?sig=1").unwrap();
        for (location, want) in [
            ("https://b.example/y.mp4", "https://b.example/y.mp4"),
            ("/z.mp4", "https://a.example/z.mp4"),
            ("w.mp4", "https://a.example/ads/w.mp4"),
            ("//c.example/v.mp4#frag", "https://c.example/v.mp4"),
            ("  http://d.example/u.mp4 ", "http://d.example/u.mp4"),
        ] {
            assert_eq!(
                redirect_target(&from, Some(location)).unwrap().as_str(),
                want,
                "{location}"
            );
        }
        assert_eq!(
            redirect_target(&from, Some("file:///etc/passwd")),
            Err(UrlRefusal::Scheme("file".into()))
        );
        assert_eq!(
            redirect_target(&from, Some("http://u:p@e.example/")),
            Err(UrlRefusal::Credentials)
        );
        for missing in [None, Some(""), Some("   ")] {
            assert!(matches!(
                redirect_target(&from, missing),
                Err(UrlRefusal::BadRedirect { .. })
            ));
        }
        // A redirect to a private literal is refused when it is checked.
        let inside = redirect_target(&from, Some("http://10.0.0.5/x")).unwrap();
        assert!(check_literal(&inside, false).is_err());
    }
}
