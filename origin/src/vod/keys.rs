//! Encrypted assets: one content key per asset, made when the upload is
//! created, sealed under the master key (`keys::KeyService`) in the asset
//! database (`asset_keys`), so every origin sharing the database (and the
//! master key) can package the asset and hand its key to the edge.
//!
//! ```text
//! POST /api/v1/uploads {"encryption":"cbcs"} ─▶ KeyService::new_asset_key, or the DRM key
//!     provider (SPEKE v2: key + Widevine/PlayReady/FairPlay signalling) ─▶ db.put_asset_key (sealed)
//! worker: package ─▶ Vod::packaging_encryption ─▶ open ─▶ Encryption { one key, ClearKey URL }
//! edge: GET /keys/asset/<id>/<kid> ─▶ Vod::content_key: not revoked, not deleting, same KID
//! POST /api/v1/assets/<id>/key/revoke ─▶ never served again
//! ```
//!
//! The poster and the trick-play sprites stay in the clear (images, as at
//! every service that encrypts video).

use brook_packager::cmaf::cenc::Encryption;

use super::db::{AssetKey, Status};
use super::Vod;
use crate::keys::speke::SystemSignalling;
use crate::keys::{hex, kid_from_hex, EncryptionScheme};

impl Vod {
    /// The scheme an upload request asks for: its own `encryption`
    /// (`"cbcs"`, `"cenc"`, `"none"`), else `vod.encryption`. `Err`: a
    /// clear reason for the API's 400.
    pub(super) fn requested_scheme(
        &self,
        asked: Option<&str>,
    ) -> Result<Option<EncryptionScheme>, String> {
        let scheme = match asked {
            None => self.config.encryption,
            Some("none") => None,
            Some(s) => Some(EncryptionScheme::parse(s).ok_or_else(|| {
                format!("encryption must be \"cbcs\", \"cenc\" or \"none\", not {s:?}")
            })?),
        };
        if scheme.is_some() && self.keys.is_none() {
            return Err(format!(
                "encryption is not available: this origin has no master key ({})",
                crate::keys::MASTER_KEY_ENV
            ));
        }
        Ok(scheme)
    }

    /// Makes and stores the asset's content key: from the DRM key provider
    /// (`[keys.speke]`) with its signalling, else a random one. `Err`: why
    /// (a provider's refusal or bad answer is the caller's 502).
    pub(super) async fn create_key(
        &self,
        asset: &str,
        scheme: EncryptionScheme,
        now_ms: u64,
    ) -> Result<(), KeyFailure> {
        let keys = self
            .keys
            .as_ref()
            .ok_or(KeyFailure::Internal("no key service".into()))?;
        let internal = |e: crate::keys::KeyError| KeyFailure::Internal(e.to_string());
        let row = match keys.speke() {
            Some(speke) => {
                let got = speke
                    .new_key(asset, scheme.into())
                    .await
                    .map_err(|e| KeyFailure::Provider(e.to_string()))?;
                tracing::info!(asset, kid = %hex(&got.key.kid), systems = got.systems.len(), "content key from the DRM key provider");
                AssetKey {
                    scheme: scheme.as_str().to_owned(),
                    kid: hex(&got.key.kid),
                    sealed: keys.seal_asset_key(asset, &got.key).map_err(internal)?,
                    revoked: false,
                    clearkey: speke.config().clearkey,
                    drm: Some(
                        serde_json::to_string(&got.systems)
                            .map_err(|e| KeyFailure::Internal(e.to_string()))?,
                    ),
                }
            }
            None => {
                let (key, sealed) = keys.new_asset_key(asset).map_err(internal)?;
                AssetKey {
                    scheme: scheme.as_str().to_owned(),
                    kid: hex(&key.kid),
                    sealed,
                    revoked: false,
                    clearkey: true,
                    drm: None,
                }
            }
        };
        self.db
            .put_asset_key(asset, &row, now_ms)
            .map_err(|e| KeyFailure::Internal(e.to_string()))
    }

    /// How the asset is packaged: `None` in the clear, else its key and the
    /// license URL. `Err`: why it cannot be (the asset fails rather than be
    /// packaged in the clear).
    pub(super) fn packaging_encryption(&self, asset: &str) -> Result<Option<Encryption>, String> {
        let row = self
            .db
            .asset_key(asset)
            .map_err(|e| format!("reading the asset's key: {e}"))?;
        let Some(row) = row else {
            return Ok(None);
        };
        let keys = self.keys.as_ref().ok_or_else(|| {
            format!(
                "the asset is encrypted but this origin has no master key ({})",
                crate::keys::MASTER_KEY_ENV
            )
        })?;
        if row.revoked {
            return Err("the asset's content key was revoked".into());
        }
        let scheme = EncryptionScheme::parse(&row.scheme)
            .ok_or_else(|| format!("unknown encryption scheme {:?}", row.scheme))?;
        let kid = kid_from_hex(&row.kid).ok_or("the asset's KID is not 32 hex digits")?;
        let key = keys
            .open_asset_key(asset, &kid, &row.sealed)
            .map_err(|e| format!("the asset's content key: {e}"))?;
        let drm: Vec<SystemSignalling> = match &row.drm {
            Some(json) => serde_json::from_str(json)
                .map_err(|e| format!("the asset's DRM signalling: {e}"))?,
            None => Vec::new(),
        };
        Ok(Some(keys.asset_encryption(
            asset,
            scheme,
            key,
            &drm,
            row.clearkey,
        )))
    }

    /// The key the edge asks for (`GET /keys/asset/<id>/<kid>`): the asset
    /// exists and is not being deleted, the KID is its key's, the key is not
    /// revoked.
    pub fn content_key(&self, asset: &str, kid: &[u8; 16]) -> Option<[u8; 16]> {
        let keys = self.keys.as_ref()?;
        let row = self.db.asset_key(asset).ok()??;
        // A DRM provider's key stays with its license service unless
        // ClearKey was asked for too.
        if row.revoked || !row.clearkey || kid_from_hex(&row.kid)? != *kid {
            return None;
        }
        match self.db.asset(asset) {
            Ok(Some(a)) if a.status != Status::Deleting => {}
            _ => return None,
        }
        match keys.open_asset_key(asset, kid, &row.sealed) {
            Ok(k) => Some(k.key),
            Err(e) => {
                tracing::error!(asset, kid = %row.kid, "asset key: {e}");
                None
            }
        }
    }

    /// What the API shows of the asset's encryption (never the key).
    pub(super) fn encryption_json(&self, asset: &str) -> Option<serde_json::Value> {
        let row = self.db.asset_key(asset).ok()??;
        let systems: Vec<SystemSignalling> = row
            .drm
            .as_deref()
            .and_then(|j| serde_json::from_str(j).ok())
            .unwrap_or_default();
        let mut drm: Vec<serde_json::Value> = systems
            .iter()
            .map(|s| serde_json::to_value(s.system).unwrap_or_default())
            .collect();
        if row.clearkey {
            drm.insert(0, serde_json::json!("clearkey"));
        }
        Some(serde_json::json!({
            "scheme": row.scheme,
            "kid": row.kid,
            "revoked": row.revoked,
            "key_systems": drm,
        }))
    }
}

/// Why an asset's key could not be made.
#[derive(Debug)]
pub(super) enum KeyFailure {
    /// The DRM key provider refused or answered badly (the API's 502).
    Provider(String),
    Internal(String),
}
