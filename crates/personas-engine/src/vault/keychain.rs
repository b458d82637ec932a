//! Where the vault's data key lives when no passphrase is used: the OS keychain (macOS Keychain,
//! Windows Credential Manager, the Secret Service on Linux) through the `keyring` crate.
//!
//! Some Linux setups accept a secret and silently lose it (no Secret Service, a locked or
//! in-memory collection). A keychain is therefore only used after a probe has written an entry
//! and read the same bytes back through a fresh handle. Every call runs on its own thread with a
//! deadline, because a D-Bus call to a keychain daemon that never answers would otherwise hang
//! the caller.

use personas_core::Secret;
use std::sync::mpsc;
use std::time::Duration;

/// The keychain service name entries are stored under.
pub const SERVICE: &str = "personas-vault";
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// A place to keep the data key.
pub trait KeyStore: Send + Sync {
    /// For messages, e.g. "the OS keychain".
    fn describe(&self) -> String;
    fn get(&self, account: &str) -> Result<Option<Secret>, String>;
    fn set(&self, account: &str, value: &Secret) -> Result<(), String>;
    fn delete(&self, account: &str) -> Result<(), String>;
}

/// The operating system's keychain.
#[derive(Debug, Default, Clone, Copy)]
pub struct OsKeychain;

fn with_deadline<T: Send + 'static>(
    what: &str,
    f: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("personas-keychain".into())
        .spawn(move || {
            let _ = tx.send(f());
        })
        .map_err(|e| format!("cannot start a thread for the keychain: {e}"))?;
    rx.recv_timeout(CALL_TIMEOUT).unwrap_or_else(|_| {
        Err(format!(
            "the keychain did not answer {what} within {} s",
            CALL_TIMEOUT.as_secs()
        ))
    })
}

impl KeyStore for OsKeychain {
    fn describe(&self) -> String {
        "the OS keychain".into()
    }

    fn get(&self, account: &str) -> Result<Option<Secret>, String> {
        let account = account.to_string();
        with_deadline("a read", move || {
            let entry = keyring::Entry::new(SERVICE, &account).map_err(|e| e.to_string())?;
            match entry.get_password() {
                Ok(v) => Ok(Some(Secret::new(v))),
                Err(keyring::Error::NoEntry) => Ok(None),
                Err(e) => Err(e.to_string()),
            }
        })
    }

    fn set(&self, account: &str, value: &Secret) -> Result<(), String> {
        let (account, value) = (account.to_string(), value.clone());
        with_deadline("a write", move || {
            let entry = keyring::Entry::new(SERVICE, &account).map_err(|e| e.to_string())?;
            entry
                .set_password(value.expose())
                .map_err(|e| e.to_string())
        })
    }

    fn delete(&self, account: &str) -> Result<(), String> {
        let account = account.to_string();
        with_deadline("a delete", move || {
            let entry = keyring::Entry::new(SERVICE, &account).map_err(|e| e.to_string())?;
            match entry.delete_credential() {
                Ok(()) | Err(keyring::Error::NoEntry) => Ok(()),
                Err(e) => Err(e.to_string()),
            }
        })
    }
}

/// Writes a random entry, reads it back, deletes it. Ok only if the same value came back.
pub fn probe(store: &dyn KeyStore) -> Result<(), String> {
    let suffix: u64 = rand::random();
    let account = format!("probe-{suffix:016x}");
    let value = Secret::new(format!("probe-value-{:016x}", rand::random::<u64>()));
    store.set(&account, &value)?;
    let back = store.get(&account);
    let _ = store.delete(&account);
    match back? {
        Some(v) if v == value => Ok(()),
        Some(_) => Err("it returned a different value than was stored".into()),
        None => Err("it accepted a value but did not keep it".into()),
    }
}

#[cfg(test)]
pub(crate) mod testing {
    //! Keychains for tests of the vault's own logic (the OS keychain is not reachable on CI).
    use super::*;
    use std::collections::HashMap;
    use std::sync::Mutex;

    /// A keychain that keeps what it is given.
    #[derive(Default)]
    pub struct MemoryKeychain(pub Mutex<HashMap<String, String>>);

    impl KeyStore for MemoryKeychain {
        fn describe(&self) -> String {
            "a test keychain".into()
        }
        fn get(&self, account: &str) -> Result<Option<Secret>, String> {
            let m = self.0.lock().map_err(|e| e.to_string())?;
            Ok(m.get(account).map(|v| Secret::new(v.clone())))
        }
        fn set(&self, account: &str, value: &Secret) -> Result<(), String> {
            let mut m = self.0.lock().map_err(|e| e.to_string())?;
            m.insert(account.into(), value.expose().into());
            Ok(())
        }
        fn delete(&self, account: &str) -> Result<(), String> {
            let mut m = self.0.lock().map_err(|e| e.to_string())?;
            m.remove(account);
            Ok(())
        }
    }

    /// A keychain that says yes and keeps nothing (what some Linux backends do).
    pub struct LossyKeychain;

    impl KeyStore for LossyKeychain {
        fn describe(&self) -> String {
            "a lossy keychain".into()
        }
        fn get(&self, _: &str) -> Result<Option<Secret>, String> {
            Ok(None)
        }
        fn set(&self, _: &str, _: &Secret) -> Result<(), String> {
            Ok(())
        }
        fn delete(&self, _: &str) -> Result<(), String> {
            Ok(())
        }
    }

    #[test]
    fn the_probe_accepts_a_keeping_keychain_and_refuses_a_lossy_one() {
        assert!(probe(&MemoryKeychain::default()).is_ok());
        let e = probe(&LossyKeychain).expect_err("lossy");
        assert!(e.contains("did not keep"), "{e}");
    }
}
