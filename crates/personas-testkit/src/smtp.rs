//! [`SmtpSink`]: a small real SMTP server on 127.0.0.1 that records what it receives.
//!
//! It speaks enough ESMTP for a standard client (lettre): `EHLO`/`HELO`, `AUTH PLAIN` (with or
//! without an initial response) and `AUTH LOGIN`, `MAIL FROM`, `RCPT TO`, `DATA` (with dot
//! unstuffing), `RSET`, `NOOP`, `QUIT`. It offers no STARTTLS: clients reach it with
//! `smtp://127.0.0.1:PORT?tls=none`. [`SmtpMode`] makes it refuse mail, temporarily (451) or for
//! good (554), to exercise retries.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

/// How the sink answers `MAIL FROM`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpMode {
    Accept,
    /// `451` (try again later).
    RejectTransient,
    /// `554` (never).
    RejectPermanent,
}

/// One accepted message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMail {
    pub from: String,
    pub to: Vec<String>,
    /// The message as sent after `DATA` (headers and body, CRLF line ends), unstuffed.
    pub data: String,
    /// `(username, password)` when the client authenticated.
    pub auth: Option<(String, String)>,
}

#[derive(Debug)]
struct State {
    mode: SmtpMode,
    mails: Vec<ReceivedMail>,
    /// `MAIL FROM` commands seen, accepted or not.
    attempts: usize,
}

struct Shared {
    state: Mutex<State>,
    count: watch::Sender<usize>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The SMTP sink; serves until dropped.
pub struct SmtpSink {
    shared: Arc<Shared>,
    port: u16,
    server: JoinHandle<()>,
}

impl std::fmt::Debug for SmtpSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpSink")
            .field("port", &self.port)
            .finish()
    }
}

impl SmtpSink {
    /// Binds `127.0.0.1:0` and accepts mail.
    pub async fn start() -> SmtpSink {
        Self::start_with(SmtpMode::Accept).await
    }

    pub async fn start_with(mode: SmtpMode) -> SmtpSink {
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("SmtpSink: cannot bind 127.0.0.1:0");
        let port = listener
            .local_addr()
            .expect("SmtpSink: local address")
            .port();
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                mode,
                mails: Vec::new(),
                attempts: 0,
            }),
            count: watch::Sender::new(0),
        });
        let server = tokio::spawn(accept_loop(listener, Arc::clone(&shared)));
        SmtpSink {
            shared,
            port,
            server,
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL an email channel uses to reach this sink.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}?tls=none", self.port)
    }

    pub fn set_mode(&self, mode: SmtpMode) {
        self.shared.lock().mode = mode;
    }

    /// Messages accepted so far.
    pub fn mails(&self) -> Vec<ReceivedMail> {
        self.shared.lock().mails.clone()
    }

    /// `MAIL FROM` commands received so far (accepted or refused).
    pub fn attempts(&self) -> usize {
        self.shared.lock().attempts
    }

    /// Waits until `n` messages were accepted.
    ///
    /// # Panics
    /// When `timeout` passes first.
    pub async fn wait_for_mails(&self, n: usize, timeout: Duration) -> Vec<ReceivedMail> {
        let mut rx = self.shared.count.subscribe();
        let ok = tokio::time::timeout(timeout, async {
            let _ = rx.wait_for(|c| *c >= n).await;
        })
        .await;
        assert!(
            ok.is_ok(),
            "SmtpSink: expected {n} mails within {timeout:?}, got {} ({} attempts)",
            self.mails().len(),
            self.attempts()
        );
        self.mails()
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => { connections.spawn(session(stream, Arc::clone(&shared))); }
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// Longest command or data line accepted (RFC 5321 allows 1000 with CRLF; be generous).
const MAX_LINE: usize = 64 * 1024;

async fn session(stream: TcpStream, shared: Arc<Shared>) {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    macro_rules! send {
        ($($arg:tt)*) => {{
            let text = format!("{}\r\n", format!($($arg)*));
            if write.write_all(text.as_bytes()).await.is_err() {
                return;
            }
        }};
    }
    send!("220 personas-smtp-sink ESMTP ready");
    let mut from: Option<String> = None;
    let mut to: Vec<String> = Vec::new();
    let mut auth: Option<(String, String)> = None;
    loop {
        let Some(line) = read_line(&mut lines).await else {
            return;
        };
        let upper = line.to_ascii_uppercase();
        if upper.starts_with("EHLO") {
            send!(
                "250-personas-smtp-sink\r\n250-AUTH PLAIN LOGIN\r\n250-8BITMIME\r\n250 SIZE 10485760"
            );
        } else if upper.starts_with("HELO") {
            send!("250 personas-smtp-sink");
        } else if upper.starts_with("AUTH PLAIN") {
            let initial = line[10..].trim().to_string();
            let encoded = if initial.is_empty() {
                send!("334 ");
                match read_line(&mut lines).await {
                    Some(l) => l,
                    None => return,
                }
            } else {
                initial
            };
            let decoded = base64_decode(&encoded).unwrap_or_default();
            let parts: Vec<&[u8]> = decoded.split(|b| *b == 0).collect();
            if parts.len() == 3 {
                auth = Some((
                    String::from_utf8_lossy(parts[1]).into_owned(),
                    String::from_utf8_lossy(parts[2]).into_owned(),
                ));
                send!("235 2.7.0 authenticated");
            } else {
                send!("501 5.5.2 cannot decode AUTH PLAIN");
            }
        } else if upper.starts_with("AUTH LOGIN") {
            send!("334 VXNlcm5hbWU6");
            let Some(user) = read_line(&mut lines).await else {
                return;
            };
            send!("334 UGFzc3dvcmQ6");
            let Some(pass) = read_line(&mut lines).await else {
                return;
            };
            let decode = |s: &str| {
                String::from_utf8_lossy(&base64_decode(s).unwrap_or_default()).into_owned()
            };
            auth = Some((decode(&user), decode(&pass)));
            send!("235 2.7.0 authenticated");
        } else if upper.starts_with("MAIL FROM:") {
            let mode = {
                let mut st = shared.lock();
                st.attempts += 1;
                st.mode
            };
            match mode {
                SmtpMode::Accept => {
                    from = Some(address(&line[10..]));
                    to.clear();
                    send!("250 2.1.0 ok");
                }
                SmtpMode::RejectTransient => send!("451 4.3.0 try again later"),
                SmtpMode::RejectPermanent => send!("554 5.7.1 refused"),
            }
        } else if upper.starts_with("RCPT TO:") {
            if from.is_none() {
                send!("503 5.5.1 MAIL first");
            } else {
                to.push(address(&line[8..]));
                send!("250 2.1.5 ok");
            }
        } else if upper == "DATA" {
            if from.is_none() || to.is_empty() {
                send!("503 5.5.1 MAIL and RCPT first");
                continue;
            }
            send!("354 end with <CRLF>.<CRLF>");
            let mut data = String::new();
            loop {
                let Some(l) = read_line(&mut lines).await else {
                    return;
                };
                if l == "." {
                    break;
                }
                // A client doubles a leading dot (dot stuffing); remove it.
                let l = l.strip_prefix('.').unwrap_or(&l);
                data.push_str(l);
                data.push_str("\r\n");
            }
            let mail = ReceivedMail {
                from: from.take().unwrap_or_default(),
                to: std::mem::take(&mut to),
                data,
                auth: auth.clone(),
            };
            let n = {
                let mut st = shared.lock();
                st.mails.push(mail);
                st.mails.len()
            };
            shared.count.send_replace(n);
            send!("250 2.0.0 queued");
        } else if upper == "RSET" {
            from = None;
            to.clear();
            send!("250 2.0.0 ok");
        } else if upper == "NOOP" {
            send!("250 2.0.0 ok");
        } else if upper == "QUIT" {
            send!("221 2.0.0 bye");
            return;
        } else {
            send!("502 5.5.2 command not implemented");
        }
    }
}

async fn read_line(r: &mut BufReader<tokio::net::tcp::OwnedReadHalf>) -> Option<String> {
    let mut buf = Vec::new();
    let n = r.read_until(b'\n', &mut buf).await.ok()?;
    if n == 0 || buf.len() > MAX_LINE {
        return None;
    }
    while matches!(buf.last(), Some(b'\n' | b'\r')) {
        buf.pop();
    }
    Some(String::from_utf8_lossy(&buf).into_owned())
}

/// `<a@b>` (with optional parameters after it) → `a@b`.
fn address(s: &str) -> String {
    let s = s.trim();
    match (s.find('<'), s.find('>')) {
        (Some(a), Some(b)) if a < b => s[a + 1..b].to_string(),
        _ => s.split_whitespace().next().unwrap_or("").to_string(),
    }
}

/// Standard base64 (RFC 4648), padding optional.
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.trim().bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => break,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_and_addresses() {
        assert_eq!(
            base64_decode("AHVzZXIAcGFzcw==").as_deref(),
            Some(&b"\0user\0pass"[..])
        );
        assert_eq!(
            base64_decode("VXNlcm5hbWU6").as_deref(),
            Some(&b"Username:"[..])
        );
        assert_eq!(base64_decode("!!"), None);
        assert_eq!(address(" <a@example.com> SIZE=12"), "a@example.com");
        assert_eq!(address("b@example.com"), "b@example.com");
    }

    #[tokio::test]
    async fn a_plain_client_conversation_is_recorded() {
        let sink = SmtpSink::start().await;
        let stream = TcpStream::connect(("127.0.0.1", sink.port()))
            .await
            .expect("connect");
        let (r, mut w) = stream.into_split();
        let mut r = BufReader::new(r);
        let mut expect = async |code: &str| {
            loop {
                let mut l = String::new();
                r.read_line(&mut l).await.expect("read");
                assert!(l.starts_with(code), "expected {code}, got {l:?}");
                if l.as_bytes().get(3) != Some(&b'-') {
                    break;
                }
            }
        };
        expect("220").await;
        for (cmd, code) in [
            ("EHLO me", "250"),
            ("AUTH PLAIN AHVzZXIAcGFzcw==", "235"),
            ("MAIL FROM:<a@example.com>", "250"),
            ("RCPT TO:<b@example.com>", "250"),
            ("DATA", "354"),
            ("Subject: hi\r\n\r\n..dotted\r\n.", "250"),
            ("QUIT", "221"),
        ] {
            w.write_all(format!("{cmd}\r\n").as_bytes())
                .await
                .expect("write");
            expect(code).await;
        }
        let mails = sink.wait_for_mails(1, Duration::from_secs(5)).await;
        assert_eq!(mails[0].from, "a@example.com");
        assert_eq!(mails[0].to, vec!["b@example.com".to_string()]);
        assert_eq!(mails[0].data, "Subject: hi\r\n\r\n.dotted\r\n");
        assert_eq!(mails[0].auth, Some(("user".into(), "pass".into())));
    }
}
