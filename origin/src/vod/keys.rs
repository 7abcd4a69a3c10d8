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
        let Some(scheme) = scheme else {
            return Ok(None);
        };
        let Some(keys) = &self.keys else {
            return Err(format!(
                "encryption is not available: this origin has no master key ({})",
                crate::keys::MASTER_KEY_ENV
            ));
        };
        // ClearKey licenses need the edge's channel to the keys; a DRM
        // provider's licenses do not.
        let clearkey = keys.speke().is_none_or(|s| s.config().clearkey);
        if clearkey && !keys.edge_can_fetch() {
            return Err(
                "encryption is not available: keys.fetch_token (the edge's channel to the keys) is not set"
                    .into(),
            );
        }
        if let Some(speke) = keys.speke() {
            if speke.systems_for(scheme.into()).is_empty() {
                return Err(format!(
                    "encryption {:?}: none of keys.speke.systems supports it (FairPlay is cbcs only)",
                    scheme.as_str()
                ));
            }
        }
        Ok(Some(scheme))
    }

    /// Makes the asset's content key: from the DRM key provider
    /// (`[keys.speke]`) with its signalling, else a random one; sealed for
    /// the database. `Err`: why (a provider's refusal or bad answer is the
    /// caller's 502).
    pub(super) async fn make_key(
        &self,
        asset: &str,
        scheme: EncryptionScheme,
    ) -> Result<AssetKey, KeyFailure> {
        let keys = self
            .keys
            .as_ref()
            .ok_or(KeyFailure::Internal("no key service".into()))?;
        let internal = |e: crate::keys::KeyError| KeyFailure::Internal(e.to_string());
        Ok(match keys.speke() {
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
        })
    }

    /// Stores the key of an asset just created; the asset must still be
    /// there (not deleted meanwhile), or nothing is kept.
    pub(super) fn store_key(
        &self,
        asset: &str,
        key: &AssetKey,
        now_ms: u64,
    ) -> Result<(), KeyFailure> {
        let internal = |e: super::db::DbError| KeyFailure::Internal(e.to_string());
        self.db
            .put_asset_key(asset, key, now_ms)
            .map_err(internal)?;
        match self.db.asset(asset).map_err(internal)? {
            Some(a) if a.status != Status::Deleting => Ok(()),
            _ => {
                self.db.remove_asset(asset).map_err(internal)?;
                Err(KeyFailure::Internal(
                    "the asset was deleted while its key was made".into(),
                ))
            }
        }
    }

    /// How the asset is packaged: `None` in the clear, else its key and the
    /// license URL(s). `Err(Internal)`: this origin cannot now (the database,
    /// no or another master key): the job runs again, here or elsewhere.
    /// `Err(Refused)`: it never can (revoked, a corrupt row): the asset fails
    /// rather than be packaged in the clear.
    pub(super) fn packaging_encryption(
        &self,
        asset: &str,
    ) -> Result<Option<Encryption>, KeyFailure> {
        let row = self
            .db
            .asset_key(asset)
            .map_err(|e| KeyFailure::Internal(format!("reading the asset's key: {e}")))?;
        let Some(row) = row else {
            return Ok(None);
        };
        let keys = self.keys.as_ref().ok_or_else(|| {
            KeyFailure::Internal(format!(
                "the asset is encrypted but this origin has no master key ({})",
                crate::keys::MASTER_KEY_ENV
            ))
        })?;
        let refused = |e: String| KeyFailure::Refused(e);
        if row.revoked {
            return Err(refused("the asset's content key was revoked".into()));
        }
        let scheme = EncryptionScheme::parse(&row.scheme)
            .ok_or_else(|| refused(format!("unknown encryption scheme {:?}", row.scheme)))?;
        let kid = kid_from_hex(&row.kid)
            .ok_or_else(|| refused("the asset's KID is not 32 hex digits".into()))?;
        let key = keys.open_asset_key(asset, &kid, &row.sealed).map_err(|e| {
            KeyFailure::Internal(format!(
                "the asset's content key (another master key?): {e}"
            ))
        })?;
        let drm: Vec<SystemSignalling> = match &row.drm {
            Some(json) => serde_json::from_str(json)
                .map_err(|e| refused(format!("the asset's DRM signalling: {e}")))?,
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
    /// revoked and may be handed out as a ClearKey (a DRM provider's key only
    /// while `keys.speke.clearkey` is on, now and when the key was made).
    /// `Err`: this origin cannot tell now (the database, the master key): the
    /// edge tries another origin or answers 503.
    pub fn content_key(
        &self,
        asset: &str,
        kid: &[u8; 16],
    ) -> Result<Option<[u8; 16]>, Unavailable> {
        let keys = self.keys.as_ref().ok_or(Unavailable)?;
        let row = match self.db.asset_key(asset) {
            Ok(Some(row)) => row,
            Ok(None) => return Ok(None),
            Err(e) => {
                tracing::error!(asset, "asset key: {e}");
                return Err(Unavailable);
            }
        };
        let clearkey_now = row.drm.is_none() || keys.speke().is_some_and(|s| s.config().clearkey);
        if row.revoked || !row.clearkey || !clearkey_now || kid_from_hex(&row.kid) != Some(*kid) {
            return Ok(None);
        }
        match self.db.asset(asset) {
            Ok(Some(a)) if a.status != Status::Deleting => {}
            Ok(_) => return Ok(None),
            Err(e) => {
                tracing::error!(asset, "asset key: {e}");
                return Err(Unavailable);
            }
        }
        match keys.open_asset_key(asset, kid, &row.sealed) {
            Ok(k) => Ok(Some(k.key)),
            Err(e) => {
                tracing::error!(asset, kid = %row.kid, "asset key: {e}");
                Err(Unavailable)
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

/// This origin cannot answer for an asset's key now (its database, its
/// master key): another origin may.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unavailable;

/// Why an asset's key could not be made or used.
#[derive(Debug)]
pub(super) enum KeyFailure {
    /// The DRM key provider refused or answered badly (the API's 502).
    Provider(String),
    /// This origin, now (retry).
    Internal(String),
    /// Never (the asset fails).
    Refused(String),
}

impl std::fmt::Display for KeyFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyFailure::Provider(e) | KeyFailure::Internal(e) | KeyFailure::Refused(e) => {
                f.write_str(e)
            }
        }
    }
}
