//! The API token and request checks.
//!
//! The token lives in `<data dir>/api-token`, readable only by the user. Local tools (the
//! `personas` CLI, the UI opened by `personas up`) read it from there; anything else on the
//! machine — a web page in a browser included — has to present it.

use std::io::Write;
use std::path::{Path, PathBuf};

pub const TOKEN_FILE: &str = "api-token";

pub fn token_path(data_dir: &Path) -> PathBuf {
    data_dir.join(TOKEN_FILE)
}

/// Reads the data dir's API token, creating it (32 random bytes, hex) on first use.
pub fn load_or_create_token(data_dir: &Path) -> std::io::Result<String> {
    let path = token_path(data_dir);
    match std::fs::read_to_string(&path) {
        Ok(t) if t.trim().len() >= 32 => return Ok(t.trim().to_string()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    personas_store::files::create_private_dir(data_dir)?;
    let token: String = (0..32)
        .map(|_| format!("{:02x}", rand::random::<u8>()))
        .collect();
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(&path)?;
    f.write_all(token.as_bytes())?;
    f.sync_all()?;
    Ok(token)
}

/// Reads an existing token (for clients); `None` when there is none.
pub fn read_token(data_dir: &Path) -> Option<String> {
    std::fs::read_to_string(token_path(data_dir))
        .ok()
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
}

/// The token of an `Authorization: Bearer <token>` value. The scheme is case-insensitive
/// (RFC 9110 §11.1), so `bearer` and `BEARER` are accepted too; one or more spaces follow it.
pub fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, rest) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = rest.trim_start_matches(' ');
    (!token.is_empty()).then_some(token)
}

/// Compares in time independent of where the strings differ.
pub fn token_matches(expected: &str, given: &str) -> bool {
    let (a, b) = (expected.as_bytes(), given.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// True when a Host header names this loopback server: `localhost`, `127.0.0.1` or `[::1]`,
/// with our port. Anything else is a DNS-rebinding attempt or a misdirected request.
pub fn host_allowed(host: &str, port: u16) -> bool {
    let (name, port_text) = if let Some(rest) = host.strip_prefix('[') {
        // IPv6 literal: "[::1]" or "[::1]:9420".
        match rest.split_once(']') {
            Some((addr, tail)) => (&host[..addr.len() + 2], tail.strip_prefix(':')),
            None => return false,
        }
    } else {
        match host.rsplit_once(':') {
            Some((n, p)) => (n, Some(p)),
            None => (host, None),
        }
    };
    let port_ok = match port_text {
        None => true,
        Some(p) => p.parse::<u16>() == Ok(port),
    };
    matches!(name, "localhost" | "127.0.0.1" | "[::1]") && port_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_is_created_once_and_private() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = load_or_create_token(dir.path()).expect("create");
        let b = load_or_create_token(dir.path()).expect("reload");
        assert_eq!(a, b);
        assert_eq!(a.len(), 64);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(token_path(dir.path()))
                .expect("meta")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn hosts() {
        assert!(host_allowed("127.0.0.1:9420", 9420));
        assert!(host_allowed("localhost:9420", 9420));
        assert!(host_allowed("[::1]:9420", 9420));
        assert!(!host_allowed("evil.example:9420", 9420));
        assert!(!host_allowed("127.0.0.1:80", 9420));
        assert!(!host_allowed("127.0.0.1.evil.example:9420", 9420));
        assert!(host_allowed("[::1]", 9420));
        assert!(!host_allowed("[::2]:9420", 9420));
    }

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer abc"), Some("abc"));
        assert_eq!(bearer_token("BEARER  abc"), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearerabc"), None);
        assert_eq!(bearer_token("Bearer "), None);
    }

    #[test]
    fn token_comparison() {
        assert!(token_matches("abc", "abc"));
        assert!(!token_matches("abc", "abd"));
        assert!(!token_matches("abc", "ab"));
    }
}
