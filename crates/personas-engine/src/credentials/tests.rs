//! Vault and credential behaviour on a real SQLite store: refusal without a key store, the
//! passphrase path, the keychain path (with test keychains: CI has no OS keychain), rotation,
//! and resolution for a run.

use super::*;
use crate::vault::keychain::KeyStore;
use crate::vault::keychain::testing::{LossyKeychain, MemoryKeychain};
use personas_core::PersonaSpec;
use std::sync::Arc;

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = Store::open_in_dir(dir.path()).expect("store");
    (dir, s)
}

fn pass(p: &str) -> VaultOptions {
    VaultOptions {
        passphrase: Some(Secret::new(p)),
        new_passphrase: None,
        keychain: None,
    }
}

fn github(name: &str, token: &str) -> CredentialInput {
    CredentialInput {
        name: name.into(),
        kind: "github".into(),
        fields: [("token".to_string(), Secret::new(token))].into(),
        env_overrides: BTreeMap::new(),
    }
}

fn vault_bytes(store: &Store) -> Option<personas_store::VaultRecord> {
    store.credentials().vault().expect("read vault")
}

fn read_token(store: &Store, opts: &VaultOptions, name: &str) -> String {
    let v = Vault::open(store, opts).expect("open").expect("exists");
    let row = store.credentials().find(name).expect("find");
    let o = open(&v, store, row).expect("open cred");
    o.values["token"].expose().to_string()
}

#[test]
fn no_keychain_and_no_passphrase_is_a_clear_refusal_and_stores_nothing() {
    let (_d, s) = store();
    let none = VaultOptions::default();
    let e = add(&s, &none, &github("github", "ghp_aaaaaaaaaaaa")).expect_err("refused");
    let msg = e.to_string();
    assert!(msg.contains("refusing to store secrets"), "{msg}");
    assert!(msg.contains("PERSONAS_VAULT_PASSPHRASE"), "{msg}");
    // A keychain that silently loses secrets is detected by the probe and refused too.
    let lossy = VaultOptions {
        keychain: Some(Arc::new(LossyKeychain)),
        ..VaultOptions::default()
    };
    let e = add(&s, &lossy, &github("github", "ghp_aaaaaaaaaaaa")).expect_err("lossy");
    assert!(e.to_string().contains("did not keep"), "{e}");
    assert!(vault_bytes(&s).is_none());
    assert!(s.credentials().list().expect("list").is_empty());
}

#[test]
fn passphrase_vault_works_and_a_wrong_passphrase_changes_nothing() {
    let (_d, s) = store();
    let e = add(&s, &pass("short"), &github("github", "ghp_aaaaaaaaaaaa")).expect_err("weak");
    assert!(
        e.is_user_error() && e.to_string().contains("at least 8"),
        "{e}"
    );
    add(
        &s,
        &pass("correct horse battery"),
        &github("github", "ghp_aaaaaaaaaaaa"),
    )
    .expect("add");
    assert_eq!(
        read_token(&s, &pass("correct horse battery"), "github"),
        "ghp_aaaaaaaaaaaa"
    );
    let before = vault_bytes(&s);
    let fields_before = s
        .credentials()
        .fields(&s.credentials().find("github").expect("find").id)
        .expect("fields");
    let e = add(
        &s,
        &pass("wrong horse battery"),
        &github("other", "ghp_bbbbbbbbbbbb"),
    )
    .expect_err("wrong passphrase");
    assert!(
        matches!(e, CredentialError::Vault(VaultError::WrongPassphrase)),
        "{e}"
    );
    assert!(e.to_string().contains("nothing was decrypted"), "{e}");
    let e = Vault::open(&s, &pass("wrong horse battery")).expect_err("wrong");
    assert!(matches!(e, VaultError::WrongPassphrase));
    let e = Vault::open(&s, &VaultOptions::default()).expect_err("no passphrase");
    assert!(matches!(e, VaultError::PassphraseRequired));
    assert_eq!(vault_bytes(&s), before, "key record untouched");
    assert_eq!(
        s.credentials().list().expect("list").len(),
        1,
        "nothing added"
    );
    let id = s.credentials().find("github").expect("find").id;
    assert_eq!(s.credentials().fields(&id).expect("fields"), fields_before);
    // The database file holds no plaintext.
    drop(s);
}

#[test]
fn keychain_vault_keeps_only_the_key_there_and_reports_a_lost_key() {
    let (_d, s) = store();
    let kc = Arc::new(MemoryKeychain::default());
    let opts = VaultOptions {
        keychain: Some(kc.clone() as Arc<dyn KeyStore>),
        ..VaultOptions::default()
    };
    add(&s, &opts, &github("github", "ghp_cccccccccccc")).expect("add");
    let rec = vault_bytes(&s).expect("vault");
    assert_eq!(rec.key_source, "keychain");
    assert!(
        rec.wrapped_key.is_none() && rec.salt.is_none(),
        "no key material in the db"
    );
    assert_eq!(read_token(&s, &opts, "github"), "ghp_cccccccccccc");
    kc.0.lock().expect("lock").clear();
    let e = Vault::open(&s, &opts).expect_err("key gone");
    assert!(matches!(e, VaultError::KeyMissing { .. }), "{e}");
}

#[test]
fn rotation_keeps_every_credential_readable() {
    for keychain in [false, true] {
        let (_d, s) = store();
        let kc = Arc::new(MemoryKeychain::default());
        let opts = if keychain {
            VaultOptions {
                keychain: Some(kc.clone() as Arc<dyn KeyStore>),
                ..VaultOptions::default()
            }
        } else {
            pass("correct horse battery")
        };
        for i in 0..3 {
            add(
                &s,
                &opts,
                &github(&format!("gh{i}"), &format!("ghp_value_{i}_xxxxxx")),
            )
            .expect("add");
        }
        let before = s.credentials().all_sealed().expect("sealed");
        let mut v = Vault::open(&s, &opts).expect("open").expect("some");
        // A second process that unlocked before the rotation sees its key go stale.
        let old = Vault::open(&s, &opts).expect("open").expect("some");
        assert_eq!(v.rotate(&opts).expect("rotate"), 3);
        let after = s.credentials().all_sealed().expect("sealed");
        assert_eq!(after.len(), 3);
        for (b, a) in before.iter().zip(&after) {
            assert_ne!(b.sealed, a.sealed, "re-sealed");
            assert_eq!(a.generation, 2, "under generation 2");
        }
        for i in 0..3 {
            assert_eq!(
                read_token(&s, &opts, &format!("gh{i}")),
                format!("ghp_value_{i}_xxxxxx")
            );
        }
        let row = s.credentials().find("gh0").expect("find");
        assert!(matches!(
            open(&old, &s, row),
            Err(CredentialError::Vault(VaultError::Stale))
        ));
        if keychain {
            let entries = kc.0.lock().expect("lock").len();
            assert_eq!(entries, 1, "the retired key was removed from the keychain");
        }
    }
}

#[test]
fn rotation_to_a_new_passphrase_retires_the_old_one() {
    let (_d, s) = store();
    let old = pass("correct horse battery");
    add(&s, &old, &github("github", "ghp_dddddddddddd")).expect("add");
    let mut v = Vault::open(&s, &old).expect("open").expect("some");
    let re = VaultOptions {
        new_passphrase: Some(Secret::new("new staple passphrase")),
        ..old.clone()
    };
    v.rotate(&re).expect("rotate");
    assert!(matches!(
        Vault::open(&s, &old),
        Err(VaultError::WrongPassphrase)
    ));
    assert_eq!(
        read_token(&s, &pass("new staple passphrase"), "github"),
        "ghp_dddddddddddd"
    );
}

#[test]
fn bad_input_names_the_field_and_needs_no_vault() {
    let (_d, s) = store();
    let none = VaultOptions::default();
    let mut unknown = github("x", "ghp_aaaaaaaaaaaa");
    unknown.kind = "gitlab".into();
    let e = add(&s, &none, &unknown).expect_err("unknown type");
    assert!(
        e.to_string().contains("unknown credential type \"gitlab\""),
        "{e}"
    );
    assert!(e.to_string().contains("github"), "lists known types: {e}");

    let mut missing = github("x", "ghp_aaaaaaaaaaaa");
    missing.fields.clear();
    let e = add(&s, &none, &missing).expect_err("missing");
    assert!(e.to_string().contains("field token: is required"), "{e}");

    let mut denied = github("x", "ghp_aaaaaaaaaaaa");
    denied
        .env_overrides
        .insert("token".into(), "LD_PRELOAD".into());
    let e = add(&s, &none, &denied).expect_err("deny-list");
    assert!(
        e.to_string().contains("LD_PRELOAD is on the deny-list"),
        "{e}"
    );

    let mut extra = github("x", "ghp_aaaaaaaaaaaa");
    extra
        .fields
        .insert("password".into(), Secret::new("xyz123"));
    let e = add(&s, &none, &extra).expect_err("unknown field");
    assert!(e.to_string().contains("no field \"password\""), "{e}");
    assert!(vault_bytes(&s).is_none(), "bad input never created a vault");
}

#[test]
fn a_run_gets_env_docs_and_a_redactor_and_conflicts_are_refused() {
    let (_d, s) = store();
    let opts = pass("correct horse battery");
    add(&s, &opts, &github("github", "ghp_eeeeeeeeeeee")).expect("add");
    let p = s
        .personas()
        .create(&PersonaSpec::new("Triage", "triage"))
        .expect("persona");
    let mut unlocks = 0;
    let none = for_run(&s, &p.id, &mut || {
        unlocks += 1;
        Err(VaultError::PassphraseRequired)
    })
    .expect("no credentials");
    assert!(
        none.env.is_empty() && unlocks == 0,
        "no vault needed without credentials"
    );

    let gh = s.credentials().find("github").expect("find");
    s.credentials()
        .set_persona_credentials(&p.id, std::slice::from_ref(&gh.id))
        .expect("link");
    let mut unlock = || Vault::open(&s, &opts).map(|v| Arc::new(v.expect("vault")));
    let rc = for_run(&s, &p.id, &mut unlock).expect("resolve");
    let env: BTreeMap<_, _> = rc
        .env
        .iter()
        .map(|(k, v)| (k.clone(), v.expose().to_string()))
        .collect();
    assert_eq!(env["GITHUB_TOKEN"], "ghp_eeeeeeeeeeee");
    assert_eq!(env["GITHUB_API_URL"], "https://api.github.com");
    assert_eq!(rc.docs[0].env_vars, vec!["GITHUB_API_URL", "GITHUB_TOKEN"]);
    assert_eq!(
        rc.redactor.redact("token ghp_eeeeeeeeeeee"),
        "token [redacted:github.token]"
    );

    add(&s, &opts, &github("github2", "ghp_ffffffffffff")).expect("add");
    let gh2 = s.credentials().find("github2").expect("find");
    s.credentials()
        .set_persona_credentials(&p.id, &[gh.id.clone(), gh2.id])
        .expect("link");
    let e = for_run(&s, &p.id, &mut unlock).err().expect("conflict");
    assert!(e.to_string().contains("both set GITHUB_"), "{e}");
}
