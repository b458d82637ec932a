//! Who may call a webhook: checking a request's signature headers against the trigger's secret,
//! without I/O, so every header and body a sender can make is testable on its own.
//!
//! Two schemes, chosen per trigger:
//! - **Personas** (default): `X-Personas-Timestamp: <unix seconds>` and
//!   `X-Personas-Signature: sha256=<hex of HMAC-SHA256(secret, "<timestamp>.<raw body>")>`.
//!   A timestamp more than [`WINDOW_SECS`] from this server's clock is refused, so a captured
//!   request stops working after minutes; within the window the signature is the delivery's
//!   identity and a second use of it is a replay.
//! - **GitHub** (`--github`): `X-Hub-Signature-256: sha256=<hex of HMAC-SHA256(secret, raw
//!   body)>` as GitHub sends it, with `X-GitHub-Delivery` as the delivery's identity (GitHub
//!   signs no timestamp, so the delivery id is what a replay repeats).
//!
//! The key is the secret string's bytes. Signatures are compared in constant time. Every
//! refusal is a [`Rejection`] naming the header at fault and how to sign correctly.

use axum::http::HeaderMap;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// The signature header of the Personas scheme.
pub const SIGNATURE_HEADER: &str = "x-personas-signature";
/// The signed timestamp header of the Personas scheme.
pub const TIMESTAMP_HEADER: &str = "x-personas-timestamp";
/// The optional delivery-id header of the Personas scheme (a sender's own retry id).
pub const DELIVERY_HEADER: &str = "x-personas-delivery";
/// GitHub's signature header.
pub const GITHUB_SIGNATURE_HEADER: &str = "x-hub-signature-256";
/// GitHub's delivery id header.
pub const GITHUB_DELIVERY_HEADER: &str = "x-github-delivery";
/// How far a signed timestamp may be from this server's clock, either way.
pub const WINDOW_SECS: i64 = 300;
/// Longest delivery id accepted.
pub const MAX_DELIVERY_ID: usize = 200;

const PERSONAS_HOW: &str = "sign with X-Personas-Timestamp: <unix seconds> and \
    X-Personas-Signature: sha256=<hex of HMAC-SHA256(secret, \"<timestamp>.<raw body>\")>";
const GITHUB_HOW: &str = "this is a GitHub-format webhook: GitHub sends X-Hub-Signature-256: \
    sha256=<hex of HMAC-SHA256(secret, raw body)> and X-GitHub-Delivery";

type HmacSha256 = Hmac<Sha256>;

/// How a trigger's callers sign.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Personas,
    GitHub,
}

/// A request proven to come from a holder of the secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// What a replay of this request repeats: `sig:<hex>` or `github:<delivery id>`.
    pub delivery_key: String,
    /// When (unix milliseconds) a replay no longer needs remembering: it is refused as stale
    /// from then on, or (GitHub) by its event's dedupe key.
    pub expires_at_ms: i64,
    /// The sender's delivery id, when it gave one (GitHub always does).
    pub delivery_id: Option<String>,
}

/// Why a request was not accepted as authentic. Each is answered 401 with its [`code`] and
/// message, and names its header.
///
/// [`code`]: Rejection::code
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("the {header} header is missing; {how}")]
    Missing {
        header: &'static str,
        how: &'static str,
    },
    #[error("the {header} header is not valid: {reason}")]
    Malformed {
        header: &'static str,
        reason: String,
    },
    #[error(
        "the X-Personas-Timestamp {timestamp} is {skew} s from this server's clock, more than \
         the {WINDOW_SECS} s allowed: sign each request with the current time"
    )]
    Stale { timestamp: i64, skew: i64 },
    #[error("the {header} signature does not match this webhook's secret; {how}")]
    Mismatch {
        header: &'static str,
        how: &'static str,
    },
}

impl Rejection {
    /// The wire error code.
    pub fn code(&self) -> &'static str {
        match self {
            Rejection::Missing { .. } => "missing_signature",
            Rejection::Malformed { .. } => "malformed_signature",
            Rejection::Stale { .. } => "stale_timestamp",
            Rejection::Mismatch { .. } => "bad_signature",
        }
    }

    /// The header at fault.
    pub fn header(&self) -> &'static str {
        match self {
            Rejection::Missing { header, .. }
            | Rejection::Malformed { header, .. }
            | Rejection::Mismatch { header, .. } => header,
            Rejection::Stale { .. } => TIMESTAMP_HEADER,
        }
    }
}

fn mac(secret: &str) -> HmacSha256 {
    HmacSha256::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The `X-Personas-Signature` value for `body` sent at `timestamp` (unix seconds).
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut m = mac(secret);
    m.update(timestamp.to_string().as_bytes());
    m.update(b".");
    m.update(body);
    format!("sha256={}", hex(&m.finalize().into_bytes()))
}

/// The `X-Hub-Signature-256` value GitHub sends for `body`.
pub fn sign_github(secret: &str, body: &[u8]) -> String {
    let mut m = mac(secret);
    m.update(body);
    format!("sha256={}", hex(&m.finalize().into_bytes()))
}

/// The headers a Personas-scheme sender sets for `body` at `timestamp`.
pub fn signed_headers(secret: &str, timestamp: i64, body: &[u8]) -> [(&'static str, String); 2] {
    [
        (TIMESTAMP_HEADER, timestamp.to_string()),
        (SIGNATURE_HEADER, sign(secret, timestamp, body)),
    ]
}

/// A header's value as text, or why not. `None`: absent.
fn text<'h>(headers: &'h HeaderMap, name: &'static str) -> Result<Option<&'h str>, Rejection> {
    match headers.get(name) {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .map(|s| Some(s.trim()))
            .map_err(|_| Rejection::Malformed {
                header: name,
                reason: "it is not printable ASCII text".into(),
            }),
    }
}

fn required<'h>(
    headers: &'h HeaderMap,
    name: &'static str,
    how: &'static str,
) -> Result<&'h str, Rejection> {
    match text(headers, name)? {
        Some(v) if !v.is_empty() => Ok(v),
        _ => Err(Rejection::Missing { header: name, how }),
    }
}

/// A `sha256=<64 hex digits>` value's 32 bytes.
fn digest(header: &'static str, value: &str) -> Result<Vec<u8>, Rejection> {
    let malformed = |reason: &str| Rejection::Malformed {
        header,
        reason: reason.into(),
    };
    let hex = value
        .strip_prefix("sha256=")
        .ok_or_else(|| malformed("expected sha256=<64 hex digits>"))?;
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(malformed("expected sha256= followed by 64 hex digits"));
    }
    (0..64)
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16))
        .collect::<Result<_, _>>()
        .map_err(|_| malformed("expected sha256= followed by 64 hex digits"))
}

fn delivery_id(headers: &HeaderMap, name: &'static str) -> Result<Option<String>, Rejection> {
    let Some(v) = text(headers, name)?.filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    if v.len() > MAX_DELIVERY_ID {
        return Err(Rejection::Malformed {
            header: name,
            reason: format!("a delivery id may be at most {MAX_DELIVERY_ID} characters"),
        });
    }
    Ok(Some(v.to_string()))
}

/// Checks a request's headers and raw body against `secret`, at `now` (unix seconds).
pub fn verify(
    scheme: Scheme,
    secret: &str,
    headers: &HeaderMap,
    body: &[u8],
    now: i64,
) -> Result<Verified, Rejection> {
    match scheme {
        Scheme::Personas => verify_personas(secret, headers, body, now),
        Scheme::GitHub => verify_github(secret, headers, body, now),
    }
}

fn verify_personas(
    secret: &str,
    headers: &HeaderMap,
    body: &[u8],
    now: i64,
) -> Result<Verified, Rejection> {
    let raw_ts = required(headers, TIMESTAMP_HEADER, PERSONAS_HOW)?;
    let timestamp = (raw_ts.len() <= 12 && raw_ts.bytes().all(|b| b.is_ascii_digit()))
        .then(|| raw_ts.parse::<i64>().ok())
        .flatten()
        .ok_or_else(|| Rejection::Malformed {
            header: TIMESTAMP_HEADER,
            reason: "expected the time of sending in unix seconds, e.g. 1733200000".into(),
        })?;
    let given = digest(
        SIGNATURE_HEADER,
        required(headers, SIGNATURE_HEADER, PERSONAS_HOW)?,
    )?;
    let skew = now.saturating_sub(timestamp);
    if skew.abs() > WINDOW_SECS {
        return Err(Rejection::Stale { timestamp, skew });
    }
    let mut m = mac(secret);
    // The digits as sent: a zero-padded timestamp signs differently from its value.
    m.update(raw_ts.as_bytes());
    m.update(b".");
    m.update(body);
    m.verify_slice(&given).map_err(|_| Rejection::Mismatch {
        header: SIGNATURE_HEADER,
        how: PERSONAS_HOW,
    })?;
    Ok(Verified {
        delivery_key: format!("sig:{}", hex(&given)),
        expires_at_ms: timestamp.saturating_add(WINDOW_SECS).saturating_mul(1000),
        delivery_id: delivery_id(headers, DELIVERY_HEADER)?,
    })
}

fn verify_github(
    secret: &str,
    headers: &HeaderMap,
    body: &[u8],
    now: i64,
) -> Result<Verified, Rejection> {
    let given = digest(
        GITHUB_SIGNATURE_HEADER,
        required(headers, GITHUB_SIGNATURE_HEADER, GITHUB_HOW)?,
    )?;
    let mut m = mac(secret);
    m.update(body);
    m.verify_slice(&given).map_err(|_| Rejection::Mismatch {
        header: GITHUB_SIGNATURE_HEADER,
        how: GITHUB_HOW,
    })?;
    let delivery = delivery_id(headers, GITHUB_DELIVERY_HEADER)?.ok_or(Rejection::Missing {
        header: GITHUB_DELIVERY_HEADER,
        how: GITHUB_HOW,
    })?;
    Ok(Verified {
        delivery_key: format!("github:{delivery}"),
        expires_at_ms: now.saturating_add(WINDOW_SECS).saturating_mul(1000),
        delivery_id: Some(delivery),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{HeaderName, HeaderValue};
    use proptest::prelude::*;

    const NOW: i64 = 1_733_200_000;

    fn headers(pairs: &[(&str, String)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                HeaderName::from_bytes(k.as_bytes()).expect("name"),
                HeaderValue::from_str(v).expect("value"),
            );
        }
        h
    }

    #[test]
    fn githubs_published_test_vector_verifies() {
        // https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries
        let secret = "It's a Secret to Everybody";
        let expected = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert_eq!(sign_github(secret, b"Hello, World!"), expected);
        let h = headers(&[
            (GITHUB_SIGNATURE_HEADER, expected.into()),
            (
                GITHUB_DELIVERY_HEADER,
                "72d3162e-cc78-11e3-81ab-4c9367dc0958".into(),
            ),
        ]);
        let ok = verify(Scheme::GitHub, secret, &h, b"Hello, World!", NOW).expect("valid");
        assert_eq!(
            ok.delivery_key,
            "github:72d3162e-cc78-11e3-81ab-4c9367dc0958"
        );
        let e = verify(Scheme::GitHub, secret, &h, b"Hello, World?", NOW).expect_err("tampered");
        assert_eq!(e.code(), "bad_signature");
        assert_eq!(
            verify(Scheme::Personas, secret, &h, b"Hello, World!", NOW)
                .expect_err("a GitHub signature is not a Personas one")
                .header(),
            TIMESTAMP_HEADER
        );
    }

    #[test]
    fn a_github_request_needs_its_delivery_id() {
        let secret = "s3cret";
        let h = headers(&[(GITHUB_SIGNATURE_HEADER, sign_github(secret, b"{}"))]);
        let e = verify(Scheme::GitHub, secret, &h, b"{}", NOW).expect_err("no delivery");
        assert_eq!(e.header(), GITHUB_DELIVERY_HEADER);
        assert_eq!(e.code(), "missing_signature");
    }

    #[test]
    fn a_known_vector() {
        // RFC 4231 test case 2, as the GitHub scheme signs (the body alone).
        assert_eq!(
            sign_github("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // The Personas scheme signs "<timestamp>.<body>".
        assert_eq!(sign("Jefe", 1, b"x"), sign_github("Jefe", b"1.x"));
    }

    #[test]
    fn the_timestamp_is_signed_and_must_be_recent() {
        let secret = "s3cret";
        let body = br#"{"a":1}"#;
        let ok = verify(
            Scheme::Personas,
            secret,
            &headers(&signed_headers(secret, NOW, body)),
            body,
            NOW,
        )
        .expect("valid");
        assert!(ok.delivery_key.starts_with("sig:") && ok.delivery_key.len() == 4 + 64);
        assert_eq!(ok.expires_at_ms, (NOW + WINDOW_SECS) * 1000);
        for edge in [NOW - WINDOW_SECS, NOW + WINDOW_SECS] {
            let h = headers(&signed_headers(secret, edge, body));
            assert!(
                verify(Scheme::Personas, secret, &h, body, NOW).is_ok(),
                "{edge}"
            );
        }
        for (stale, skew) in [
            (NOW - WINDOW_SECS - 1, WINDOW_SECS + 1),
            (NOW + WINDOW_SECS + 1, -WINDOW_SECS - 1),
        ] {
            let h = headers(&signed_headers(secret, stale, body));
            let e = verify(Scheme::Personas, secret, &h, body, NOW).expect_err("stale");
            assert_eq!(
                e,
                Rejection::Stale {
                    timestamp: stale,
                    skew
                }
            );
            assert_eq!(e.code(), "stale_timestamp");
        }
        // Moving the timestamp without re-signing breaks the signature.
        let [_, sig] = signed_headers(secret, NOW, body);
        let h = headers(&[(TIMESTAMP_HEADER, (NOW - 1).to_string()), sig]);
        let e = verify(Scheme::Personas, secret, &h, body, NOW).expect_err("moved");
        assert_eq!(e.code(), "bad_signature");
    }

    #[test]
    fn missing_and_garbled_headers_say_which_and_why() {
        let secret = "s3cret";
        let body = b"{}";
        let [ts, sig] = signed_headers(secret, NOW, body);
        // (headers sent, the header blamed, the code)
        type Case<'a> = (Vec<(&'a str, String)>, &'a str, &'a str);
        let cases: Vec<Case<'_>> = vec![
            (vec![], TIMESTAMP_HEADER, "missing_signature"),
            (vec![ts.clone()], SIGNATURE_HEADER, "missing_signature"),
            (vec![sig.clone()], TIMESTAMP_HEADER, "missing_signature"),
            (
                vec![(TIMESTAMP_HEADER, "yesterday".into()), sig.clone()],
                TIMESTAMP_HEADER,
                "malformed_signature",
            ),
            (
                vec![(TIMESTAMP_HEADER, "-5".into()), sig.clone()],
                TIMESTAMP_HEADER,
                "malformed_signature",
            ),
            (
                vec![(TIMESTAMP_HEADER, "9".repeat(30)), sig.clone()],
                TIMESTAMP_HEADER,
                "malformed_signature",
            ),
            (
                vec![ts.clone(), (SIGNATURE_HEADER, sig.1[7..].to_string())],
                SIGNATURE_HEADER,
                "malformed_signature",
            ),
            (
                vec![ts.clone(), (SIGNATURE_HEADER, "sha256=zz".into())],
                SIGNATURE_HEADER,
                "malformed_signature",
            ),
            (
                vec![ts.clone(), (SIGNATURE_HEADER, sign("other", NOW, body))],
                SIGNATURE_HEADER,
                "bad_signature",
            ),
            (
                vec![ts.clone(), sig.clone(), (DELIVERY_HEADER, "d".repeat(201))],
                DELIVERY_HEADER,
                "malformed_signature",
            ),
        ];
        for (pairs, header, code) in cases {
            let e =
                verify(Scheme::Personas, secret, &headers(&pairs), body, NOW).expect_err("refused");
            assert_eq!((e.header(), e.code()), (header, code), "{pairs:?}: {e}");
            let msg = e.to_string();
            assert!(msg.contains(header), "the message names the header: {msg}");
            assert!(!msg.contains(secret), "never the secret: {msg}");
        }
        let mut h = HeaderMap::new();
        h.insert(
            TIMESTAMP_HEADER,
            HeaderValue::from_bytes(b"17\xff").expect("opaque"),
        );
        let e = verify(Scheme::Personas, secret, &h, body, NOW).expect_err("not text");
        assert!(e.to_string().contains("not printable ASCII"), "{e}");
    }

    fn header_name() -> impl Strategy<Value = String> {
        prop_oneof![
            Just(TIMESTAMP_HEADER.to_string()),
            Just(SIGNATURE_HEADER.to_string()),
            Just(DELIVERY_HEADER.to_string()),
            Just(GITHUB_SIGNATURE_HEADER.to_string()),
            Just(GITHUB_DELIVERY_HEADER.to_string()),
            "[a-z][a-z0-9-]{0,20}",
        ]
    }

    fn header_value() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            any::<Vec<u8>>(),
            "sha256=[0-9a-fA-F]{0,70}".prop_map(String::into_bytes),
            "[0-9]{0,25}".prop_map(String::into_bytes),
            "sha256=.{0,80}".prop_map(String::into_bytes),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        /// Whatever arrives, verification answers: never a panic, and a refusal always names
        /// a header and says why.
        #[test]
        fn arbitrary_requests_never_panic_and_refusals_have_reasons(
            pairs in proptest::collection::vec((header_name(), header_value()), 0..6),
            body in any::<Vec<u8>>(),
            secret in ".{0,40}",
            now in any::<i64>(),
            github in any::<bool>(),
        ) {
            let mut h = HeaderMap::new();
            for (k, v) in &pairs {
                if let (Ok(k), Ok(v)) = (HeaderName::from_bytes(k.as_bytes()), HeaderValue::from_bytes(v)) {
                    h.append(k, v);
                }
            }
            let scheme = if github { Scheme::GitHub } else { Scheme::Personas };
            if let Err(e) = verify(scheme, &secret, &h, &body, now) {
                prop_assert!(!e.code().is_empty());
                prop_assert!(e.to_string().len() > 20, "{e}");
                prop_assert!(e.header().starts_with("x-"));
            }
        }

        /// A correctly signed request verifies, and any change to its body is refused.
        #[test]
        fn signed_requests_verify_and_any_tampering_is_refused(
            body in any::<Vec<u8>>(),
            secret in ".{1,40}",
            skew in -WINDOW_SECS..=WINDOW_SECS,
            flip in any::<prop::sample::Index>(),
        ) {
            let h = headers(&signed_headers(&secret, NOW + skew, &body));
            prop_assert!(verify(Scheme::Personas, &secret, &h, &body, NOW).is_ok());
            let mut other = body.clone();
            if other.is_empty() {
                other.push(0);
            } else {
                let i = flip.index(other.len());
                other[i] ^= 1;
            }
            let e = verify(Scheme::Personas, &secret, &h, &other, NOW);
            prop_assert_eq!(e.map_err(|e| e.code()), Err("bad_signature"));
        }
    }
}
