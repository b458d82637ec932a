//! Who is calling: the bearer token of every API request and client stream, mapped to a tenant.
//!
//! Two kinds of token are accepted:
//! - the deployment's static admin token (self-hosting), compared in constant time, which maps to
//!   the tenant [`ADMIN_TENANT`];
//! - a JWT verified with `jsonwebtoken`, pinned to the configured algorithms: the `alg` its header
//!   names is checked against `settings.jwt.algorithms` before any key is looked at, so `none`,
//!   an HS256 token signed with a public key (the classic key-confusion attack) or an RS256 token
//!   where only ES256 is configured is refused without ever reaching a verifier. ES256/RS256 keys
//!   come from the JWKS URL (cached, refetched on an unknown `kid` at most every
//!   [`JwksPolicy::min_refetch`]), HS256 from the shared secret (Supabase). `exp` and `sub` are
//!   required; `nbf` is checked when present; `iss` and `aud` when configured.
//!
//! A JWT's `sub` is its tenant id. Every refusal is an [`AuthError`] that names what failed
//! (expired, wrong audience, …) and never echoes the token.

use crate::config::{JwtSettings, OrchestratorSettings, SecretSetting};
use base64::Engine as _;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey, Validation, errors::ErrorKind};
use personas_cloud_api::model::AuthKind;
use personas_cloud_api::{CloudError, CloudErrorCode};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;
use tokio::sync::{Mutex, RwLock};

/// The tenant of the deployment's static admin token. No JWT may claim it.
pub const ADMIN_TENANT: &str = "admin";

/// Clock skew tolerated on `exp` and `nbf`, in seconds.
pub const LEEWAY_SECS: u64 = 30;

/// Longest accepted `sub` (it becomes a tenant id in keys and rows).
const MAX_SUBJECT_LEN: usize = 200;

/// The caller of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub tenant_id: String,
    /// The token's `sub` (or `admin`).
    pub subject: String,
    pub via: AuthKind,
}

/// Why a request was refused. The message names the check that failed, never the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no bearer token: send `Authorization: Bearer <token>`")]
    Missing,
    #[error("the Authorization header is not `Bearer <token>`")]
    NotBearer,
    #[error("the bearer token is neither the admin token nor a well-formed JWT ({0})")]
    Malformed(String),
    #[error("the token's algorithm {alg} is not accepted here (accepted: {accepted})")]
    Algorithm { alg: String, accepted: String },
    #[error("the token has expired (exp)")]
    Expired,
    #[error("the token is not valid yet (nbf is in the future)")]
    NotYetValid,
    #[error("the token's audience (aud) is not this deployment's")]
    Audience,
    #[error("the token's issuer (iss) is not the configured one")]
    Issuer,
    #[error("the token's signature does not verify")]
    Signature,
    #[error("the token lacks the required claim {0}")]
    MissingClaim(String),
    #[error("the token's claim {0} is malformed")]
    BadClaim(String),
    #[error("the token names no key (kid) and the issuer's key set has no single {0} key")]
    NoKid(String),
    #[error("the token's key id (kid) is not in the issuer's key set")]
    UnknownKey,
    #[error("the token's subject (sub) {0}")]
    Subject(&'static str),
    /// The JWKS could not be fetched and no cached key applies: the token cannot be judged now.
    #[error("the issuer's key set cannot be fetched: {0}")]
    KeysUnavailable(String),
}

impl From<AuthError> for CloudError {
    fn from(e: AuthError) -> Self {
        let code = match e {
            AuthError::KeysUnavailable(_) => CloudErrorCode::Unavailable,
            _ => CloudErrorCode::Unauthorized,
        };
        CloudError::new(code, e.to_string())
    }
}

/// When the JWKS is fetched again.
#[derive(Debug, Clone, Copy)]
pub struct JwksPolicy {
    /// An unknown `kid` refetches the set at most this often (a flood of made-up kids costs the
    /// issuer one request per interval).
    pub min_refetch: Duration,
    /// Cached keys older than this are refreshed on the next request (a revoked key goes away).
    pub max_age: Duration,
}

impl Default for JwksPolicy {
    fn default() -> Self {
        Self {
            min_refetch: Duration::from_secs(30),
            max_age: Duration::from_secs(600),
        }
    }
}

/// Verifies bearer tokens. Cheap to clone.
#[derive(Clone)]
pub struct Authenticator {
    inner: Arc<Inner>,
}

struct Inner {
    /// SHA-256 of the admin token: comparing digests keeps the comparison's time independent of
    /// both the content and the length of the presented token.
    admin_digest: Option<[u8; 32]>,
    algorithms: Vec<Algorithm>,
    hs256: Option<DecodingKey>,
    jwks: Option<Jwks>,
    issuer: Option<String>,
    audience: Option<String>,
}

/// The issuer's public keys, fetched from its JWKS URL and cached.
struct Jwks {
    url: String,
    http: reqwest::Client,
    policy: JwksPolicy,
    cache: RwLock<KeyCache>,
    /// Held while fetching, so concurrent requests with a new kid cause one fetch.
    fetching: Mutex<()>,
}

#[derive(Default)]
struct KeyCache {
    keys: HashMap<String, (Algorithm, DecodingKey)>,
    /// When the set was last fetched successfully.
    fetched_at: Option<Instant>,
    /// When a fetch was last tried (successful or not).
    tried_at: Option<Instant>,
}

/// The parts of a JWT header read before verification: only to pick the key.
#[derive(Deserialize)]
struct RawHeader {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
}

#[derive(Deserialize)]
struct Claims {
    /// Optional here so that a token without it fails as "lacks the required claim sub"
    /// (validation's message) rather than as undecodable JSON.
    #[serde(default)]
    sub: Option<String>,
}

impl Authenticator {
    /// From the orchestrator's settings. Fails on settings that cannot work (an algorithm with
    /// no key source).
    pub fn new(settings: &OrchestratorSettings) -> anyhow::Result<Self> {
        Self::with_policy(
            &settings.jwt,
            settings.admin_token.as_ref(),
            JwksPolicy::default(),
        )
    }

    pub fn with_policy(
        jwt: &JwtSettings,
        admin_token: Option<&SecretSetting>,
        policy: JwksPolicy,
    ) -> anyhow::Result<Self> {
        let mut algorithms = Vec::new();
        for name in &jwt.algorithms {
            let alg = match name.as_str() {
                "ES256" => Algorithm::ES256,
                "RS256" => Algorithm::RS256,
                "HS256" => Algorithm::HS256,
                other => anyhow::bail!("JWT algorithm {other:?} is not one of ES256, RS256, HS256"),
            };
            if !algorithms.contains(&alg) {
                algorithms.push(alg);
            }
        }
        let wants_jwks = algorithms
            .iter()
            .any(|a| matches!(a, Algorithm::ES256 | Algorithm::RS256));
        if wants_jwks && jwt.jwks_url.is_none() {
            anyhow::bail!("ES256/RS256 JWTs are accepted but no JWKS URL is configured");
        }
        let hs256 = match (&jwt.hs256_secret, algorithms.contains(&Algorithm::HS256)) {
            (Some(secret), true) => Some(DecodingKey::from_secret(secret.expose().as_bytes())?),
            (None, true) => anyhow::bail!("HS256 JWTs are accepted but no shared secret is set"),
            // A secret without HS256 among the algorithms stays unused: pinning wins.
            (_, false) => None,
        };
        let jwks = match (&jwt.jwks_url, wants_jwks) {
            (Some(url), true) => Some(Jwks {
                url: url.clone(),
                http: reqwest::Client::builder()
                    .connect_timeout(Duration::from_secs(5))
                    .timeout(Duration::from_secs(10))
                    .build()?,
                policy,
                cache: RwLock::new(KeyCache::default()),
                fetching: Mutex::new(()),
            }),
            _ => None,
        };
        Ok(Self {
            inner: Arc::new(Inner {
                admin_digest: admin_token.map(|t| Sha256::digest(t.expose().as_bytes()).into()),
                algorithms,
                hs256,
                jwks,
                issuer: jwt.issuer.clone(),
                audience: jwt.audience.clone(),
            }),
        })
    }

    /// Accepts only the admin token (no JWT settings): what is left when JWT settings fail.
    pub fn admin_only(admin_token: Option<&SecretSetting>) -> Self {
        Self {
            inner: Arc::new(Inner {
                admin_digest: admin_token.map(|t| Sha256::digest(t.expose().as_bytes()).into()),
                algorithms: Vec::new(),
                hs256: None,
                jwks: None,
                issuer: None,
                audience: None,
            }),
        }
    }

    /// Authenticates an `Authorization` header value.
    pub async fn authenticate_header(&self, header: Option<&str>) -> Result<Principal, AuthError> {
        let value = header.ok_or(AuthError::Missing)?;
        let (scheme, token) = value.trim().split_once(' ').ok_or(AuthError::NotBearer)?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(AuthError::NotBearer);
        }
        let token = token.trim();
        if token.is_empty() {
            return Err(AuthError::Missing);
        }
        self.authenticate(token).await
    }

    /// Authenticates a bearer token.
    pub async fn authenticate(&self, token: &str) -> Result<Principal, AuthError> {
        if let Some(admin) = &self.inner.admin_digest {
            let presented: [u8; 32] = Sha256::digest(token.as_bytes()).into();
            if bool::from(presented.ct_eq(admin)) {
                return Ok(Principal {
                    tenant_id: ADMIN_TENANT.into(),
                    subject: ADMIN_TENANT.into(),
                    via: AuthKind::AdminToken,
                });
            }
        }
        self.verify_jwt(token).await
    }

    async fn verify_jwt(&self, token: &str) -> Result<Principal, AuthError> {
        let header = raw_header(token)?;
        // Pinning: the header's alg must be one this deployment accepts, checked before any key
        // is chosen, so no key is ever used with an algorithm it was not configured for.
        let alg = self
            .inner
            .algorithms
            .iter()
            .copied()
            .find(|a| alg_name(*a) == header.alg)
            .ok_or_else(|| AuthError::Algorithm {
                alg: printable(&header.alg),
                accepted: self.accepted(),
            })?;
        let key = match alg {
            Algorithm::HS256 => self
                .inner
                .hs256
                .clone()
                .ok_or_else(|| AuthError::Malformed("no HS256 secret".into()))?,
            _ => {
                let jwks = self.inner.jwks.as_ref().ok_or(AuthError::UnknownKey)?;
                jwks.key(alg, header.kid.as_deref()).await?
            }
        };
        let mut validation = Validation::new(alg);
        validation.leeway = LEEWAY_SECS;
        validation.validate_nbf = true;
        let mut required = vec!["exp", "sub"];
        if let Some(iss) = &self.inner.issuer {
            validation.set_issuer(&[iss]);
            required.push("iss");
        }
        match &self.inner.audience {
            Some(aud) => {
                validation.set_audience(&[aud]);
                required.push("aud");
            }
            None => validation.validate_aud = false,
        }
        validation.set_required_spec_claims(&required);
        let data = jsonwebtoken::decode::<Claims>(token, &key, &validation).map_err(map_error)?;
        let sub = data
            .claims
            .sub
            .ok_or_else(|| AuthError::MissingClaim("sub".into()))?;
        check_subject(&sub)?;
        Ok(Principal {
            tenant_id: sub.clone(),
            subject: sub,
            via: AuthKind::Jwt,
        })
    }

    fn accepted(&self) -> String {
        if self.inner.algorithms.is_empty() {
            return "none configured: only the admin token".into();
        }
        self.inner
            .algorithms
            .iter()
            .map(|a| alg_name(*a))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Decodes the first segment of a JWT (base64url JSON) to learn `alg` and `kid`. Deliberately
/// not `jsonwebtoken::decode_header`: that refuses algorithms it does not know (such as `none`)
/// with a JSON error, where the caller deserves "algorithm none is not accepted".
fn raw_header(token: &str) -> Result<RawHeader, AuthError> {
    let mut parts = token.split('.');
    let (Some(head), Some(_), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(AuthError::Malformed("not three dot-separated parts".into()));
    };
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(head.trim_end_matches('='))
        .map_err(|_| AuthError::Malformed("the header is not base64url".into()))?;
    serde_json::from_slice(&bytes)
        .map_err(|_| AuthError::Malformed("the header is not a JSON object with alg".into()))
}

fn alg_name(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::ES256 => "ES256",
        Algorithm::RS256 => "RS256",
        Algorithm::HS256 => "HS256",
        _ => "other",
    }
}

/// An attacker-chosen string fit for an error message: short, escaped.
fn printable(s: &str) -> String {
    let short: String = s.chars().take(16).collect();
    format!("{short:?}")
}

fn check_subject(sub: &str) -> Result<(), AuthError> {
    if sub.is_empty() {
        return Err(AuthError::Subject("is empty"));
    }
    if sub.len() > MAX_SUBJECT_LEN {
        return Err(AuthError::Subject("is longer than 200 bytes"));
    }
    if sub.chars().any(char::is_control) {
        return Err(AuthError::Subject("holds control characters"));
    }
    if sub == ADMIN_TENANT {
        return Err(AuthError::Subject(
            "`admin` is reserved for the admin token",
        ));
    }
    Ok(())
}

fn map_error(e: jsonwebtoken::errors::Error) -> AuthError {
    match e.into_kind() {
        ErrorKind::ExpiredSignature => AuthError::Expired,
        ErrorKind::ImmatureSignature => AuthError::NotYetValid,
        ErrorKind::InvalidAudience => AuthError::Audience,
        ErrorKind::InvalidIssuer => AuthError::Issuer,
        ErrorKind::InvalidSignature => AuthError::Signature,
        ErrorKind::MissingRequiredClaim(c) => AuthError::MissingClaim(c),
        ErrorKind::InvalidClaimFormat(c) => AuthError::BadClaim(c),
        ErrorKind::InvalidAlgorithm => AuthError::Signature,
        ErrorKind::Json(_) => AuthError::Malformed("its claims are not the expected JSON".into()),
        ErrorKind::Base64(_) | ErrorKind::Utf8(_) => {
            AuthError::Malformed("a part is not base64url".into())
        }
        // Key-format errors mean the signature cannot be checked with this key; anything else
        // is a token the verifier refused.
        _ => AuthError::Signature,
    }
}

impl Jwks {
    /// The key for `alg` and `kid`, from the cache or a (rate-limited) fetch.
    async fn key(&self, alg: Algorithm, kid: Option<&str>) -> Result<DecodingKey, AuthError> {
        if let Some(key) = self.cached(alg, kid, false).await? {
            return Ok(key);
        }
        // One fetch at a time; the cache itself is never locked across the fetch, so requests
        // whose keys are cached are not held up by a slow issuer.
        let _fetching = self.fetching.lock().await;
        // Another request may have fetched while this one waited.
        if let Some(key) = self.cached(alg, kid, false).await? {
            return Ok(key);
        }
        let may_fetch = self
            .cache
            .read()
            .await
            .tried_at
            .is_none_or(|t| t.elapsed() >= self.policy.min_refetch);
        if may_fetch {
            self.cache.write().await.tried_at = Some(Instant::now());
            let fetched = self.fetch().await;
            let mut cache = self.cache.write().await;
            match fetched {
                Ok(keys) => {
                    cache.keys = keys;
                    cache.fetched_at = Some(Instant::now());
                }
                Err(e) if cache.fetched_at.is_none() => return Err(AuthError::KeysUnavailable(e)),
                // Keep judging with the keys we have; the issuer is probably down briefly.
                Err(e) => tracing::warn!(url = %self.url, "cannot refresh the JWKS: {e}"),
            }
        }
        if self.cache.read().await.fetched_at.is_none() {
            return Err(AuthError::KeysUnavailable(
                "the last attempt failed; retrying shortly".into(),
            ));
        }
        self.cached(alg, kid, true)
            .await?
            .ok_or(AuthError::UnknownKey)
    }

    /// The cached key, if the cache may answer: it is fresh, or (`stale_ok`, or a refresh was
    /// tried recently) it is the best there is.
    async fn cached(
        &self,
        alg: Algorithm,
        kid: Option<&str>,
        stale_ok: bool,
    ) -> Result<Option<DecodingKey>, AuthError> {
        let cache = self.cache.read().await;
        let fresh = cache
            .fetched_at
            .is_some_and(|t| t.elapsed() < self.policy.max_age);
        let tried_recently = cache
            .tried_at
            .is_some_and(|t| t.elapsed() < self.policy.min_refetch);
        if fresh || stale_ok || tried_recently {
            pick(&cache, alg, kid)
        } else {
            Ok(None)
        }
    }

    async fn fetch(&self) -> Result<HashMap<String, (Algorithm, DecodingKey)>, String> {
        let resp = self
            .http
            .get(&self.url)
            .send()
            .await
            .map_err(|e| format!("GET {}: {e}", self.url))?;
        if !resp.status().is_success() {
            return Err(format!("GET {} answered {}", self.url, resp.status()));
        }
        let set: JwkSet = resp
            .json()
            .await
            .map_err(|e| format!("{} is not a JWKS: {e}", self.url))?;
        let mut keys = HashMap::new();
        for (i, jwk) in set.keys.iter().enumerate() {
            let Some(alg) = usable_alg(jwk) else {
                continue;
            };
            let kid = jwk.common.key_id.clone().unwrap_or_else(|| format!("#{i}"));
            match DecodingKey::from_jwk(jwk) {
                Ok(key) => {
                    keys.insert(kid, (alg, key));
                }
                Err(e) => tracing::warn!(kid, "skipping an unusable JWKS key: {e}"),
            }
        }
        Ok(keys)
    }
}

/// The one algorithm a JWKS key may verify: ES256 for a P-256 EC key, RS256 for an RSA key.
/// Symmetric (`oct`) and other keys are never used: a public key set has no business holding
/// secrets, and an HMAC key taken from it would undo the pinning.
fn usable_alg(jwk: &jsonwebtoken::jwk::Jwk) -> Option<Algorithm> {
    let alg = match &jwk.algorithm {
        AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P256 => Algorithm::ES256,
        AlgorithmParameters::RSA(_) => Algorithm::RS256,
        _ => return None,
    };
    match jwk.common.key_algorithm {
        None => Some(alg),
        Some(KeyAlgorithm::ES256) if alg == Algorithm::ES256 => Some(alg),
        Some(KeyAlgorithm::RS256) if alg == Algorithm::RS256 => Some(alg),
        Some(_) => None,
    }
}

/// The cached key for `alg` and `kid`; without a kid, the only key of that algorithm.
fn pick(
    cache: &KeyCache,
    alg: Algorithm,
    kid: Option<&str>,
) -> Result<Option<DecodingKey>, AuthError> {
    match kid {
        Some(kid) => Ok(cache
            .keys
            .get(kid)
            .filter(|(a, _)| *a == alg)
            .map(|(_, k)| k.clone())),
        None => {
            let mut of_alg = cache.keys.values().filter(|(a, _)| *a == alg);
            match (of_alg.next(), of_alg.next()) {
                (Some((_, k)), None) => Ok(Some(k.clone())),
                (None, _) if cache.fetched_at.is_none() => Ok(None),
                _ => Err(AuthError::NoKid(alg_name(alg).into())),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header, encode};
    use serde_json::json;

    fn hs_settings(secret: &str, algs: &[&str]) -> JwtSettings {
        JwtSettings {
            jwks_url: None,
            hs256_secret: Some(SecretSetting(secret.to_string().into())),
            issuer: Some("https://issuer.test".into()),
            audience: Some("personas".into()),
            algorithms: algs.iter().map(|a| a.to_string()).collect(),
        }
    }

    fn now() -> u64 {
        jsonwebtoken::get_current_timestamp()
    }

    fn hs_token(secret: &str, claims: serde_json::Value) -> String {
        encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(secret.as_bytes()).expect("key"),
        )
        .expect("sign")
    }

    fn good_claims() -> serde_json::Value {
        json!({"sub": "tenant-1", "exp": now() + 600, "iss": "https://issuer.test", "aud": "personas"})
    }

    fn auth(secret: &str) -> Authenticator {
        let admin = SecretSetting("the-admin-token-0123456789".to_string().into());
        Authenticator::with_policy(
            &hs_settings(secret, &["HS256"]),
            Some(&admin),
            JwksPolicy::default(),
        )
        .expect("authenticator")
    }

    #[tokio::test]
    async fn hs256_token_maps_sub_to_tenant() {
        let a = auth("s3cret");
        let p = a
            .authenticate(&hs_token("s3cret", good_claims()))
            .await
            .expect("valid");
        assert_eq!(p.tenant_id, "tenant-1");
        assert_eq!(p.via, AuthKind::Jwt);
    }

    #[tokio::test]
    async fn each_failed_check_is_named() {
        let a = auth("s3cret");
        let mut c = good_claims();
        c["exp"] = json!(now() - 600);
        assert_eq!(
            a.authenticate(&hs_token("s3cret", c)).await,
            Err(AuthError::Expired)
        );
        let mut c = good_claims();
        c["nbf"] = json!(now() + 600);
        assert_eq!(
            a.authenticate(&hs_token("s3cret", c)).await,
            Err(AuthError::NotYetValid)
        );
        let mut c = good_claims();
        c["aud"] = json!("someone-else");
        assert_eq!(
            a.authenticate(&hs_token("s3cret", c)).await,
            Err(AuthError::Audience)
        );
        let mut c = good_claims();
        c["iss"] = json!("https://evil.test");
        assert_eq!(
            a.authenticate(&hs_token("s3cret", c)).await,
            Err(AuthError::Issuer)
        );
        assert_eq!(
            a.authenticate(&hs_token("other", good_claims())).await,
            Err(AuthError::Signature)
        );
        let mut c = good_claims();
        c.as_object_mut().expect("object").remove("sub");
        assert_eq!(
            a.authenticate(&hs_token("s3cret", c)).await,
            Err(AuthError::MissingClaim("sub".into()))
        );
        let mut c = good_claims();
        c["sub"] = json!("admin");
        assert!(matches!(
            a.authenticate(&hs_token("s3cret", c)).await,
            Err(AuthError::Subject(_))
        ));
    }

    #[tokio::test]
    async fn alg_none_is_refused_by_name() {
        let a = auth("s3cret");
        let b64 = |v: serde_json::Value| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
        };
        let token = format!(
            "{}.{}.",
            b64(json!({"alg": "none", "typ": "JWT"})),
            b64(good_claims())
        );
        let err = a.authenticate(&token).await.expect_err("refused");
        assert!(
            matches!(&err, AuthError::Algorithm { alg, .. } if alg == "\"none\""),
            "{err}"
        );
        assert!(
            err.to_string().contains("HS256"),
            "names what is accepted: {err}"
        );
    }

    #[tokio::test]
    async fn admin_token_matches_exactly() {
        let a = auth("s3cret");
        let p = a
            .authenticate("the-admin-token-0123456789")
            .await
            .expect("admin");
        assert_eq!(
            (p.tenant_id.as_str(), p.via),
            ("admin", AuthKind::AdminToken)
        );
        for wrong in [
            "the-admin-token-012345678",
            "the-admin-token-0123456788",
            "the-admin-token-01234567890",
        ] {
            let err = a.authenticate(wrong).await.expect_err("refused");
            assert!(matches!(err, AuthError::Malformed(_)), "{err}");
            assert!(!err.to_string().contains(wrong), "the token is not echoed");
        }
    }

    #[tokio::test]
    async fn header_must_be_bearer() {
        let a = auth("s3cret");
        assert_eq!(a.authenticate_header(None).await, Err(AuthError::Missing));
        assert_eq!(
            a.authenticate_header(Some("Basic abc")).await,
            Err(AuthError::NotBearer)
        );
        assert_eq!(
            a.authenticate_header(Some("Bearer ")).await,
            Err(AuthError::NotBearer)
        );
        let ok = a
            .authenticate_header(Some("bearer the-admin-token-0123456789"))
            .await
            .expect("scheme is case-insensitive");
        assert_eq!(ok.tenant_id, "admin");
    }

    #[test]
    fn settings_without_a_key_source_are_refused() {
        let mut s = hs_settings("x", &["ES256"]);
        assert!(Authenticator::with_policy(&s, None, JwksPolicy::default()).is_err());
        s.hs256_secret = None;
        s.algorithms = vec!["HS256".into()];
        assert!(Authenticator::with_policy(&s, None, JwksPolicy::default()).is_err());
    }

    #[test]
    fn oct_keys_in_a_jwks_are_never_usable() {
        let set: JwkSet = serde_json::from_value(json!({"keys": [
            {"kty": "oct", "k": "c2VjcmV0", "kid": "sym"},
            {"kty": "EC", "crv": "P-384", "x": "AA", "y": "AA", "kid": "p384"},
        ]}))
        .expect("jwks");
        assert!(set.keys.iter().all(|k| usable_alg(k).is_none()));
    }
}
