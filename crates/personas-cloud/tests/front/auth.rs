//! The JWT matrix at the HTTP boundary: each refused token is a 401 `unauthorized` naming the
//! check that failed, with `WWW-Authenticate`, and never echoes the token.

use crate::harness::*;
use base64::Engine as _;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, EncodingKey};
use personas_cloud::auth::{Authenticator, JwksPolicy};
use personas_cloud::orchestrator::api::Api;
use serde_json::{Value, json};
use std::time::Duration;

async fn refused(base: &str, what: &str, token: &str, needle: &str) {
    let resp = reqwest::Client::new()
        .post(format!("{base}/api/whoami"))
        .bearer_auth(token)
        .body("{}")
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status().as_u16(), 401, "{what}: refused");
    let challenge = resp
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap_or_default().to_string());
    assert_eq!(
        challenge.as_deref(),
        Some("Bearer error=\"invalid_token\""),
        "{what}"
    );
    let body: Value = resp.json().await.expect("json error");
    assert_eq!(body["code"], "unauthorized", "{what}: {body}");
    let message = body["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(needle),
        "{what}: the message {message:?} names {needle:?}"
    );
    if token.len() > 8 {
        assert!(
            !body.to_string().contains(token),
            "{what}: the token is not echoed"
        );
    }
}

fn b64(v: &Value) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwt_matrix_refuses_every_bad_token_with_401_naming_the_check() {
    let front = Front::start().await;

    good_tokens_are_accepted(&front).await;
    forged_and_invalid_tokens_are_refused(&front).await;
    tampered_and_mistaken_tokens_are_refused(&front).await;
    unknown_kids_and_bad_headers_are_refused(&front).await;
}

/// ES256 and RS256 from the JWKS and the admin token; the key set fetched once.
async fn good_tokens_are_accepted(front: &Front) {
    let keys = &front.keys;
    // The good ones first: ES256 and RS256 from the JWKS, the admin token.
    let me = front
        .client(&front.token("tenant-es"))
        .whoami(&Default::default())
        .await;
    assert_eq!(me.expect("ES256 accepted").tenant_id, "tenant-es");
    let rs = sign(
        Algorithm::RS256,
        Some(RSA_KID),
        &keys.rsa,
        &claims("tenant-rs"),
    );
    let me = front
        .client(&rs)
        .whoami(&Default::default())
        .await
        .expect("RS256 accepted");
    assert_eq!(me.tenant_id, "tenant-rs");
    let admin = front
        .client(ADMIN_TOKEN)
        .whoami(&Default::default())
        .await
        .expect("admin");
    assert_eq!(
        (admin.tenant_id.as_str(), admin.subject.as_str()),
        ("admin", "admin")
    );
    assert_eq!(
        front.jwks.fetches(),
        1,
        "the key set is fetched once and cached"
    );
}

/// `none`, HS256 keyed with the public keys, and each failed claim check.
async fn forged_and_invalid_tokens_are_refused(front: &Front) {
    let keys = &front.keys;
    // alg none: no signature at all.
    let none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT"})),
        b64(&claims("x"))
    );
    refused(
        &front.base,
        "alg none",
        &none,
        "algorithm \"none\" is not accepted",
    )
    .await;
    // HS256 keyed with the public keys (the key-confusion attack): refused before any key.
    for (what, public) in [("EC", &keys.ec_public_pem), ("RSA", &keys.rsa_public_pem)] {
        let forged = sign(
            Algorithm::HS256,
            Some(if what == "EC" { EC_KID } else { RSA_KID }),
            &EncodingKey::from_secret(public).expect("hmac key"),
            &claims("victim"),
        );
        refused(
            &front.base,
            &format!("HS256 with the {what} public key"),
            &forged,
            "algorithm \"HS256\"",
        )
        .await;
    }
    let mut c = claims("x");
    c["exp"] = json!(now() - 3600);
    refused(
        &front.base,
        "expired",
        &sign(Algorithm::ES256, Some(EC_KID), &keys.ec, &c),
        "expired",
    )
    .await;
    let mut c = claims("x");
    c["nbf"] = json!(now() + 3600);
    refused(
        &front.base,
        "nbf in the future",
        &sign(Algorithm::ES256, Some(EC_KID), &keys.ec, &c),
        "not valid yet",
    )
    .await;
    let mut c = claims("x");
    c["aud"] = json!("another-service");
    refused(
        &front.base,
        "wrong aud",
        &sign(Algorithm::ES256, Some(EC_KID), &keys.ec, &c),
        "audience",
    )
    .await;
    let mut c = claims("x");
    c.as_object_mut().expect("claims").remove("aud");
    refused(
        &front.base,
        "no aud",
        &sign(Algorithm::ES256, Some(EC_KID), &keys.ec, &c),
        "aud",
    )
    .await;
    let mut c = claims("x");
    c["iss"] = json!("https://evil.test");
    refused(
        &front.base,
        "wrong iss",
        &sign(Algorithm::ES256, Some(EC_KID), &keys.ec, &c),
        "issuer",
    )
    .await;
    let bad_sig = sign(Algorithm::ES256, Some(EC_KID), &keys.other_ec, &claims("x"));
    refused(&front.base, "bad signature", &bad_sig, "signature").await;
}

/// A kid of another algorithm, a tampered payload, `sub: admin`, garbage, the admin token off
/// by one character.
async fn tampered_and_mistaken_tokens_are_refused(front: &Front) {
    let keys = &front.keys;
    // RS256 header with the EC key's kid: the key does not serve that algorithm.
    let crossed = sign(Algorithm::RS256, Some(EC_KID), &keys.rsa, &claims("x"));
    refused(&front.base, "kid of another algorithm", &crossed, "key id").await;
    // Tampered payload under a valid signature.
    let good = front.token("tenant-es");
    let parts: Vec<&str> = good.split('.').collect();
    let tampered = format!("{}.{}.{}", parts[0], b64(&claims("someone-else")), parts[2]);
    refused(&front.base, "tampered claims", &tampered, "signature").await;
    let mut c = claims("admin");
    c["sub"] = json!("admin");
    refused(
        &front.base,
        "sub admin",
        &sign(Algorithm::ES256, Some(EC_KID), &keys.ec, &c),
        "reserved",
    )
    .await;
    refused(
        &front.base,
        "garbage",
        "not-a-jwt-at-all",
        "well-formed JWT",
    )
    .await;
    // The admin token wrong by one character, at the end and at the start.
    let mut wrong = ADMIN_TOKEN.to_string();
    wrong.pop();
    wrong.push('0');
    refused(
        &front.base,
        "admin token off by one (last)",
        &wrong,
        "well-formed JWT",
    )
    .await;
    let wrong = format!("b{}", &ADMIN_TOKEN[1..]);
    refused(
        &front.base,
        "admin token off by one (first)",
        &wrong,
        "well-formed JWT",
    )
    .await;
}

/// Made-up kids (no refetch flood), no header, not a bearer.
async fn unknown_kids_and_bad_headers_are_refused(front: &Front) {
    let keys = &front.keys;
    // Unknown kids: refused, and a flood of them costs the issuer no extra fetch.
    for i in 0..20 {
        let t = sign(
            Algorithm::ES256,
            Some(&format!("made-up-{i}")),
            &keys.ec,
            &claims("x"),
        );
        refused(&front.base, "unknown kid", &t, "key id").await;
    }
    assert_eq!(
        front.jwks.fetches(),
        1,
        "unknown kids refetch at most every 30 s"
    );

    // No header, and not a bearer.
    let (status, body) = front.post("whoami", None, "{}").await;
    assert_eq!((status, body["code"].as_str()), (401, Some("unauthorized")));
    assert!(
        body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("no bearer token"),
        "{body}"
    );
    let resp = reqwest::Client::new()
        .post(format!("{}/api/whoami", front.base))
        .header("authorization", format!("Basic {ADMIN_TOKEN}"))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status().as_u16(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pinning_and_key_rotation_with_a_second_policy() {
    let front = Front::start().await;
    let keys = &front.keys;
    // The same deployment configured for ES256 only, refetching on unknown kids at once.
    let mut settings = front.orch.settings().clone();
    settings.jwt.algorithms = vec!["ES256".into()];
    let auth = Authenticator::with_policy(
        &settings.jwt,
        settings.admin_token.as_ref(),
        JwksPolicy {
            min_refetch: Duration::ZERO,
            max_age: Duration::from_secs(600),
        },
    )
    .expect("authenticator");
    let es_only = serve(Api::new(front.orch.clone(), auth)).await;
    let rs = sign(Algorithm::RS256, Some(RSA_KID), &keys.rsa, &claims("x"));
    refused(
        &es_only,
        "RS256 when only ES256 is configured",
        &rs,
        "algorithm \"RS256\"",
    )
    .await;
    // A key added to the issuer's set is picked up on first sight of its kid.
    let extra = sign(
        Algorithm::ES256,
        Some("ec-2"),
        &keys.extra_ec,
        &claims("rotated"),
    );
    refused(&es_only, "kid not published yet", &extra, "key id").await;
    front.jwks.set.lock().expect("jwks").keys.push(Keys::jwk(
        &keys.extra_ec,
        Algorithm::ES256,
        "ec-2",
    ));
    let client = personas_cloud_api::CloudClient::new(&es_only, &extra).expect("client");
    let me = client
        .whoami(&Default::default())
        .await
        .expect("rotated key accepted");
    assert_eq!(me.tenant_id, "rotated");
    // A key removed from the set stops working once the set is refetched.
    *front.jwks.set.lock().expect("jwks") = JwkSet { keys: vec![] };
    let other = sign(Algorithm::ES256, Some("ec-3"), &keys.extra_ec, &claims("x"));
    refused(&es_only, "unknown kid triggers a refetch", &other, "key id").await;
    refused(&es_only, "removed key", &extra, "key id").await;
}
