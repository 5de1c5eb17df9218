//! Reading newline-delimited lines with a bound on their length, so that a client cannot make
//! the daemon buffer an endless line.

use std::io;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    /// A whole line, without its newline.
    Complete(Vec<u8>),
    /// The last line, ended by the end of input rather than a newline: its sender closed its
    /// sending side right after it (`printf '{"op":"status"}' | socat - UNIX:...`), or went
    /// away while writing it. Only the reader's owner can tell which.
    Unterminated(Vec<u8>),
    /// The line grew past the limit. What was read of it is dropped, and the rest of it up to
    /// the next newline is skipped, so that the next line is read normally.
    TooLarge,
}

pub struct LineReader<R> {
    inner: BufReader<R>,
    line: Vec<u8>,
    limit: usize,
    /// Inside a too-large line whose end has not arrived yet.
    skipping: bool,
}

impl<R: AsyncRead + Unpin> LineReader<R> {
    pub fn new(inner: R, limit: usize) -> LineReader<R> {
        LineReader {
            inner: BufReader::new(inner),
            line: Vec::new(),
            limit,
            skipping: false,
        }
    }

    /// The next line, or `None` at end of input. A last line that the end of input ends
    /// instead of a newline is [`Line::Unterminated`], within the same limit.
    ///
    /// Cancel-safe: all progress lives in `self` and is recorded before each await, so a
    /// caller may race this against other futures in `select!`.
    pub async fn next(&mut self) -> io::Result<Option<Line>> {
        loop {
            let available = self.inner.fill_buf().await?;
            if available.is_empty() {
                // A too-large last line was reported already, and what was read of it dropped.
                self.skipping = false;
                if self.line.is_empty() {
                    return Ok(None);
                }
                return Ok(Some(Line::Unterminated(std::mem::take(&mut self.line))));
            }
            let newline = available.iter().position(|&b| b == b'\n');
            let part = &available[..newline.unwrap_or(available.len())];
            let used = part.len() + usize::from(newline.is_some());
            if self.skipping {
                self.skipping = newline.is_none();
                self.inner.consume(used);
                continue;
            }
            if self.line.len() + part.len() > self.limit {
                self.line.clear();
                self.skipping = newline.is_none();
                self.inner.consume(used);
                return Ok(Some(Line::TooLarge));
            }
            self.line.extend_from_slice(part);
            self.inner.consume(used);
            if newline.is_some() {
                return Ok(Some(Line::Complete(std::mem::take(&mut self.line))));
            }
        }
    }

    /// What the lines are read from.
    pub fn get_ref(&self) -> &R {
        self.inner.get_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    async fn read_all(input: &[u8], limit: usize) -> Vec<Line> {
        let mut reader = LineReader::new(input, limit);
        let mut lines = Vec::new();
        while let Some(line) = reader.next().await.expect("read") {
            lines.push(line);
        }
        lines
    }

    fn complete(text: &str) -> Line {
        Line::Complete(text.as_bytes().to_vec())
    }

    #[tokio::test]
    async fn splits_lines_and_keeps_a_last_one_ended_by_the_end_of_input() {
        let lines = read_all(b"one\n\ntwo\nlast", 10).await;
        assert_eq!(
            lines,
            vec![
                complete("one"),
                complete(""),
                complete("two"),
                Line::Unterminated(b"last".to_vec())
            ]
        );
        assert_eq!(read_all(b"one\n", 10).await, vec![complete("one")]);
        assert_eq!(read_all(b"", 10).await, vec![]);
    }

    #[tokio::test]
    async fn a_last_line_over_the_limit_is_too_large_even_without_a_newline() {
        let lines = read_all(b"12345\n123456", 5).await;
        assert_eq!(lines, vec![complete("12345"), Line::TooLarge]);
    }

    #[tokio::test]
    async fn a_line_at_the_limit_is_fine_one_byte_more_is_too_large() {
        let lines = read_all(b"12345\n123456\nok\n", 5).await;
        assert_eq!(
            lines,
            vec![complete("12345"), Line::TooLarge, complete("ok")]
        );
    }

    #[tokio::test]
    async fn a_too_large_line_arriving_in_pieces_is_reported_once_and_skipped() {
        let (mut client, server) = tokio::io::duplex(4);
        let writer = tokio::spawn(async move {
            client
                .write_all(b"abcdefghijklmnop\nnext\n")
                .await
                .expect("write");
        });
        let mut reader = LineReader::new(server, 8);
        assert_eq!(reader.next().await.expect("read"), Some(Line::TooLarge));
        assert_eq!(reader.next().await.expect("read"), Some(complete("next")));
        writer.await.expect("writer");
        assert_eq!(reader.next().await.expect("read"), None);
    }
}
