//! SPEKE v2.0 (Secure Packager and Encoder Key Exchange, AWS's profile of
//! DASH-IF CPIX 2.3): how Brook gets content keys and Widevine, PlayReady and
//! FairPlay signalling from a commercial multi-DRM service (PallyCon, BuyDRM,
//! Axinom, EZDRM, ...) while it encrypts the media itself. Players then get
//! their licenses from that service; Brook never sees a license request.
//!
//! ```text
//! Brook ── POST <keys.speke.url>  X-Speke-Version: 2.0, application/xml ──▶ key provider
//!   <cpix:CPIX contentId="<asset>" version="2.3">
//!     ContentKeyList: one ContentKey (kid, commonEncryptionScheme)
//!     DRMSystemList: per system, empty PSSH, ContentProtectionData, HLSSignalingData (media, master)
//!     ContentKeyUsageRuleList: the key for every track (intendedTrackType="ALL")
//!   ◀── the same document with the key (pskc:PlainValue, base64), optional
//!       explicitIV, and per system the pssh box, the DASH ContentProtection
//!       content and the HLS tags, each base64
//! ```
//!
//! What this module checks before anything reaches a manifest: the answer's
//! `X-Speke-Version`, its size, that the key is 16 bytes, that every pssh is
//! one whole `pssh` box of the system it is listed under, that DASH data is
//! well-formed XML without DTDs, that HLS data holds only `EXT-X-KEY` (media)
//! or `EXT-X-SESSION-KEY` (master) tags whose `METHOD` is the scheme's.
//! Encrypted content keys (SPEKE's content key encryption, `DeliveryDataList`)
//! are refused with a clear error: the key must come in `pskc:PlainValue`
//! over HTTPS.
//!
//! Tested against a test double that follows the published request and
//! response schema (tests/e2e/drm.test.mjs); never against a real DRM
//! service, and no Widevine/PlayReady/FairPlay CDM plays the result here
//! (headless Chromium has none). See docs/drm.md.

use base64::Engine;
use brook_packager::cmaf::cenc::{uuid, ContentKey, DrmSignalling, Scheme};
use quick_xml::events::Event;
use serde::{Deserialize, Serialize};

/// The largest answer read, bytes.
pub const MAX_ANSWER: usize = 1 << 20;

/// A DRM system Brook can ask a key provider for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DrmSystem {
    Widevine,
    Playready,
    Fairplay,
}

impl DrmSystem {
    pub fn system_id(self) -> [u8; 16] {
        let hex = match self {
            DrmSystem::Widevine => "edef8ba979d64acea3c827dcd51d21ed",
            DrmSystem::Playready => "9a04f07998404286ab92e65be0885f95",
            DrmSystem::Fairplay => "94ce86fb07ff4f43adb893d2fa968ca2",
        };
        super::kid_from_hex(hex).expect("a constant")
    }

    /// DASH `ContentProtection@value`.
    fn dash_value(self) -> Option<&'static str> {
        match self {
            DrmSystem::Widevine => Some("Widevine"),
            DrmSystem::Playready => Some("MSPR 2.0"),
            DrmSystem::Fairplay => None,
        }
    }

    /// FairPlay has no pssh and is not signalled in DASH.
    fn in_dash(self) -> bool {
        self != DrmSystem::Fairplay
    }
}

/// `[keys.speke]`: the key provider.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpekeConfig {
    /// The provider's SPEKE v2 endpoint (`https://...`).
    pub url: String,
    /// Sent as `Authorization: Bearer <token>` when set (`BROOK_SPEKE_TOKEN`
    /// overrides it).
    #[serde(default)]
    pub token: Option<String>,
    /// The DRM systems asked for. Default: all three.
    #[serde(default = "all_systems")]
    pub systems: Vec<DrmSystem>,
    /// Offer W3C ClearKey too (the edge's license endpoint hands out the
    /// provider's content key). Only for tests and browsers without a
    /// commercial CDM: with it, anyone with a viewer token gets the key in the
    /// clear, which defeats the DRM. Default false.
    #[serde(default)]
    pub clearkey: bool,
    /// Request timeout, ms. Default 10000.
    #[serde(default = "default_timeout")]
    pub timeout_ms: u64,
}

fn all_systems() -> Vec<DrmSystem> {
    vec![
        DrmSystem::Widevine,
        DrmSystem::Playready,
        DrmSystem::Fairplay,
    ]
}

fn default_timeout() -> u64 {
    10_000
}

impl std::fmt::Debug for SpekeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpekeConfig")
            .field("url", &self.url)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("systems", &self.systems)
            .field("clearkey", &self.clearkey)
            .field("timeout_ms", &self.timeout_ms)
            .finish()
    }
}

impl SpekeConfig {
    pub fn validate(&self) -> Result<(), String> {
        let u = url::Url::parse(&self.url).map_err(|e| format!("keys.speke.url: {e}"))?;
        // The answer carries the content key in the clear (pskc:PlainValue):
        // HTTPS, except to this machine (a local proxy or a test double).
        let loopback = match u.host() {
            Some(url::Host::Ipv4(a)) => a.is_loopback(),
            Some(url::Host::Ipv6(a)) => a.is_loopback(),
            Some(url::Host::Domain(d)) => d == "localhost",
            None => false,
        };
        match u.scheme() {
            "https" => {}
            "http" if loopback => {}
            _ => {
                return Err(
                    "keys.speke.url must be an https URL (http only to a loopback address)".into(),
                )
            }
        }
        if self.systems.is_empty() {
            return Err("keys.speke.systems must name at least one DRM system".into());
        }
        if !(100..=120_000).contains(&self.timeout_ms) {
            return Err("keys.speke.timeout_ms must be within 100..=120000".into());
        }
        Ok(())
    }

    pub fn with_env(mut self) -> Self {
        if let Some(t) = std::env::var("BROOK_SPEKE_TOKEN")
            .ok()
            .filter(|t| !t.is_empty())
        {
            self.token = Some(t);
        }
        self
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SpekeError {
    #[error("key provider unreachable: {0}")]
    Http(String),
    #[error("key provider answered {status}: {body}")]
    Status { status: u16, body: String },
    #[error("key provider's answer: {0}")]
    Answer(String),
}

fn bad(what: impl Into<String>) -> SpekeError {
    SpekeError::Answer(what.into())
}

/// One DRM system's signalling as stored with the asset (JSON) and given to
/// the packager.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SystemSignalling {
    pub system: DrmSystem,
    /// The whole `pssh` box, base64; none for FairPlay.
    pub pssh: Option<String>,
    pub dash_children: Option<String>,
    pub hls_keys: Vec<String>,
    pub hls_session_keys: Vec<String>,
}

impl SystemSignalling {
    pub fn to_packager(&self) -> DrmSignalling {
        DrmSignalling {
            system_id: self.system.system_id(),
            dash_value: self.system.dash_value().map(str::to_owned),
            dash_children: self.dash_children.clone(),
            hls_keys: self.hls_keys.clone(),
            hls_session_keys: self.hls_session_keys.clone(),
        }
    }

    pub fn pssh_box(&self) -> Option<Vec<u8>> {
        base64::engine::general_purpose::STANDARD
            .decode(self.pssh.as_deref()?)
            .ok()
    }
}

/// What the provider gave for one key.
#[derive(Clone)]
pub struct SpekeKey {
    pub key: ContentKey,
    pub systems: Vec<SystemSignalling>,
}

impl std::fmt::Debug for SpekeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpekeKey")
            .field("key", &self.key)
            .field("systems", &self.systems)
            .finish()
    }
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The CPIX request for one key of `content_id`.
pub fn request_document(
    content_id: &str,
    kid: &[u8; 16],
    scheme: Scheme,
    systems: &[DrmSystem],
) -> String {
    let kid = uuid(kid);
    let mut drm = String::new();
    for s in systems {
        drm.push_str(&format!(
            "    <cpix:DRMSystem kid=\"{kid}\" systemId=\"{}\">\n",
            uuid(&s.system_id())
        ));
        if s.in_dash() {
            drm.push_str("      <cpix:PSSH/>\n      <cpix:ContentProtectionData/>\n");
        }
        drm.push_str(
            "      <cpix:HLSSignalingData playlist=\"media\"/>\n      \
             <cpix:HLSSignalingData playlist=\"master\"/>\n    </cpix:DRMSystem>\n",
        );
    }
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <cpix:CPIX xmlns:cpix=\"urn:dashif:org:cpix\" xmlns:pskc=\"urn:ietf:params:xml:ns:keyprov:pskc\" \
         contentId=\"{}\" version=\"2.3\">\n  \
         <cpix:ContentKeyList>\n    <cpix:ContentKey kid=\"{kid}\" commonEncryptionScheme=\"{}\"/>\n  </cpix:ContentKeyList>\n  \
         <cpix:DRMSystemList>\n{drm}  </cpix:DRMSystemList>\n  \
         <cpix:ContentKeyUsageRuleList>\n    <cpix:ContentKeyUsageRule kid=\"{kid}\" intendedTrackType=\"ALL\"/>\n  </cpix:ContentKeyUsageRuleList>\n\
         </cpix:CPIX>\n",
        xml_escape(content_id),
        scheme.name(),
    )
}

/// What the parser collects of one DRMSystem element.
#[derive(Default)]
struct RawSystem {
    kid: String,
    system_id: String,
    pssh: Option<String>,
    dash: Option<String>,
    hls_media: Option<String>,
    hls_master: Option<String>,
}

/// The key and signalling for `kid` in a provider's CPIX answer.
pub fn parse_answer(
    body: &[u8],
    kid: &[u8; 16],
    scheme: Scheme,
    systems: &[DrmSystem],
) -> Result<SpekeKey, SpekeError> {
    let want = uuid(kid);
    let mut reader = quick_xml::Reader::from_reader(body);
    reader.config_mut().trim_text(true);
    let mut path: Vec<String> = Vec::new();
    let mut key_b64: Option<String> = None;
    let mut explicit_iv: Option<String> = None;
    let mut in_our_key = false;
    let mut found_key_element = false;
    let mut raw: Vec<RawSystem> = Vec::new();
    let mut current: Option<RawSystem> = None;
    let mut hls_playlist: Option<String> = None;
    let mut saw_root = false;
    let mut buf = Vec::new();
    loop {
        let ev = reader
            .read_event_into(&mut buf)
            .map_err(|e| bad(format!("not XML: {e}")))?;
        match ev {
            Event::Eof => break,
            Event::DocType(_) => return Err(bad("a DTD is not accepted")),
            Event::Start(ref e) | Event::Empty(ref e) => {
                let empty = matches!(ev, Event::Empty(_));
                let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                let mut attrs = std::collections::HashMap::new();
                for a in e.attributes() {
                    let a = a.map_err(|e| bad(format!("bad attribute: {e}")))?;
                    let k = String::from_utf8_lossy(a.key.local_name().as_ref()).into_owned();
                    let v = a
                        .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                        .map_err(|e| bad(format!("bad attribute value: {e}")))?
                        .into_owned();
                    attrs.insert(k, v);
                }
                if path.is_empty() {
                    if name != "CPIX" {
                        return Err(bad(format!("the root element is {name}, not CPIX")));
                    }
                    saw_root = true;
                }
                if path.len() > 16 {
                    return Err(bad("nested too deeply"));
                }
                match name.as_str() {
                    "ContentKey" => {
                        let mine = attrs
                            .get("kid")
                            .is_some_and(|k| k.eq_ignore_ascii_case(&want));
                        if mine {
                            found_key_element = true;
                            explicit_iv = attrs.get("explicitIV").cloned();
                            in_our_key = !empty;
                        }
                    }
                    "DRMSystem" => {
                        current = Some(RawSystem {
                            kid: attrs.get("kid").cloned().unwrap_or_default(),
                            system_id: attrs.get("systemId").cloned().unwrap_or_default(),
                            ..RawSystem::default()
                        });
                        if empty {
                            raw.extend(current.take());
                        }
                    }
                    "HLSSignalingData" => {
                        hls_playlist = attrs.get("playlist").cloned();
                    }
                    "EncryptedValue" | "DeliveryDataList" if in_our_key || path.len() == 1 => {
                        return Err(bad(
                            "encrypted content keys (SPEKE content key encryption) are not \
                             supported: answer with pskc:PlainValue over HTTPS",
                        ));
                    }
                    _ => {}
                }
                if !empty {
                    path.push(name);
                }
            }
            Event::Text(t) => {
                let text = t
                    .xml10_content()
                    .map_err(|e| bad(format!("bad text: {e}")))?
                    .trim()
                    .to_owned();
                let leaf = path.last().map(String::as_str);
                match (leaf, current.as_mut()) {
                    (Some("PlainValue"), _) if in_our_key => key_b64 = Some(text),
                    (Some("PSSH"), Some(s)) => s.pssh = Some(text),
                    (Some("ContentProtectionData"), Some(s)) => s.dash = Some(text),
                    (Some("HLSSignalingData"), Some(s)) => match hls_playlist.as_deref() {
                        Some("master") => s.hls_master = Some(text),
                        _ => s.hls_media = Some(text),
                    },
                    _ => {}
                }
            }
            Event::End(e) => {
                let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                match name.as_str() {
                    "ContentKey" => in_our_key = false,
                    "DRMSystem" => raw.extend(current.take()),
                    _ => {}
                }
                path.pop();
            }
            _ => {}
        }
        buf.clear();
    }
    if !saw_root {
        return Err(bad("no CPIX document"));
    }
    if !found_key_element {
        return Err(bad(format!("no ContentKey for KID {want}")));
    }
    let b64 = base64::engine::general_purpose::STANDARD;
    let key = key_b64.ok_or_else(|| bad(format!("no key (pskc:PlainValue) for KID {want}")))?;
    let key: [u8; 16] = b64
        .decode(key.as_bytes())
        .ok()
        .and_then(|k| k.try_into().ok())
        .ok_or_else(|| bad("the content key is not 16 bytes of base64"))?;
    let iv: [u8; 16] = match explicit_iv {
        Some(iv) => b64
            .decode(iv.as_bytes())
            .ok()
            .and_then(|k| k.try_into().ok())
            .ok_or_else(|| bad("explicitIV is not 16 bytes of base64"))?,
        None => {
            let mut iv = [0u8; 16];
            getrandom::fill(&mut iv).map_err(|_| bad("no randomness from the OS"))?;
            iv
        }
    };
    let mut out = Vec::new();
    for &system in systems {
        let id = uuid(&system.system_id());
        let r = raw
            .iter()
            .find(|r| r.system_id.eq_ignore_ascii_case(&id) && r.kid.eq_ignore_ascii_case(&want))
            .ok_or_else(|| bad(format!("no DRMSystem {id} for KID {want}")))?;
        out.push(check_system(system, r, scheme)?);
    }
    Ok(SpekeKey {
        key: ContentKey { kid: *kid, key, iv },
        systems: out,
    })
}

fn decode_text(what: &str, b64: &str) -> Result<String, SpekeError> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64.as_bytes())
        .map_err(|_| bad(format!("{what} is not base64")))?;
    String::from_utf8(bytes).map_err(|_| bad(format!("{what} is not UTF-8")))
}

/// One system's data, checked.
fn check_system(
    system: DrmSystem,
    r: &RawSystem,
    scheme: Scheme,
) -> Result<SystemSignalling, SpekeError> {
    let name = format!("{system:?}");
    let pssh = match (&r.pssh, system.in_dash()) {
        (Some(p), true) => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(p.as_bytes())
                .map_err(|_| bad(format!("{name}: PSSH is not base64")))?;
            check_pssh(&bytes, &system.system_id()).map_err(|e| bad(format!("{name}: {e}")))?;
            Some(p.clone())
        }
        (None, true) => return Err(bad(format!("{name}: no PSSH"))),
        (_, false) => None,
    };
    let dash_children = match (&r.dash, system.in_dash()) {
        (Some(d), true) => {
            let xml = decode_text(&format!("{name}: ContentProtectionData"), d)?;
            check_xml(&xml).map_err(|e| bad(format!("{name}: ContentProtectionData {e}")))?;
            Some(xml)
        }
        // A pssh alone: DASH players read it from `<cenc:pssh>`.
        (None, true) => pssh.as_ref().map(|p| format!("<cenc:pssh>{p}</cenc:pssh>")),
        (_, false) => None,
    };
    let tags = |what: &str, b64: &Option<String>, tag: &str| -> Result<Vec<String>, SpekeError> {
        let Some(b64) = b64 else {
            return Ok(Vec::new());
        };
        let text = decode_text(&format!("{name}: HLSSignalingData {what}"), b64)?;
        let mut out = Vec::new();
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            let attrs = line
                .strip_prefix(tag)
                .ok_or_else(|| bad(format!("{name}: HLSSignalingData {what}: not a {tag} tag")))?;
            if line.contains(|c: char| c.is_control() || c == '\u{2028}' || c == '\u{2029}') {
                return Err(bad(format!(
                    "{name}: HLSSignalingData {what}: a control character or line separator"
                )));
            }
            let key = brook_packager::hls::Key::from_attrs(attrs)
                .map_err(|e| bad(format!("{name}: HLSSignalingData {what}: {e:?}")))?;
            if key.method != scheme.hls_method() {
                return Err(bad(format!(
                    "{name}: HLSSignalingData {what}: METHOD {} for a {} key",
                    key.method,
                    scheme.name()
                )));
            }
            let hex_kid = |k: &str| {
                k.strip_prefix("0x")
                    .or_else(|| k.strip_prefix("0X"))
                    .is_some_and(|h| h.len() == 32 && h.bytes().all(|b| b.is_ascii_hexdigit()))
            };
            if key.keyid.as_deref().is_some_and(|k| !hex_kid(k)) || key.extra.get("KEYID").is_some()
            {
                return Err(bad(format!(
                    "{name}: HLSSignalingData {what}: KEYID is not a 128-bit hexadecimal-sequence"
                )));
            }
            let line = key.attrs();
            if !out.contains(&line) {
                out.push(line);
            }
        }
        Ok(out)
    };
    // Absent, KEYFORMATVERSIONS is "1" (RFC 8216bis §4.4.4.4).
    let versions =
        |k: &brook_packager::hls::Key| k.extra.get("KEYFORMATVERSIONS").unwrap_or("1").to_owned();
    let hls_keys = tags("media", &r.hls_media, "#EXT-X-KEY:")?;
    let hls_session_keys = tags("master", &r.hls_master, "#EXT-X-SESSION-KEY:")?;
    // RFC 8216bis §4.4.6.5: a session key with a media key's URI has its
    // METHOD, KEYFORMAT and KEYFORMATVERSIONS.
    for sk in &hls_session_keys {
        let sk = brook_packager::hls::Key::from_attrs(sk).map_err(|e| bad(format!("{e:?}")))?;
        for mk in &hls_keys {
            let mk = brook_packager::hls::Key::from_attrs(mk).map_err(|e| bad(format!("{e:?}")))?;
            if mk.uri == sk.uri
                && (mk.method != sk.method
                    || mk.keyformat != sk.keyformat
                    || versions(&mk) != versions(&sk))
            {
                return Err(bad(format!(
                    "{name}: an EXT-X-SESSION-KEY differs from the EXT-X-KEY with its URI"
                )));
            }
        }
    }
    Ok(SystemSignalling {
        system,
        pssh,
        dash_children,
        hls_keys,
        hls_session_keys,
    })
}

/// One whole `pssh` box of `system`.
fn check_pssh(b: &[u8], system: &[u8; 16]) -> Result<(), String> {
    if b.len() < 32 || b.len() > 64 * 1024 {
        return Err(format!("a pssh box of {} bytes", b.len()));
    }
    let size = u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize;
    if size != b.len() || &b[4..8] != b"pssh" {
        return Err("PSSH is not one whole pssh box".into());
    }
    if b[12..28] != system[..] {
        return Err("the pssh box is another system's".into());
    }
    Ok(())
}

/// Whether `xml` can go inside the MPD's `ContentProtection` as it is:
/// well-formed (end names, attributes checked: quoted, no duplicates),
/// elements and attributes only in the prefixes the MPD declares (`cenc`,
/// `mspr`, `dashif`, or none), only the predefined entities and character
/// references, comments without `--`, no DTD, declaration, processing
/// instruction, and no character XML forbids.
fn check_xml(xml: &str) -> Result<(), String> {
    const PREFIXES: &[&[u8]] = &[b"cenc", b"mspr", b"dashif", b"xml"];
    if xml.len() > 64 * 1024 {
        return Err("too long".into());
    }
    if xml.contains(|c: char| c.is_control() && !matches!(c, '\t' | '\n' | '\r')) {
        return Err("holds a character XML forbids".into());
    }
    let prefix_ok = |name: quick_xml::name::QName<'_>| match name.prefix() {
        None => true,
        Some(p) => PREFIXES.contains(&p.as_ref()),
    };
    let mut reader = quick_xml::Reader::from_str(xml);
    let config = reader.config_mut();
    config.check_end_names = true;
    config.check_comments = true;
    let mut depth = 0usize;
    loop {
        match reader.read_event() {
            Ok(Event::Eof) => break,
            Ok(ev @ (Event::Start(_) | Event::Empty(_))) => {
                let (Event::Start(e) | Event::Empty(e)) = &ev else {
                    unreachable!()
                };
                if !prefix_ok(e.name()) {
                    return Err("uses a namespace prefix the MPD does not declare".into());
                }
                for a in e.attributes().with_checks(true) {
                    let a = a.map_err(|e| format!("has a bad attribute: {e}"))?;
                    if a.key.as_ref().starts_with(b"xmlns") {
                        return Err("declares a namespace".into());
                    }
                    if !prefix_ok(a.key) {
                        return Err("uses a namespace prefix the MPD does not declare".into());
                    }
                    a.normalized_value(quick_xml::XmlVersion::Implicit1_0)
                        .map_err(|e| format!("has a bad attribute value: {e}"))?;
                }
                if matches!(ev, Event::Start(_)) {
                    depth += 1;
                }
            }
            Ok(Event::End(_)) => depth = depth.checked_sub(1).ok_or("unbalanced")?,
            Ok(Event::GeneralRef(r)) => {
                let ok =
                    r.is_char_ref() || matches!(&r[..], b"lt" | b"gt" | b"amp" | b"quot" | b"apos");
                if !ok {
                    return Err("uses an entity XML does not predefine".into());
                }
            }
            Ok(Event::DocType(_) | Event::PI(_) | Event::Decl(_)) => {
                return Err("holds a declaration, DTD or processing instruction".into())
            }
            Ok(_) => {}
            Err(e) => return Err(format!("is not XML: {e}")),
        }
    }
    if depth != 0 {
        return Err("unbalanced".into());
    }
    Ok(())
}

/// Of `systems`, those that can signal a `scheme` key: FairPlay is `cbcs`
/// only.
pub fn systems_for(systems: &[DrmSystem], scheme: Scheme) -> Vec<DrmSystem> {
    systems
        .iter()
        .copied()
        .filter(|s| *s != DrmSystem::Fairplay || scheme == Scheme::Cbcs)
        .collect()
}

/// The client: one HTTP client, the provider's config.
pub struct SpekeClient {
    config: SpekeConfig,
    http: reqwest::Client,
}

impl std::fmt::Debug for SpekeClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpekeClient")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl SpekeClient {
    pub fn new(config: SpekeConfig) -> Result<Self, SpekeError> {
        let http = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(5))
            .timeout(std::time::Duration::from_millis(config.timeout_ms))
            // A redirect could send the request (and its bearer token) and
            // take the key from anywhere.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| SpekeError::Http(e.to_string()))?;
        Ok(Self { config, http })
    }

    pub fn config(&self) -> &SpekeConfig {
        &self.config
    }

    /// A new key for `content_id` (a fresh random KID) from the provider.
    pub async fn new_key(&self, content_id: &str, scheme: Scheme) -> Result<SpekeKey, SpekeError> {
        let mut kid = [0u8; 16];
        getrandom::fill(&mut kid).map_err(|_| bad("no randomness from the OS"))?;
        kid[6] = (kid[6] & 0x0f) | 0x40;
        kid[8] = (kid[8] & 0x3f) | 0x80;
        let systems = self.systems_for(scheme);
        if systems.is_empty() {
            return Err(bad(format!(
                "none of keys.speke.systems supports {} (FairPlay is cbcs only)",
                scheme.name()
            )));
        }
        let body = request_document(content_id, &kid, scheme, &systems);
        let mut req = self
            .http
            .post(&self.config.url)
            .header("content-type", "application/xml")
            .header("x-speke-version", "2.0")
            .body(body);
        if let Some(t) = &self.config.token {
            req = req.bearer_auth(t);
        }
        let mut res = req
            .send()
            .await
            .map_err(|e| SpekeError::Http(e.without_url().to_string()))?;
        let status = res.status().as_u16();
        let version = res
            .headers()
            .get("x-speke-version")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let mut body = Vec::new();
        while let Some(chunk) = res
            .chunk()
            .await
            .map_err(|e| SpekeError::Http(e.without_url().to_string()))?
        {
            if body.len() + chunk.len() > MAX_ANSWER {
                return Err(bad(format!("larger than {MAX_ANSWER} bytes")));
            }
            body.extend_from_slice(&chunk);
        }
        if status != 200 {
            let text: String = String::from_utf8_lossy(&body).chars().take(200).collect();
            return Err(SpekeError::Status { status, body: text });
        }
        if version.as_deref() != Some("2.0") {
            return Err(bad(format!(
                "X-Speke-Version {:?}, not 2.0",
                version.unwrap_or_default()
            )));
        }
        let got = parse_answer(&body, &kid, scheme, &systems)?;
        // Encrypted media must be playable in both formats: some system (or
        // ClearKey, which Brook signals itself) has to say where keys are.
        if !self.config.clearkey {
            if got.systems.iter().all(|s| s.hls_keys.is_empty()) {
                return Err(bad("no DRM system gave HLS signalling (EXT-X-KEY)"));
            }
            if got.systems.iter().all(|s| s.dash_children.is_none()) {
                return Err(bad(
                    "no DRM system gave DASH signalling (ContentProtection)",
                ));
            }
        }
        Ok(got)
    }

    /// The systems asked for with `scheme`: FairPlay only with `cbcs`.
    pub fn systems_for(&self, scheme: Scheme) -> Vec<DrmSystem> {
        systems_for(&self.config.systems, scheme)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KID: [u8; 16] = [
        0x6c, 0x5f, 0x56, 0x39, 0x4b, 0x5e, 0x4c, 0x5c, 0x9e, 0x1a, 0x1f, 0x6c, 0x2d, 0x3e, 0x4f,
        0x51,
    ];

    fn b64(b: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(b)
    }

    fn pssh_of(system: DrmSystem) -> Vec<u8> {
        let mut p = Vec::new();
        p.extend_from_slice(&36u32.to_be_bytes());
        p.extend_from_slice(b"pssh\0\0\0\0");
        p.extend_from_slice(&system.system_id());
        p.extend_from_slice(&4u32.to_be_bytes());
        p.extend_from_slice(b"data");
        p
    }

    /// An answer as a provider writes it (default namespace on purpose:
    /// prefixes are the provider's choice).
    fn answer(key: &[u8], media: &str) -> String {
        let kid = uuid(&KID);
        let wv = uuid(&DrmSystem::Widevine.system_id());
        let fp = uuid(&DrmSystem::Fairplay.system_id());
        format!(
            r#"<?xml version="1.0"?><CPIX xmlns="urn:dashif:org:cpix" xmlns:pskc="urn:ietf:params:xml:ns:keyprov:pskc" contentId="a" version="2.3">
<ContentKeyList><ContentKey kid="{kid}" commonEncryptionScheme="cbcs" explicitIV="{iv}"><Data><pskc:Secret><pskc:PlainValue>{key}</pskc:PlainValue></pskc:Secret></Data></ContentKey></ContentKeyList>
<DRMSystemList>
<DRMSystem kid="{kid}" systemId="{wv}"><PSSH>{pssh}</PSSH><ContentProtectionData>{cpd}</ContentProtectionData><HLSSignalingData playlist="media">{media}</HLSSignalingData><HLSSignalingData playlist="master">{master}</HLSSignalingData></DRMSystem>
<DRMSystem kid="{kid}" systemId="{fp}"><HLSSignalingData playlist="media">{fpm}</HLSSignalingData></DRMSystem>
</DRMSystemList></CPIX>"#,
            iv = b64(&[9u8; 16]),
            key = b64(key),
            pssh = b64(&pssh_of(DrmSystem::Widevine)),
            cpd = b64(b"<cenc:pssh>AAAA</cenc:pssh>"),
            media = b64(media.as_bytes()),
            master = b64(b"#EXT-X-SESSION-KEY:METHOD=SAMPLE-AES,URI=\"data:text/plain;base64,AAAA\",KEYFORMAT=\"urn:uuid:edef8ba9-79d6-4ace-a3c8-27dcd51d21ed\""),
            fpm = b64(b"#EXT-X-KEY:METHOD=SAMPLE-AES,URI=\"skd://key\",KEYFORMAT=\"com.apple.streamingkeydelivery\",KEYFORMATVERSIONS=\"1\""),
        )
    }

    const WV_MEDIA: &str = "#EXT-X-KEY:METHOD=SAMPLE-AES,URI=\"data:text/plain;base64,AAAA\",KEYFORMAT=\"urn:uuid:edef8ba9-79d6-4ace-a3c8-27dcd51d21ed\",KEYFORMATVERSIONS=\"1\"\n";
    const SYSTEMS: &[DrmSystem] = &[DrmSystem::Widevine, DrmSystem::Fairplay];

    #[test]
    fn request_names_the_key_every_system_and_escapes_the_content_id() {
        let doc = request_document("a\"<b>&", &KID, Scheme::Cbcs, &all_systems());
        assert!(doc.contains("contentId=\"a&quot;&lt;b&gt;&amp;\" version=\"2.3\""));
        assert!(doc.contains(&format!(
            "<cpix:ContentKey kid=\"{}\" commonEncryptionScheme=\"cbcs\"/>",
            uuid(&KID)
        )));
        assert_eq!(doc.matches("<cpix:DRMSystem ").count(), 3);
        assert_eq!(doc.matches("<cpix:PSSH/>").count(), 2, "none for FairPlay");
        assert!(doc.contains("intendedTrackType=\"ALL\""));
        let mut r = quick_xml::Reader::from_str(&doc);
        let mut depth = 0i32;
        loop {
            match r.read_event().expect("well-formed") {
                Event::Eof => break,
                Event::Start(_) => depth += 1,
                Event::End(_) => depth -= 1,
                _ => {}
            }
        }
        assert_eq!(depth, 0);
    }

    #[test]
    fn answer_gives_the_key_iv_and_checked_signalling() {
        let k = parse_answer(
            answer(&[7u8; 16], WV_MEDIA).as_bytes(),
            &KID,
            Scheme::Cbcs,
            SYSTEMS,
        )
        .unwrap();
        assert_eq!(
            (k.key.kid, k.key.key, k.key.iv),
            (KID, [7u8; 16], [9u8; 16])
        );
        let wv = &k.systems[0];
        assert_eq!(wv.pssh_box().unwrap(), pssh_of(DrmSystem::Widevine));
        assert_eq!(
            wv.dash_children.as_deref(),
            Some("<cenc:pssh>AAAA</cenc:pssh>")
        );
        assert_eq!(wv.hls_keys.len(), 1);
        assert_eq!(wv.hls_session_keys.len(), 1);
        let fp = &k.systems[1];
        assert_eq!((fp.pssh.as_ref(), fp.dash_children.as_ref()), (None, None));
        assert!(fp.hls_keys[0].contains("skd://key"));
        assert!(
            !format!("{k:?}").contains("0707070707"),
            "the key is never printed"
        );
        let p = wv.to_packager();
        assert_eq!(p.dash_value.as_deref(), Some("Widevine"));
    }

    #[test]
    fn bad_answers_are_refused_with_a_reason() {
        let wrong_method = WV_MEDIA.replace("SAMPLE-AES,", "SAMPLE-AES-CTR,");
        let not_a_key = "#EXT-X-MEDIA:TYPE=AUDIO\n";
        let cases: Vec<(String, &str)> = vec![
            (answer(&[7u8; 15], WV_MEDIA), "not 16 bytes"),
            (answer(&[7u8; 16], &wrong_method), "METHOD SAMPLE-AES-CTR"),
            (answer(&[7u8; 16], not_a_key), "not a #EXT-X-KEY: tag"),
            (
                answer(&[7u8; 16], WV_MEDIA).replace(&uuid(&KID), &uuid(&[1u8; 16])),
                "no ContentKey",
            ),
            (
                answer(&[7u8; 16], WV_MEDIA).replace(
                    &b64(&pssh_of(DrmSystem::Widevine)),
                    &b64(&pssh_of(DrmSystem::Playready)),
                ),
                "another system",
            ),
            (
                answer(&[7u8; 16], WV_MEDIA)
                    .replace(&b64(b"<cenc:pssh>AAAA</cenc:pssh>"), &b64(b"<a><b></a>")),
                "ContentProtectionData is not XML",
            ),
            (
                answer(&[7u8; 16], WV_MEDIA).replace(
                    "<pskc:Secret><pskc:PlainValue>",
                    "<pskc:Secret><pskc:EncryptedValue/><pskc:PlainValue>",
                ),
                "encrypted content keys",
            ),
            ("<!DOCTYPE x [<!ENTITY a \"b\">]><CPIX/>".into(), "DTD"),
            ("<Other/>".into(), "not CPIX"),
            ("not xml at all <".into(), ""),
            (String::new(), "no CPIX"),
        ];
        for (body, want) in cases {
            let e = parse_answer(body.as_bytes(), &KID, Scheme::Cbcs, SYSTEMS)
                .expect_err(want)
                .to_string();
            assert!(e.contains(want), "{e} should say {want}");
        }
        // Injection attempts in the HLS data: a CR inside a quoted string, a
        // quoted KEYID (written back bare it would add attributes), a
        // session key that contradicts the media key with its URI.
        let cr = "#EXT-X-KEY:METHOD=SAMPLE-AES,URI=\"skd://k\r#EXTINF:4,\rhttps://evil/s.m4s\",KEYFORMAT=\"x\"\n";
        let quoted_kid = "#EXT-X-KEY:METHOD=SAMPLE-AES,URI=\"x\",KEYID=\"0x1,URI=//x\"\n";
        for (media, want) in [(cr, "control character"), (quoted_kid, "KEYID")] {
            let e = parse_answer(
                answer(&[7u8; 16], media).as_bytes(),
                &KID,
                Scheme::Cbcs,
                SYSTEMS,
            )
            .unwrap_err()
            .to_string();
            assert!(e.contains(want), "{e}");
        }
        let other_format = WV_MEDIA.replace(
            "KEYFORMAT=\"urn:uuid:edef8ba9-79d6-4ace-a3c8-27dcd51d21ed\"",
            "KEYFORMAT=\"com.widevine\"",
        );
        let e = parse_answer(
            answer(&[7u8; 16], &other_format).as_bytes(),
            &KID,
            Scheme::Cbcs,
            SYSTEMS,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("EXT-X-SESSION-KEY differs"), "{e}");
        // Playready asked for but not answered.
        let e = parse_answer(
            answer(&[7u8; 16], WV_MEDIA).as_bytes(),
            &KID,
            Scheme::Cbcs,
            &[DrmSystem::Playready],
        )
        .unwrap_err();
        assert!(e.to_string().contains("no DRMSystem 9a04f079"), "{e}");
    }

    #[test]
    fn dash_data_must_fit_the_mpd_as_it_is() {
        for good in [
            "<cenc:pssh>AAAA</cenc:pssh>",
            "<cenc:pssh>AAAA</cenc:pssh><mspr:pro>AA&amp;&#65;</mspr:pro>",
            "<dashif:laurl Lic_type=\"EME-1.0\">https://x/?a=1&amp;b=2</dashif:laurl>",
            "<!-- a comment --><cenc:pssh/>",
        ] {
            assert_eq!(check_xml(good), Ok(()), "{good}");
        }
        for bad in [
            "<a '>",
            "<a b=\"1\" b=\"2\"/>",
            "<a b=1/>",
            "<a>&nbsp;</a>",
            "<widevine:x/>",
            "<x xmlns:w=\"urn:w\"/>",
            "<!-- a -- b --><a/>",
            "<a>",
            "</a>",
            "<a></b>",
            "<?pi x?><a/>",
            "<a>\u{1}</a>",
        ] {
            assert!(check_xml(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn config_is_checked_and_the_token_never_printed() {
        let c: SpekeConfig =
            toml::from_str("url = \"https://drm.example/speke/v2\"\ntoken = \"s3cret-token\"\n")
                .unwrap();
        assert_eq!(c.systems, all_systems());
        assert!(!c.clearkey);
        c.validate().unwrap();
        assert!(!format!("{c:?}").contains("s3cret"));
        for ok in [
            "url = \"http://127.0.0.1:9/speke\"",
            "url = \"http://localhost/s\"",
            "url = \"http://[::1]/s\"",
        ] {
            let c: SpekeConfig = toml::from_str(ok).unwrap();
            assert_eq!(c.validate(), Ok(()), "{ok}");
        }
        assert_eq!(
            systems_for(&all_systems(), Scheme::Cenc),
            vec![DrmSystem::Widevine, DrmSystem::Playready]
        );
        assert_eq!(systems_for(&all_systems(), Scheme::Cbcs), all_systems());
        for bad in [
            "url = \"http://drm.example/speke\"",
            "url = \"ftp://x\"",
            "url = \"not a url\"",
            "url = \"https://x\"\nsystems = []",
            "url = \"https://x\"\ntimeout_ms = 1",
        ] {
            let c: SpekeConfig = toml::from_str(bad).unwrap();
            assert!(c.validate().is_err(), "{bad}");
        }
        assert!(
            toml::from_str::<SpekeConfig>("url = \"https://x\"\nsystems = [\"primetime\"]")
                .is_err()
        );
    }
}
