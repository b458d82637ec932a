//! The credential vault: seals credential values with AES-256-GCM under a random 256-bit data
//! key, and keeps that key out of the database.
//!
//! Where the data key lives is decided once, when the vault is created, and recorded:
//! - **keychain**: in the OS keychain, under `personas-vault/<vault id>/g<generation>`, after a
//!   probe proved the keychain keeps what it is given;
//! - **passphrase**: wrapped (AES-256-GCM) under a key derived from `PERSONAS_VAULT_PASSPHRASE`
//!   with Argon2id and a stored random salt. A wrong passphrase fails the wrap's tag check: a
//!   clear error, nothing decrypted, nothing written.
//!
//! With neither a working keychain nor a passphrase, creating the vault is refused — there is no
//! plaintext fallback. [`Vault::rotate`] re-seals every value (credential fields and webhook
//! keys) under a fresh key in one store transaction (see `CredentialRepo::rotate_all`).

pub mod cipher;
pub mod keychain;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use cipher::{CipherError, KdfParams, Key};
use keychain::KeyStore;
use personas_core::Secret;
use personas_store::{Resealed, SealedSecret, SealedWebhookSecret, Store, StoreError, VaultRecord};
use std::sync::Arc;
use zeroize::Zeroizing;

/// Environment variable holding the passphrase (the headless opt-in).
pub const PASSPHRASE_VAR: &str = "PERSONAS_VAULT_PASSPHRASE";
/// A new passphrase for `personas vault rotate`.
pub const NEW_PASSPHRASE_VAR: &str = "PERSONAS_VAULT_NEW_PASSPHRASE";
/// `off` keeps Personas away from the OS keychain entirely.
pub const KEYCHAIN_VAR: &str = "PERSONAS_VAULT_KEYCHAIN";
/// Shortest passphrase accepted when creating or re-keying a vault.
pub const MIN_PASSPHRASE_LEN: usize = 8;
const KEY_CHECK: &[u8] = b"personas-vault-key-check";

#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error(
        "refusing to store secrets: no OS keychain is usable here ({reason}), and no passphrase \
         was given. Set {PASSPHRASE_VAR} to encrypt the vault with a passphrase instead (every \
         later use of credentials then needs it too)"
    )]
    NoKeyStore { reason: String },
    #[error("the vault is locked with a passphrase: set {PASSPHRASE_VAR} to use credentials")]
    PassphraseRequired,
    #[error(
        "wrong vault passphrase ({PASSPHRASE_VAR}): nothing was decrypted and nothing was changed"
    )]
    WrongPassphrase,
    #[error("{var}: a vault passphrase must be at least {MIN_PASSPHRASE_LEN} characters")]
    WeakPassphrase { var: &'static str },
    #[error("the vault's key is kept in {store}, which cannot be reached now: {reason}")]
    KeychainUnavailable { store: String, reason: String },
    #[error(
        "the vault's key is missing from {store} (entry {entry}); the stored credentials cannot \
         be decrypted without it. Remove them and add them again"
    )]
    KeyMissing { store: String, entry: String },
    #[error("the key in {store} does not belong to this vault (entry {entry})")]
    KeyMismatch { store: String, entry: String },
    #[error("{what} could not be decrypted: the stored value is damaged or was tampered with")]
    Damaged { what: String },
    /// The vault was rotated since this process unlocked it; unlock again.
    #[error("the vault was rotated by another process; unlock it again")]
    Stale,
    #[error("the vault's key record is damaged: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Cipher(#[from] CipherError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl VaultError {
    /// True when the user can fix it by giving different input (a passphrase).
    pub fn is_user_error(&self) -> bool {
        matches!(
            self,
            VaultError::PassphraseRequired
                | VaultError::WrongPassphrase
                | VaultError::WeakPassphrase { .. }
        )
    }
}

/// How to reach the data key.
#[derive(Clone, Default)]
pub struct VaultOptions {
    pub passphrase: Option<Secret>,
    /// For [`Vault::rotate`]: re-key under this passphrase instead of the current one.
    pub new_passphrase: Option<Secret>,
    /// `None`: no keychain (disabled or unavailable on this platform).
    pub keychain: Option<Arc<dyn KeyStore>>,
}

impl std::fmt::Debug for VaultOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VaultOptions")
            .field("passphrase", &self.passphrase.as_ref().map(|_| "[set]"))
            .field(
                "new_passphrase",
                &self.new_passphrase.as_ref().map(|_| "[set]"),
            )
            .field("keychain", &self.keychain.as_ref().map(|k| k.describe()))
            .finish()
    }
}

impl VaultOptions {
    /// From `PERSONAS_VAULT_PASSPHRASE`, `PERSONAS_VAULT_NEW_PASSPHRASE` and
    /// `PERSONAS_VAULT_KEYCHAIN` (`off` disables the OS keychain).
    pub fn from_env(env: impl Fn(&str) -> Option<String>) -> Self {
        let non_empty = |k: &str| env(k).filter(|v| !v.is_empty()).map(Secret::new);
        let keychain_off = env(KEYCHAIN_VAR).is_some_and(|v| {
            matches!(
                v.to_ascii_lowercase().as_str(),
                "off" | "0" | "false" | "no"
            )
        });
        VaultOptions {
            passphrase: non_empty(PASSPHRASE_VAR),
            new_passphrase: non_empty(NEW_PASSPHRASE_VAR),
            keychain: if keychain_off {
                None
            } else {
                Some(Arc::new(keychain::OsKeychain))
            },
        }
    }
}

/// Where the key of an existing vault lives, without unlocking it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct VaultStatus {
    pub created: bool,
    pub key_source: Option<String>,
    pub generation: Option<i64>,
    pub rotated_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// An unlocked vault: holds the data key (wiped on drop).
pub struct Vault {
    store: Store,
    key: Key,
    vault_id: String,
    generation: i64,
    key_source: String,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vault")
            .field("vault_id", &self.vault_id)
            .field("generation", &self.generation)
            .field("key_source", &self.key_source)
            .finish_non_exhaustive()
    }
}

fn keychain_entry(vault_id: &str, generation: i64) -> String {
    format!("{vault_id}/g{generation}")
}

fn check_aad(vault_id: &str, generation: i64) -> String {
    format!("personas/v1/check/{vault_id}/g{generation}")
}

fn wrap_aad(vault_id: &str, generation: i64) -> String {
    format!("personas/v1/key/{vault_id}/g{generation}")
}

fn value_aad(vault_id: &str, generation: i64, credential_id: &str, field: &str) -> String {
    format!("personas/v1/cred/{vault_id}/g{generation}/{credential_id}/{field}")
}

fn webhook_aad(vault_id: &str, generation: i64, trigger_id: &str) -> String {
    format!("personas/v1/webhook/{vault_id}/g{generation}/{trigger_id}")
}

/// Bound to the cloud connection's token (a sealed value moved elsewhere does not open).
fn cloud_token_aad(vault_id: &str, generation: i64) -> String {
    format!("personas/v1/cloud-token/{vault_id}/g{generation}")
}

fn strong(p: &Secret, var: &'static str) -> Result<(), VaultError> {
    if p.expose().chars().count() < MIN_PASSPHRASE_LEN {
        return Err(VaultError::WeakPassphrase { var });
    }
    Ok(())
}

/// Key material for one generation, ready to be recorded.
struct Keyed {
    key: Key,
    record: VaultRecord,
    /// The keychain entry written for it (removed again if the record is not stored).
    keychain_entry: Option<String>,
}

fn new_generation(
    vault_id: &str,
    generation: i64,
    source: &KeySourceChoice<'_>,
) -> Result<Keyed, VaultError> {
    let key = cipher::random_key()?;
    let key_check = cipher::seal(&key, KEY_CHECK, &check_aad(vault_id, generation))?;
    let now = chrono::Utc::now();
    match source {
        KeySourceChoice::Passphrase(pass) => {
            let params = KdfParams::default();
            let salt = cipher::random_bytes::<16>()?;
            let kek = cipher::derive_key(pass.expose(), &salt, params)?;
            let wrapped = cipher::seal(&kek, key.as_ref(), &wrap_aad(vault_id, generation))?;
            Ok(Keyed {
                key,
                record: VaultRecord {
                    vault_id: vault_id.into(),
                    key_source: "passphrase".into(),
                    generation,
                    kdf: Some("argon2id".into()),
                    kdf_params: Some(serde_json::to_string(&params).unwrap_or_default()),
                    salt: Some(salt.to_vec()),
                    wrapped_key: Some(wrapped),
                    key_check,
                    created_at: now,
                    rotated_at: None,
                },
                keychain_entry: None,
            })
        }
        KeySourceChoice::Keychain(kc) => {
            let entry = keychain_entry(vault_id, generation);
            let encoded = Secret::new(STANDARD.encode(key.as_ref()));
            let unavailable = |reason: String| VaultError::KeychainUnavailable {
                store: kc.describe(),
                reason,
            };
            kc.set(&entry, &encoded).map_err(unavailable)?;
            // Read back through a fresh handle: never record a key the keychain did not keep.
            match kc.get(&entry) {
                Ok(Some(back)) if back == encoded => {}
                Ok(_) => {
                    let _ = kc.delete(&entry);
                    return Err(unavailable("it did not keep the key it was given".into()));
                }
                Err(e) => {
                    let _ = kc.delete(&entry);
                    return Err(unavailable(e));
                }
            }
            Ok(Keyed {
                key,
                record: VaultRecord {
                    vault_id: vault_id.into(),
                    key_source: "keychain".into(),
                    generation,
                    kdf: None,
                    kdf_params: None,
                    salt: None,
                    wrapped_key: None,
                    key_check,
                    created_at: now,
                    rotated_at: None,
                },
                keychain_entry: Some(entry),
            })
        }
    }
}

enum KeySourceChoice<'a> {
    Passphrase(&'a Secret),
    Keychain(&'a Arc<dyn KeyStore>),
}

impl Vault {
    /// What is known about the vault without unlocking it.
    pub fn status(store: &Store) -> Result<VaultStatus, VaultError> {
        let rec = store.credentials().vault()?;
        Ok(VaultStatus {
            created: rec.is_some(),
            key_source: rec.as_ref().map(|r| r.key_source.clone()),
            generation: rec.as_ref().map(|r| r.generation),
            rotated_at: rec.and_then(|r| r.rotated_at),
        })
    }

    /// Unlocks the existing vault; `Ok(None)` when none was created yet.
    pub fn open(store: &Store, opts: &VaultOptions) -> Result<Option<Vault>, VaultError> {
        let Some(rec) = store.credentials().vault()? else {
            return Ok(None);
        };
        let key = unlock(&rec, opts)?;
        Ok(Some(Vault {
            store: store.clone(),
            key,
            vault_id: rec.vault_id,
            generation: rec.generation,
            key_source: rec.key_source,
        }))
    }

    /// Unlocks the vault, creating it first if needed (the first credential being stored).
    pub fn open_or_create(store: &Store, opts: &VaultOptions) -> Result<Vault, VaultError> {
        if let Some(v) = Vault::open(store, opts)? {
            return Ok(v);
        }
        let choice = match (&opts.passphrase, &opts.keychain) {
            (Some(p), _) => {
                strong(p, PASSPHRASE_VAR)?;
                KeySourceChoice::Passphrase(p)
            }
            (None, Some(kc)) => match keychain::probe(kc.as_ref()) {
                Ok(()) => KeySourceChoice::Keychain(kc),
                Err(reason) => {
                    return Err(VaultError::NoKeyStore {
                        reason: format!("{}: {reason}", kc.describe()),
                    });
                }
            },
            (None, None) => {
                return Err(VaultError::NoKeyStore {
                    reason: format!("the keychain is turned off ({KEYCHAIN_VAR}=off)"),
                });
            }
        };
        let vault_id = uuid::Uuid::new_v4().simple().to_string();
        let keyed = new_generation(&vault_id, 1, &choice)?;
        match store.credentials().create_vault(&keyed.record) {
            Ok(()) => Ok(Vault {
                store: store.clone(),
                key: keyed.key,
                vault_id,
                generation: 1,
                key_source: keyed.record.key_source,
            }),
            Err(StoreError::Conflict { .. }) => {
                // Another process created the vault first: use theirs.
                if let (Some(entry), KeySourceChoice::Keychain(kc)) =
                    (&keyed.keychain_entry, &choice)
                {
                    let _ = kc.delete(entry);
                }
                Vault::open(store, opts)?.ok_or_else(|| {
                    VaultError::Corrupt("the vault vanished while it was being created".into())
                })
            }
            Err(e) => {
                if let (Some(entry), KeySourceChoice::Keychain(kc)) =
                    (&keyed.keychain_entry, &choice)
                {
                    let _ = kc.delete(entry);
                }
                Err(e.into())
            }
        }
    }

    pub fn generation(&self) -> i64 {
        self.generation
    }

    pub fn key_source(&self) -> &str {
        &self.key_source
    }

    /// Seals one field value of a credential.
    pub fn seal(
        &self,
        credential_id: &str,
        field: &str,
        value: &Secret,
    ) -> Result<Vec<u8>, VaultError> {
        let aad = value_aad(&self.vault_id, self.generation, credential_id, field);
        Ok(cipher::seal(&self.key, value.expose().as_bytes(), &aad)?)
    }

    /// Opens one sealed field value.
    pub fn open_value(
        &self,
        credential_name: &str,
        credential_id: &str,
        field: &str,
        sealed: &[u8],
        generation: i64,
    ) -> Result<Secret, VaultError> {
        if generation != self.generation {
            return Err(VaultError::Stale);
        }
        let aad = value_aad(&self.vault_id, generation, credential_id, field);
        let plain = cipher::open(&self.key, sealed, &aad).map_err(|_| VaultError::Damaged {
            what: format!("{credential_name}.{field}"),
        })?;
        let text = std::str::from_utf8(&plain).map_err(|_| VaultError::Damaged {
            what: format!("{credential_name}.{field}"),
        })?;
        Ok(Secret::new(text))
    }

    /// Seals the HMAC key of webhook trigger `trigger_id` (bound to that trigger: a sealed key
    /// moved to another trigger does not open).
    pub fn seal_webhook(
        &self,
        trigger_id: &str,
        value: &Secret,
    ) -> Result<SealedSecret, VaultError> {
        self.seal_bound(
            value,
            &webhook_aad(&self.vault_id, self.generation, trigger_id),
        )
    }

    /// Opens the sealed HMAC key of webhook trigger `trigger_id`.
    pub fn open_webhook(
        &self,
        trigger_id: &str,
        sealed: &SealedSecret,
    ) -> Result<Secret, VaultError> {
        let aad = webhook_aad(&self.vault_id, sealed.generation, trigger_id);
        self.open_bound(sealed, &aad, || {
            format!("the webhook secret of trigger {trigger_id}")
        })
    }

    /// Seals `value` under the current key, bound to `aad`.
    fn seal_bound(&self, value: &Secret, aad: &str) -> Result<SealedSecret, VaultError> {
        Ok(SealedSecret {
            sealed: cipher::seal(&self.key, value.expose().as_bytes(), aad)?,
            generation: self.generation,
        })
    }

    /// Opens what [`Vault::seal_bound`] sealed; `what` names it when it does not open.
    fn open_bound(
        &self,
        sealed: &SealedSecret,
        aad: &str,
        what: impl Fn() -> String,
    ) -> Result<Secret, VaultError> {
        if sealed.generation != self.generation {
            return Err(VaultError::Stale);
        }
        let damaged = || VaultError::Damaged { what: what() };
        let plain = cipher::open(&self.key, &sealed.sealed, aad).map_err(|_| damaged())?;
        let text = std::str::from_utf8(&plain).map_err(|_| damaged())?;
        Ok(Secret::new(text))
    }

    /// Seals the bearer token of the cloud connection.
    pub fn seal_cloud_token(&self, token: &Secret) -> Result<SealedSecret, VaultError> {
        self.seal_bound(token, &cloud_token_aad(&self.vault_id, self.generation))
    }

    /// Opens the cloud connection's token (a rotation re-seals it with everything else).
    pub fn open_cloud_token(&self, sealed: &SealedSecret) -> Result<Secret, VaultError> {
        let aad = cloud_token_aad(&self.vault_id, sealed.generation);
        self.open_bound(sealed, &aad, || "the cloud connection's token".into())
    }

    /// Re-seals every value under a fresh data key (and, with a new passphrase, re-keys the
    /// vault). All or nothing. Returns how many values were re-sealed.
    pub fn rotate(&mut self, opts: &VaultOptions) -> Result<usize, VaultError> {
        let repo = self.store.credentials();
        let next = self.generation + 1;
        let choice = match self.key_source.as_str() {
            "passphrase" => {
                let pass = match (&opts.new_passphrase, &opts.passphrase) {
                    (Some(p), _) => {
                        strong(p, NEW_PASSPHRASE_VAR)?;
                        p
                    }
                    (None, Some(p)) => p,
                    (None, None) => return Err(VaultError::PassphraseRequired),
                };
                KeySourceChoice::Passphrase(pass)
            }
            _ => match &opts.keychain {
                Some(kc) => KeySourceChoice::Keychain(kc),
                None => {
                    return Err(VaultError::KeychainUnavailable {
                        store: "the OS keychain".into(),
                        reason: format!("it is turned off ({KEYCHAIN_VAR}=off)"),
                    });
                }
            },
        };
        let mut resealed = Vec::new();
        let names: std::collections::HashMap<String, String> =
            repo.list()?.into_iter().map(|c| (c.id, c.name)).collect();
        let sealed = repo.all_sealed()?;
        let keyed = new_generation(&self.vault_id, next, &choice)?;
        let result = (|| {
            for v in sealed {
                let name = names
                    .get(&v.credential_id)
                    .map(String::as_str)
                    .unwrap_or("?");
                let plain =
                    self.open_value(name, &v.credential_id, &v.field, &v.sealed, v.generation)?;
                let aad = value_aad(&self.vault_id, next, &v.credential_id, &v.field);
                resealed.push(Resealed {
                    credential_id: v.credential_id,
                    field: v.field,
                    sealed: cipher::seal(&keyed.key, plain.expose().as_bytes(), &aad)?,
                });
            }
            let mut webhooks = Vec::new();
            for w in self.store.webhooks().all_sealed()? {
                let plain = self.open_webhook(w.trigger_id.as_str(), &w.secret)?;
                let aad = webhook_aad(&self.vault_id, next, w.trigger_id.as_str());
                webhooks.push(SealedWebhookSecret {
                    secret: SealedSecret {
                        sealed: cipher::seal(&keyed.key, plain.expose().as_bytes(), &aad)?,
                        generation: next,
                    },
                    trigger_id: w.trigger_id,
                });
            }
            let cloud_token = match self.store.cloud().connection()? {
                Some(c) => {
                    let plain = self.open_cloud_token(&c.token)?;
                    let aad = cloud_token_aad(&self.vault_id, next);
                    Some(SealedSecret {
                        sealed: cipher::seal(&keyed.key, plain.expose().as_bytes(), &aad)?,
                        generation: next,
                    })
                }
                None => None,
            };
            repo.rotate_all(
                self.generation,
                &keyed.record,
                &resealed,
                &webhooks,
                cloud_token.as_ref(),
            )?;
            Ok::<_, VaultError>(())
        })();
        if let Err(e) = result {
            if let (Some(entry), KeySourceChoice::Keychain(kc)) = (&keyed.keychain_entry, &choice) {
                let _ = kc.delete(entry);
            }
            return Err(e);
        }
        // The old keychain entry is no longer referenced by anything.
        if let KeySourceChoice::Keychain(kc) = &choice
            && let Err(e) = kc.delete(&keychain_entry(&self.vault_id, self.generation))
        {
            tracing::warn!(error = %e, "could not delete the retired vault key from the keychain");
        }
        self.key = keyed.key;
        self.generation = next;
        Ok(resealed.len())
    }
}

/// Recovers the data key of an existing vault and proves it is the right one.
fn unlock(rec: &VaultRecord, opts: &VaultOptions) -> Result<Key, VaultError> {
    let key: Key = match rec.key_source.as_str() {
        "passphrase" => {
            let pass = opts
                .passphrase
                .as_ref()
                .ok_or(VaultError::PassphraseRequired)?;
            let params: KdfParams = rec
                .kdf_params
                .as_deref()
                .and_then(|p| serde_json::from_str(p).ok())
                .ok_or_else(|| VaultError::Corrupt("missing key derivation parameters".into()))?;
            let (Some(salt), Some(wrapped)) = (&rec.salt, &rec.wrapped_key) else {
                return Err(VaultError::Corrupt("missing salt or wrapped key".into()));
            };
            let kek = cipher::derive_key(pass.expose(), salt, params)?;
            let raw = cipher::open(&kek, wrapped, &wrap_aad(&rec.vault_id, rec.generation))
                .map_err(|_| VaultError::WrongPassphrase)?;
            to_key(&raw)
                .ok_or_else(|| VaultError::Corrupt("the wrapped key has the wrong size".into()))?
        }
        "keychain" => {
            let kc = opts
                .keychain
                .as_ref()
                .ok_or_else(|| VaultError::KeychainUnavailable {
                    store: "the OS keychain".into(),
                    reason: format!("it is turned off ({KEYCHAIN_VAR}=off)"),
                })?;
            let entry = keychain_entry(&rec.vault_id, rec.generation);
            let found = kc
                .get(&entry)
                .map_err(|reason| VaultError::KeychainUnavailable {
                    store: kc.describe(),
                    reason,
                })?;
            let Some(encoded) = found else {
                return Err(VaultError::KeyMissing {
                    store: kc.describe(),
                    entry: format!("{}/{entry}", keychain::SERVICE),
                });
            };
            let raw = Zeroizing::new(STANDARD.decode(encoded.expose()).map_err(|_| {
                VaultError::KeyMismatch {
                    store: kc.describe(),
                    entry: entry.clone(),
                }
            })?);
            to_key(&raw).ok_or_else(|| VaultError::KeyMismatch {
                store: kc.describe(),
                entry: entry.clone(),
            })?
        }
        other => return Err(VaultError::Corrupt(format!("unknown key source {other:?}"))),
    };
    cipher::open(
        &key,
        &rec.key_check,
        &check_aad(&rec.vault_id, rec.generation),
    )
    .map_err(|_| match rec.key_source.as_str() {
        "passphrase" => VaultError::Corrupt("the key check failed".into()),
        _ => VaultError::KeyMismatch {
            store: "the OS keychain".into(),
            entry: keychain_entry(&rec.vault_id, rec.generation),
        },
    })?;
    Ok(key)
}

fn to_key(raw: &[u8]) -> Option<Key> {
    let arr: [u8; cipher::KEY_LEN] = raw.try_into().ok()?;
    Some(Zeroizing::new(arr))
}

/// A vault unlocked at most once per process and shared by its runs (an Argon2id unlock costs
/// ~135 ms and 64 MiB; a daemon should pay that once, not per run).
pub struct VaultCell {
    opts: VaultOptions,
    unlocked: std::sync::Mutex<Option<Arc<Vault>>>,
}

impl VaultCell {
    pub fn new(opts: VaultOptions) -> Self {
        Self {
            opts,
            unlocked: std::sync::Mutex::new(None),
        }
    }

    /// The unlocked vault (unlocking it now if needed). Blocking.
    pub fn get(&self, store: &Store) -> Result<Arc<Vault>, VaultError> {
        let mut slot = self.unlocked.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(v) = slot.as_ref() {
            return Ok(Arc::clone(v));
        }
        let v = Arc::new(Vault::open(store, &self.opts)?.ok_or_else(|| {
            VaultError::Corrupt("credentials are stored but the vault record is missing".into())
        })?);
        *slot = Some(Arc::clone(&v));
        Ok(v)
    }

    /// The unlocked vault, creating it first when none exists (the first credential being
    /// stored). Blocking.
    pub fn get_or_create(&self, store: &Store) -> Result<Arc<Vault>, VaultError> {
        let mut slot = self.unlocked.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(v) = slot.as_ref() {
            return Ok(Arc::clone(v));
        }
        let v = Arc::new(Vault::open_or_create(store, &self.opts)?);
        *slot = Some(Arc::clone(&v));
        Ok(v)
    }

    /// Re-encrypts every sealed value under a new key ([`Vault::rotate`]); `new_passphrase`
    /// re-wraps a passphrase vault under it instead of the configured one. The rotated vault
    /// stays unlocked for this process, so its runs go on without the old passphrase.
    /// Returns the values resealed and the new generation. Blocking.
    pub fn rotate(
        &self,
        store: &Store,
        new_passphrase: Option<Secret>,
    ) -> Result<(usize, i64), VaultError> {
        let mut opts = self.opts.clone();
        if new_passphrase.is_some() {
            opts.new_passphrase = new_passphrase;
        }
        let mut slot = self.unlocked.lock().unwrap_or_else(|p| p.into_inner());
        let mut vault = Vault::open(store, &opts)?.ok_or_else(|| {
            VaultError::Corrupt("there is no vault yet: nothing to rotate".into())
        })?;
        let resealed = vault.rotate(&opts)?;
        let generation = vault.generation();
        *slot = Some(Arc::new(vault));
        Ok((resealed, generation))
    }

    /// Forgets the unlocked key (after another process rotated the vault).
    pub fn invalidate(&self) {
        *self.unlocked.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// Whether credentials can be stored and opened now, and if not, why and how to fix it.
    /// Unlocks an existing vault (once); for a vault not yet created, checks the passphrase's
    /// strength or probes the keychain, as creating it would. Blocking.
    pub fn readiness(&self, store: &Store) -> Result<Readiness, VaultError> {
        let status = Vault::status(store)?;
        let mut r = Readiness {
            mode: KeyMode::None,
            created: status.created,
            generation: status.generation,
            rotated_at: status.rotated_at,
            ready: true,
            problem: None,
            hint: None,
        };
        let outcome = if status.created {
            r.mode = match status.key_source.as_deref() {
                Some("keychain") => KeyMode::Keychain,
                _ => KeyMode::Passphrase,
            };
            self.get(store).map(|_| ())
        } else {
            match (&self.opts.passphrase, &self.opts.keychain) {
                (Some(p), _) => {
                    r.mode = KeyMode::Passphrase;
                    strong(p, PASSPHRASE_VAR)
                }
                (None, Some(kc)) => match keychain::probe(kc.as_ref()) {
                    Ok(()) => {
                        r.mode = KeyMode::Keychain;
                        Ok(())
                    }
                    Err(reason) => Err(VaultError::NoKeyStore {
                        reason: format!("{}: {reason}", kc.describe()),
                    }),
                },
                (None, None) => Err(VaultError::NoKeyStore {
                    reason: format!("the keychain is turned off ({KEYCHAIN_VAR}=off)"),
                }),
            }
        };
        match outcome {
            Ok(()) => Ok(r),
            Err(VaultError::Store(e)) => Err(VaultError::Store(e)),
            Err(e) => {
                r.ready = false;
                r.hint = fix_hint(&e).map(String::from);
                r.problem = Some(e.to_string());
                Ok(r)
            }
        }
    }
}

/// Where a vault's data key is kept (or, before the vault exists, would be).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyMode {
    /// In the OS keychain.
    Keychain,
    /// Wrapped under a key derived from `PERSONAS_VAULT_PASSPHRASE`.
    Passphrase,
    /// Nowhere: no usable keychain and no passphrase, so secrets cannot be stored.
    None,
}

/// What [`VaultCell::readiness`] found.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Readiness {
    pub mode: KeyMode,
    pub created: bool,
    pub generation: Option<i64>,
    pub rotated_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Credentials can be stored and opened now.
    pub ready: bool,
    /// Why not, when not.
    pub problem: Option<String>,
    /// What the user can do about it.
    pub hint: Option<String>,
}

/// How a user fixes a vault error, where they can.
pub fn fix_hint(e: &VaultError) -> Option<&'static str> {
    Some(match e {
        VaultError::NoKeyStore { .. } => {
            "start `personas up` with PERSONAS_VAULT_PASSPHRASE set (at least 8 characters; every \
             later start needs the same passphrase), or run Personas where an OS keychain is \
             available (macOS Keychain, Windows Credential Manager, a Secret Service such as \
             GNOME Keyring)"
        }
        VaultError::PassphraseRequired => {
            "this vault is locked with a passphrase: restart `personas up` with \
             PERSONAS_VAULT_PASSPHRASE set to it"
        }
        VaultError::WrongPassphrase => {
            "restart `personas up` with the passphrase this vault was created with in \
             PERSONAS_VAULT_PASSPHRASE"
        }
        VaultError::WeakPassphrase { .. } => {
            "choose a passphrase of at least 8 characters for PERSONAS_VAULT_PASSPHRASE and \
             restart `personas up`"
        }
        VaultError::KeychainUnavailable { .. } => {
            "unlock the OS keychain (log in to the desktop session), then try again"
        }
        VaultError::KeyMissing { .. } | VaultError::KeyMismatch { .. } => {
            "the stored credentials cannot be opened without their key: remove them and add \
             them again"
        }
        _ => return None,
    })
}
