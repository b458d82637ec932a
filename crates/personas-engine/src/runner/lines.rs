//! Newline framing with a size cap: a line longer than the cap is skipped up to its newline and
//! reported by its length, so one runaway line can neither exhaust memory nor desynchronise the
//! stream.

use tokio::io::{AsyncBufRead, AsyncBufReadExt};

#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// A complete line without its `\n` (and without a trailing `\r`).
    Line(Vec<u8>),
    /// A line over the cap: its total length in bytes; its content was discarded.
    Oversize(usize),
}

pub struct LineReader<R> {
    inner: R,
    cap: usize,
    /// The line read so far. Kept across calls: `next` is used in `select!`, which drops it
    /// whenever another branch wins, and a line split over two pipe writes must survive that.
    buf: Vec<u8>,
    /// Length so far of a line over the cap (its bytes are not kept).
    oversize: Option<usize>,
}

impl<R: AsyncBufRead + Unpin> LineReader<R> {
    pub fn new(inner: R, cap: usize) -> Self {
        Self {
            inner,
            cap,
            buf: Vec::new(),
            oversize: None,
        }
    }

    /// The next frame, or `None` at end of stream. A final line without `\n` is still returned.
    /// Cancel-safe: dropping the future mid-line loses nothing; the next call continues it.
    pub async fn next(&mut self) -> std::io::Result<Option<Frame>> {
        loop {
            let available = self.inner.fill_buf().await?;
            if available.is_empty() {
                return Ok(match self.oversize.take() {
                    Some(n) => Some(Frame::Oversize(n)),
                    None if self.buf.is_empty() => None,
                    None => Some(Frame::Line(trim_cr(std::mem::take(&mut self.buf)))),
                });
            }
            let (chunk, done) = match memchr::memchr(b'\n', available) {
                Some(i) => (&available[..i], Some(i + 1)),
                None => (available, None),
            };
            match &mut self.oversize {
                Some(n) => *n += chunk.len(),
                None if self.buf.len() + chunk.len() > self.cap => {
                    self.oversize = Some(self.buf.len() + chunk.len());
                    self.buf.clear();
                }
                None => self.buf.extend_from_slice(chunk),
            }
            let consumed = done.unwrap_or(available.len());
            self.inner.consume(consumed);
            if done.is_some() {
                return Ok(Some(match self.oversize.take() {
                    Some(n) => Frame::Oversize(n),
                    None => Frame::Line(trim_cr(std::mem::take(&mut self.buf))),
                }));
            }
        }
    }
}

fn trim_cr(mut v: Vec<u8>) -> Vec<u8> {
    if v.last() == Some(&b'\r') {
        v.pop();
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::BufReader;

    async fn frames(input: &[u8], cap: usize, chunk: usize) -> Vec<Frame> {
        // A tiny buffer forces lines to span many fill_buf calls.
        let mut r = LineReader::new(BufReader::with_capacity(chunk, input), cap);
        let mut out = Vec::new();
        while let Some(f) = r.next().await.expect("read") {
            out.push(f);
        }
        out
    }

    #[tokio::test]
    async fn splits_lines_and_keeps_a_final_partial_line() {
        for chunk in [1, 3, 64] {
            let f = frames(b"a\r\nbb\n\nccc", 10, chunk).await;
            assert_eq!(
                f,
                vec![
                    Frame::Line(b"a".to_vec()),
                    Frame::Line(b"bb".to_vec()),
                    Frame::Line(vec![]),
                    Frame::Line(b"ccc".to_vec())
                ],
                "chunk {chunk}"
            );
        }
    }

    #[tokio::test]
    async fn oversize_lines_are_measured_and_skipped() {
        for chunk in [1, 4, 64] {
            let f = frames(b"ok\n0123456789abcdef\nnext\n0123456789abc", 8, chunk).await;
            assert_eq!(
                f,
                vec![
                    Frame::Line(b"ok".to_vec()),
                    Frame::Oversize(16),
                    Frame::Line(b"next".to_vec()),
                    Frame::Oversize(13)
                ],
                "chunk {chunk}"
            );
        }
    }

    #[tokio::test]
    async fn a_read_cancelled_mid_line_loses_nothing() {
        use tokio::io::AsyncWriteExt;
        // The CLI's long lines can reach the pipe in two writes; the runner's select! may drop
        // the read between them (e.g. when the process exit is noticed first).
        let (mut tx, rx) = tokio::io::duplex(64);
        let mut r = LineReader::new(BufReader::new(rx), 1024);
        tx.write_all(b"{\"type\":\"res").await.expect("write");
        let cancelled = tokio::time::timeout(std::time::Duration::from_millis(50), r.next()).await;
        assert!(cancelled.is_err(), "no full line yet");
        tx.write_all(b"ult\"}\n").await.expect("write");
        drop(tx);
        assert_eq!(
            r.next().await.expect("read"),
            Some(Frame::Line(b"{\"type\":\"result\"}".to_vec()))
        );
        assert_eq!(r.next().await.expect("read"), None);
    }
}
