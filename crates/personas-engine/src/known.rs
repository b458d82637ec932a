//! Every secret the runtime knows, as one redactor — for text that does not come from one run:
//! what the API stores (events emitted by a client, channels' test notices), what deliveries
//! send, what exports write.
//!
//! A run's own redactor (built in the runner) knows that run's secrets; this one knows all of
//! them: every credential's secret fields (when the vault can be unlocked — with neither a
//! keychain nor a passphrase nothing is stored in it either), every channel's resolved secrets,
//! `[env]` values whose names are not harmless, and the runtime's own secrets from its
//! environment (the CLI's credentials, proxy URLs, `channel_env_allow` variables, the vault
//! passphrase, the API token). It is rebuilt for each use rather than cached: a credential
//! added a moment ago must be known at once, and a build costs about a millisecond for a
//! hundred credentials (`personas bench redact`), far below the cost of the write it guards.

use crate::config::EngineConfig;
use crate::credentials;
use crate::delivery;
use crate::runner::environment::{self, MIN_ENV_SECRET_LEN};
use crate::vault::VaultCell;
use personas_core::Secret;
use personas_core::redact::Redactor;
use personas_store::Store;

/// Variables of the runtime itself that are secrets.
const OWN_SECRETS: &[&str] = &[
    "PERSONAS_VAULT_PASSPHRASE",
    "PERSONAS_VAULT_NEW_PASSPHRASE",
    "PERSONAS_API_TOKEN",
];

/// `(label, value)` of every secret the runtime can see now. Blocking (store, vault).
pub fn runtime_secrets(
    store: &Store,
    vault: &VaultCell,
    config: &EngineConfig,
) -> Vec<(String, Secret)> {
    let mut out: Vec<(String, Secret)> = Vec::new();
    // The vault, only when it exists and opens: this never creates one or asks for a passphrase.
    if let Ok(rows) = store.credentials().list()
        && !rows.is_empty()
        && let Ok(v) = vault.get(store)
    {
        for row in rows {
            if let Ok(opened) = credentials::open(&v, store, row) {
                out.extend(
                    opened
                        .secret_labels()
                        .into_iter()
                        .map(|(l, s)| (l, s.clone())),
                );
            }
        }
    }
    if let Ok(channels) = store.deliveries().channels(None) {
        for c in channels {
            if let Ok(parsed) = delivery::channel::parse(c.kind, &c.config)
                && let Ok(resolved) = delivery::resolve_secrets(store, vault, config, &parsed)
            {
                out.extend(
                    resolved
                        .values()
                        .map(|(r, s)| (format!("channel.{}.{r}", c.name), s.clone())),
                );
            }
        }
    }
    for (k, v) in &config.env {
        if !environment::is_harmless(k) && v.len() >= MIN_ENV_SECRET_LEN {
            out.push((format!("env.{k}"), Secret::new(v.as_str())));
        }
    }
    for (k, v) in std::env::vars() {
        let secret = OWN_SECRETS.contains(&k.as_str())
            || (environment::is_inherited(&k) && !environment::is_harmless(&k))
            || config.channel_env_allow.contains(&k);
        if secret && v.len() >= MIN_ENV_SECRET_LEN {
            out.push((format!("env.{k}"), Secret::new(v)));
        }
    }
    out
}

/// A redactor of [`runtime_secrets`]. Blocking.
pub fn runtime_redactor(store: &Store, vault: &VaultCell, config: &EngineConfig) -> Redactor {
    let secrets = runtime_secrets(store, vault, config);
    Redactor::new(secrets.iter().map(|(l, s)| (l.as_str(), s)))
}
