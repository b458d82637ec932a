//! The vault's primitives: random bytes, AES-256-GCM sealing with a fresh 96-bit nonce per value,
//! and Argon2id key derivation from a passphrase.
//!
//! Sealed layout: `version (1 byte) ‖ nonce (12) ‖ ciphertext ‖ tag (16)`. Every seal carries
//! associated data naming what the value is (vault, credential, field, key generation), so a
//! sealed value copied to another row, field or generation fails to open instead of decrypting
//! to the wrong secret.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

pub const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 12;
const VERSION: u8 = 1;

/// A 256-bit key, wiped on drop.
pub type Key = Zeroizing<[u8; KEY_LEN]>;

#[derive(Debug, thiserror::Error)]
pub enum CipherError {
    #[error("the operating system's random source failed: {0}")]
    Random(String),
    /// Wrong key, or the data was changed (the tag did not verify).
    #[error("authentication failed")]
    Open,
    #[error("key derivation failed: {0}")]
    Kdf(String),
}

pub fn random_bytes<const N: usize>() -> Result<[u8; N], CipherError> {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).map_err(|e| CipherError::Random(e.to_string()))?;
    Ok(b)
}

pub fn random_key() -> Result<Key, CipherError> {
    Ok(Zeroizing::new(random_bytes::<KEY_LEN>()?))
}

pub fn seal(key: &Key, plaintext: &[u8], aad: &str) -> Result<Vec<u8>, CipherError> {
    let cipher = Aes256Gcm::new(key.as_ref().into());
    let nonce = random_bytes::<NONCE_LEN>()?;
    let ct = cipher
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad: aad.as_bytes(),
            },
        )
        .map_err(|_| CipherError::Open)?;
    let mut out = Vec::with_capacity(1 + NONCE_LEN + ct.len());
    out.push(VERSION);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ct);
    Ok(out)
}

/// Opens a sealed value; the plaintext is wiped when dropped.
pub fn open(key: &Key, sealed: &[u8], aad: &str) -> Result<Zeroizing<Vec<u8>>, CipherError> {
    if sealed.len() < 1 + NONCE_LEN + 16 || sealed[0] != VERSION {
        return Err(CipherError::Open);
    }
    let cipher = Aes256Gcm::new(key.as_ref().into());
    let (nonce, ct) = sealed[1..].split_at(NONCE_LEN);
    cipher
        .decrypt(
            Nonce::from_slice(nonce),
            Payload {
                msg: ct,
                aad: aad.as_bytes(),
            },
        )
        .map(Zeroizing::new)
        .map_err(|_| CipherError::Open)
}

/// Argon2id parameters, stored with the vault so they can be raised later without breaking it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KdfParams {
    pub m_kib: u32,
    pub t: u32,
    pub p: u32,
}

impl Default for KdfParams {
    /// 64 MiB, 3 passes, 1 lane: above OWASP's Argon2id minimum (19 MiB, t=2); 135 ms per
    /// unlock on the 2-core CI machine (`cargo bench -p personas-engine --bench vault`).
    fn default() -> Self {
        KdfParams {
            m_kib: 64 * 1024,
            t: 3,
            p: 1,
        }
    }
}

pub fn derive_key(passphrase: &str, salt: &[u8], params: KdfParams) -> Result<Key, CipherError> {
    // Refuse stored parameters nobody would choose (a damaged or hostile record could otherwise
    // ask for terabytes of memory or a trivially weak key).
    if !(8 * 1024..=4 * 1024 * 1024).contains(&params.m_kib)
        || !(1..=64).contains(&params.t)
        || !(1..=16).contains(&params.p)
    {
        return Err(CipherError::Kdf(format!(
            "unreasonable Argon2id parameters {params:?}"
        )));
    }
    let p = argon2::Params::new(params.m_kib, params.t, params.p, Some(KEY_LEN))
        .map_err(|e| CipherError::Kdf(e.to_string()))?;
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, p);
    let mut key: Key = Zeroizing::new([0u8; KEY_LEN]);
    argon
        .hash_password_into(passphrase.as_bytes(), salt, key.as_mut())
        .map_err(|e| CipherError::Kdf(e.to_string()))?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip_with_fresh_nonces() {
        let key = random_key().expect("key");
        let a = seal(&key, b"ghp_token", "cred/a/token").expect("seal");
        let b = seal(&key, b"ghp_token", "cred/a/token").expect("seal");
        assert_ne!(a, b, "a fresh nonce per value");
        assert!(!a.windows(9).any(|w| w == b"ghp_token"));
        assert_eq!(
            &open(&key, &a, "cred/a/token").expect("open")[..],
            b"ghp_token"
        );
    }

    #[test]
    fn wrong_key_other_label_or_a_flipped_bit_fail() {
        let key = random_key().expect("key");
        let sealed = seal(&key, b"secret", "cred/a/token").expect("seal");
        assert!(open(&random_key().expect("key"), &sealed, "cred/a/token").is_err());
        assert!(
            open(&key, &sealed, "cred/b/token").is_err(),
            "moved to another row"
        );
        let mut bad = sealed.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(open(&key, &bad, "cred/a/token").is_err());
        assert!(open(&key, &sealed[..10], "cred/a/token").is_err());
    }

    #[test]
    fn derivation_is_deterministic_per_salt_and_refuses_silly_parameters() {
        let light = KdfParams {
            m_kib: 8 * 1024,
            t: 1,
            p: 1,
        };
        let a = derive_key("correct horse", b"salt-salt-salt-1", light).expect("kdf");
        let b = derive_key("correct horse", b"salt-salt-salt-1", light).expect("kdf");
        let c = derive_key("correct horse", b"salt-salt-salt-2", light).expect("kdf");
        assert_eq!(a, b);
        assert_ne!(a, c);
        let silly = KdfParams {
            m_kib: 1,
            t: 1,
            p: 1,
        };
        assert!(derive_key("x", b"salt-salt-salt-1", silly).is_err());
    }
}
