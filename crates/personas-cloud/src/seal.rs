//! Credentials in the cloud, sealed with the deployment master key by the same AES-256-GCM code
//! as the local vault ([`personas_engine::vault::cipher`]): a fresh nonce per value and
//! associated data naming the tenant, persona and credential, so a sealed value copied to another
//! row fails to open. The orchestrator seals on arrival and stores only sealed bytes; a worker
//! opens them in memory for one run ([`open_fields`]); the plaintext is zeroed when dropped.

use base64::Engine as _;
use personas_cloud_api::model::{ModelCredentialKind, WireSecret};
use personas_engine::vault::cipher::{self, Key};
use std::collections::BTreeMap;
use zeroize::Zeroizing;

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("cannot seal: {0}")]
    Seal(String),
    /// Wrong master key, or the sealed value belongs to another tenant/persona/credential.
    #[error("the sealed {0} does not open with this deployment's master key")]
    Open(String),
    #[error("the opened {0} is not a field map")]
    Format(String),
}

/// What a credential's seal is bound to.
pub fn credential_aad(tenant: &str, persona: &str, name: &str) -> String {
    format!("personas-cloud:v1:credential:{tenant}:{persona}:{name}")
}

/// What a tenant's model credential's seal is bound to.
pub fn model_aad(tenant: &str, kind: ModelCredentialKind) -> String {
    format!("personas-cloud:v1:model:{tenant}:{}", kind.env_var())
}

/// Seals a credential's fields (as one JSON object) — base64 for the wire, bytes for Postgres.
pub fn seal_fields(
    key: &Key,
    fields: &BTreeMap<String, WireSecret>,
    aad: &str,
) -> Result<Vec<u8>, SealError> {
    let plain =
        Zeroizing::new(serde_json::to_vec(fields).map_err(|e| SealError::Seal(e.to_string()))?);
    cipher::seal(key, &plain, aad).map_err(|e| SealError::Seal(e.to_string()))
}

/// Opens what [`seal_fields`] sealed.
pub fn open_fields(
    key: &Key,
    sealed: &[u8],
    aad: &str,
) -> Result<BTreeMap<String, WireSecret>, SealError> {
    let plain = cipher::open(key, sealed, aad).map_err(|_| SealError::Open(aad.to_string()))?;
    serde_json::from_slice(&plain).map_err(|_| SealError::Format(aad.to_string()))
}

/// Seals one value (a model credential).
pub fn seal_value(key: &Key, value: &str, aad: &str) -> Result<Vec<u8>, SealError> {
    cipher::seal(key, value.as_bytes(), aad).map_err(|e| SealError::Seal(e.to_string()))
}

/// Opens what [`seal_value`] sealed.
pub fn open_value(key: &Key, sealed: &[u8], aad: &str) -> Result<WireSecret, SealError> {
    let plain = cipher::open(key, sealed, aad).map_err(|_| SealError::Open(aad.to_string()))?;
    let text = std::str::from_utf8(&plain).map_err(|_| SealError::Format(aad.to_string()))?;
    Ok(WireSecret::new(text))
}

pub fn to_base64(sealed: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(sealed)
}

pub fn from_base64(text: &str) -> Result<Vec<u8>, SealError> {
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|_| SealError::Open("value (not base64)".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_round_trip_and_are_bound_to_their_name() {
        let key = cipher::random_key().expect("key");
        let mut fields = BTreeMap::new();
        fields.insert("token".to_string(), WireSecret::new("ghp_secretvalue"));
        let aad = credential_aad("t1", "p1", "github");
        let sealed = seal_fields(&key, &fields, &aad).expect("seal");
        assert!(
            !sealed.windows(15).any(|w| w == b"ghp_secretvalue"),
            "the plaintext is not in the sealed bytes"
        );
        let opened = open_fields(&key, &sealed, &aad).expect("open");
        assert_eq!(opened["token"].expose(), "ghp_secretvalue");
        let other = credential_aad("t2", "p1", "github");
        assert!(
            open_fields(&key, &sealed, &other).is_err(),
            "another tenant's row"
        );
        let wrong = cipher::random_key().expect("key");
        assert!(
            open_fields(&wrong, &sealed, &aad).is_err(),
            "another deployment's key"
        );
    }
}
