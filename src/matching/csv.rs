//! A small CSV reader: RFC 4180 records from a stream, each with the line it starts on.
//!
//! Written here rather than taken from the `csv` crate because import errors must name the
//! right line, and that crate does not count the blank lines it skips. It is strict where
//! leniency would silently change a value: a quote inside an unquoted field, or anything but a
//! comma after a closing quote, makes the record bad instead of being read some other way.
//! Blank lines are skipped (and counted).

use std::io::{self, BufRead};

/// A quoted field may span lines; past this size a closing quote is taken to be missing.
pub const MAX_RECORD_BYTES: usize = 64 * 1024;

/// One record: the line it starts on, and its fields or what is wrong with its quoting.
pub type Record = (u64, Result<Vec<Vec<u8>>, String>);

#[derive(Debug, thiserror::Error)]
pub enum CsvError {
    #[error(transparent)]
    Read(#[from] io::Error),
    #[error("line {0}: a quoted field runs on for more than {MAX_RECORD_BYTES} bytes; is its closing quote missing?")]
    Unterminated(u64),
}

pub struct CsvReader<R: BufRead> {
    reader: R,
    line: u64,
    buffer: Vec<u8>,
}

impl<R: BufRead> CsvReader<R> {
    pub fn new(reader: R) -> CsvReader<R> {
        CsvReader {
            reader,
            line: 0,
            buffer: Vec::new(),
        }
    }

    /// Reads the next line into the buffer without its line ending; false at the end.
    fn read_line(&mut self) -> io::Result<bool> {
        self.buffer.clear();
        if self.reader.read_until(b'\n', &mut self.buffer)? == 0 {
            return Ok(false);
        }
        self.line += 1;
        if self.buffer.last() == Some(&b'\n') {
            self.buffer.pop();
        }
        if self.buffer.last() == Some(&b'\r') {
            self.buffer.pop();
        }
        Ok(true)
    }

    /// The next record, or `None` at the end of the stream.
    pub fn next_record(&mut self) -> Result<Option<Record>, CsvError> {
        loop {
            if !self.read_line()? {
                return Ok(None);
            }
            if !self.buffer.iter().all(u8::is_ascii_whitespace) {
                break;
            }
        }
        let start = self.line;
        let mut fields = Vec::new();
        let mut pos = 0;
        loop {
            let (field, at) = if self.buffer.get(pos) == Some(&b'"') {
                match self.quoted(pos + 1, start)? {
                    Ok(read) => read,
                    Err(problem) => return Ok(Some((start, Err(problem)))),
                }
            } else {
                let end = self.buffer[pos..]
                    .iter()
                    .position(|&b| b == b',')
                    .map_or(self.buffer.len(), |offset| pos + offset);
                let field = self.buffer[pos..end].to_vec();
                if field.contains(&b'"') {
                    return Ok(Some((
                        start,
                        Err("has a quote inside an unquoted field; quote the whole field and double the quote (\"\")".into()),
                    )));
                }
                (field, end)
            };
            fields.push(field);
            match self.buffer.get(at) {
                None => return Ok(Some((start, Ok(fields)))),
                Some(b',') => pos = at + 1,
                Some(_) => {
                    return Ok(Some((
                        start,
                        Err("has something after a closing quote; inside a quoted field, write a quote as \"\"".into()),
                    )))
                }
            }
        }
    }

    /// Reads a quoted field whose content starts at `pos`, across lines if need be; returns
    /// it and the position just after its closing quote.
    fn quoted(
        &mut self,
        mut pos: usize,
        start: u64,
    ) -> Result<Result<(Vec<u8>, usize), String>, CsvError> {
        let mut field = Vec::new();
        loop {
            match self.buffer[pos..].iter().position(|&b| b == b'"') {
                Some(offset) => {
                    let quote = pos + offset;
                    field.extend_from_slice(&self.buffer[pos..quote]);
                    if self.buffer.get(quote + 1) == Some(&b'"') {
                        field.push(b'"');
                        pos = quote + 2;
                    } else {
                        return Ok(Ok((field, quote + 1)));
                    }
                }
                None => {
                    field.extend_from_slice(&self.buffer[pos..]);
                    field.push(b'\n');
                    if field.len() > MAX_RECORD_BYTES {
                        return Err(CsvError::Unterminated(start));
                    }
                    if !self.read_line()? {
                        return Ok(Err("opens a quoted field that is never closed".to_owned()));
                    }
                    pos = 0;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Read = (u64, Result<Vec<String>, String>);

    fn records(text: &str) -> Vec<Read> {
        let mut reader = CsvReader::new(text.as_bytes());
        let mut records = Vec::new();
        while let Some((line, record)) = reader.next_record().expect("readable") {
            let record = record.map(|fields| {
                fields
                    .into_iter()
                    .map(|f| String::from_utf8(f).expect("UTF-8"))
                    .collect()
            });
            records.push((line, record));
        }
        records
    }

    fn ok(line: u64, fields: &[&str]) -> Read {
        (line, Ok(fields.iter().map(|f| (*f).to_owned()).collect()))
    }

    #[test]
    fn reads_rfc_4180() {
        let cases: &[(&str, Vec<Read>)] = &[
            ("a,b,c\n", vec![ok(1, &["a", "b", "c"])]),
            ("a,b,c", vec![ok(1, &["a", "b", "c"])]),
            ("a,,\r\n", vec![ok(1, &["a", "", ""])]),
            (",\n", vec![ok(1, &["", ""])]),
            ("\"a,b\",c\n", vec![ok(1, &["a,b", "c"])]),
            ("\"say \"\"hi\"\"\",x\n", vec![ok(1, &["say \"hi\"", "x"])]),
            ("\"\",x\n", vec![ok(1, &["", "x"])]),
            (
                "\"two\nlines\",x\ny\n",
                vec![ok(1, &["two\nlines", "x"]), ok(3, &["y"])],
            ),
            ("\"a\r\nb\"\n", vec![ok(1, &["a\nb"])]),
            ("\n\r\n  \na\n\nb\n", vec![ok(4, &["a"]), ok(6, &["b"])]),
            (" a , b \n", vec![ok(1, &[" a ", " b "])]),
            ("王芳,\"李,娜\"\n", vec![ok(1, &["王芳", "李,娜"])]),
        ];
        for (text, expected) in cases {
            assert_eq!(&records(text), expected, "{text:?}");
        }
    }

    #[test]
    fn refuses_broken_quoting_by_the_line_it_starts_on() {
        let bad = |text: &str| -> Vec<(u64, bool)> {
            records(text)
                .into_iter()
                .map(|(line, r)| (line, r.is_ok()))
                .collect()
        };
        assert_eq!(bad("a\"b,c\nd\n"), [(1, false), (2, true)]);
        assert_eq!(bad("\"a\"b,c\nd\n"), [(1, false), (2, true)]);
        assert_eq!(bad("x\n\"never closed,\nmore\n"), [(1, true), (2, false)]);
    }

    #[test]
    fn a_runaway_quoted_field_stops_the_read() {
        let text = format!("\"{}", "x\n".repeat(MAX_RECORD_BYTES));
        let mut reader = CsvReader::new(text.as_bytes());
        assert!(matches!(
            reader.next_record(),
            Err(CsvError::Unterminated(1))
        ));
    }
}
