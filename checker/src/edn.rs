//! A reader for the subset of EDN that Jepsen histories use: nil, booleans, integers, strings,
//! keywords, vectors, lists, sets, maps, `;` comments, commas as whitespace, `#_` discards and
//! `#tag` literals (the tag is dropped). Floats and symbols are kept as text.
//!
//! Every top-level form comes with the line it starts on, so that the importers can name the
//! line of a bad entry. Nesting is bounded: a hostile file cannot overflow the stack.

use crate::value::Value;

/// Deeper nesting than any history needs; the reader refuses it rather than recursing on.
const DEPTH_MAX: usize = 64;

/// Where the reader stopped (the line it was on) and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {kind}")]
pub struct EdnError {
    pub line: usize,
    pub kind: EdnErrorKind,
}

/// What the EDN reader could not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EdnErrorKind {
    #[error("nested deeper than {DEPTH_MAX} levels")]
    TooDeep,
    #[error("unexpected end of input")]
    UnexpectedEnd,
    /// A closing bracket with nothing open, or a byte no form starts with.
    #[error("unexpected '{0}'")]
    Unexpected(char),
    /// A `[`, `(`, `{` or `#{` (`open`) that the input ends inside of.
    #[error("'{open}' opened on line {line} is never closed")]
    NeverClosed { open: char, line: usize },
    #[error("string opened on line {line} never ends")]
    StringNeverEnds { line: usize },
    #[error("a ':' without a keyword name")]
    KeywordWithoutName,
    #[error("a '#' without a tag")]
    HashWithoutTag,
    #[error("a map with an odd number of forms")]
    OddMap,
    /// An integer literal (`word`, as written) beyond `i64`.
    #[error("integer {word} does not fit 64 bits")]
    IntegerTooBig { word: String },
    #[error("a bad \\u escape")]
    BadUnicodeEscape,
    #[error("a string that is not UTF-8")]
    StringNotUtf8,
    /// [`read_one`] found `found` forms where one was expected.
    #[error("expected one value, found {found}")]
    NotOneValue { found: usize },
}

/// Every top-level form of `text`, each with its 1-based starting line.
pub fn read_all(text: &str) -> Result<Vec<(usize, Value)>, EdnError> {
    let mut reader = Reader { bytes: text.as_bytes(), pos: 0, line: 1 };
    let mut forms = Vec::new();
    loop {
        reader.skip_blank();
        if reader.pos >= reader.bytes.len() {
            return Ok(forms);
        }
        let line = reader.line;
        if let Some(form) = reader.form(0)? {
            forms.push((line, form));
        }
    }
}

/// The entries of a history file: the maps of a top-level vector or list, or a stream of
/// top-level maps (or both), each with the line it starts on.
pub fn read_entries(text: &str) -> Result<Vec<(usize, Value)>, EdnError> {
    let mut reader = Reader { bytes: text.as_bytes(), pos: 0, line: 1 };
    let mut entries = Vec::new();
    // The one level of brackets around the entries, if any: its closing byte and its line.
    let mut outer: Option<(u8, usize)> = None;
    loop {
        reader.skip_blank();
        match (reader.peek(), outer) {
            (None, None) => return Ok(entries),
            (None, Some((close, line))) => {
                return Err(
                    reader.error(EdnErrorKind::NeverClosed { open: close_to_open(close), line })
                )
            }
            (Some(b @ (b'[' | b'(')), None) => {
                outer = Some((if b == b'[' { b']' } else { b')' }, reader.line));
                reader.pos += 1;
            }
            (Some(b), Some((close, _))) if b == close => {
                outer = None;
                reader.pos += 1;
            }
            _ => {
                let line = reader.line;
                if let Some(form) = reader.form(1)? {
                    entries.push((line, form));
                }
            }
        }
    }
}

/// One form, the whole of `text` (used for single values such as a log line's last field).
pub fn read_one(text: &str) -> Result<Value, EdnError> {
    let forms = read_all(text)?;
    match <[_; 1]>::try_from(forms) {
        Ok([(_, value)]) => Ok(value),
        Err(forms) => Err(EdnError {
            line: forms.get(1).map_or(1, |f| f.0),
            kind: EdnErrorKind::NotOneValue { found: forms.len() },
        }),
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    line: usize,
}

fn is_delimiter(b: u8) -> bool {
    b.is_ascii_whitespace()
        || matches!(b, b',' | b'[' | b']' | b'(' | b')' | b'{' | b'}' | b'"' | b';')
}

impl Reader<'_> {
    fn error(&self, kind: EdnErrorKind) -> EdnError {
        EdnError { line: self.line, kind }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn skip_blank(&mut self) {
        while let Some(b) = self.peek() {
            match b {
                b'\n' => {
                    self.line += 1;
                    self.pos += 1;
                }
                b';' => {
                    while self.peek().is_some_and(|b| b != b'\n') {
                        self.pos += 1;
                    }
                }
                b if b.is_ascii_whitespace() || b == b',' => self.pos += 1,
                _ => return,
            }
        }
    }

    /// The next form; `None` for a `#_` discard that consumed one.
    fn form(&mut self, depth: usize) -> Result<Option<Value>, EdnError> {
        if depth > DEPTH_MAX {
            return Err(self.error(EdnErrorKind::TooDeep));
        }
        self.skip_blank();
        let Some(b) = self.peek() else { return Err(self.error(EdnErrorKind::UnexpectedEnd)) };
        let value = match b {
            b'[' | b'(' => {
                self.pos += 1;
                Value::List(self.items(if b == b'[' { b']' } else { b')' }, depth)?)
            }
            b'{' => {
                self.pos += 1;
                self.map(depth)?
            }
            b'"' => Value::Str(self.string()?),
            b':' => {
                self.pos += 1;
                let word = self.word();
                if word.is_empty() {
                    return Err(self.error(EdnErrorKind::KeywordWithoutName));
                }
                Value::Keyword(word)
            }
            b'#' => return self.dispatch(depth),
            b']' | b')' | b'}' => return Err(self.error(EdnErrorKind::Unexpected(b as char))),
            _ => self.atom()?,
        };
        Ok(Some(value))
    }

    fn dispatch(&mut self, depth: usize) -> Result<Option<Value>, EdnError> {
        self.pos += 1;
        match self.peek() {
            Some(b'{') => {
                self.pos += 1;
                Ok(Some(Value::List(self.items(b'}', depth)?)))
            }
            Some(b'_') => {
                self.pos += 1;
                self.form(depth + 1)?;
                Ok(None)
            }
            _ => {
                // A tagged literal such as #inst "..." or #jepsen.history.Op{...}: keep the value.
                let tag = self.word();
                if tag.is_empty() {
                    return Err(self.error(EdnErrorKind::HashWithoutTag));
                }
                self.form(depth + 1)
            }
        }
    }

    fn items(&mut self, close: u8, depth: usize) -> Result<Vec<Value>, EdnError> {
        let start_line = self.line;
        let mut items = Vec::new();
        loop {
            self.skip_blank();
            match self.peek() {
                None => {
                    return Err(self.error(EdnErrorKind::NeverClosed {
                        open: close_to_open(close),
                        line: start_line,
                    }))
                }
                Some(b) if b == close => {
                    self.pos += 1;
                    return Ok(items);
                }
                Some(_) => {
                    if let Some(item) = self.form(depth + 1)? {
                        items.push(item);
                    }
                }
            }
        }
    }

    fn map(&mut self, depth: usize) -> Result<Value, EdnError> {
        let items = self.items(b'}', depth)?;
        if items.len() % 2 != 0 {
            return Err(self.error(EdnErrorKind::OddMap));
        }
        let mut entries = Vec::with_capacity(items.len() / 2);
        let mut it = items.into_iter();
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            entries.push((k, v));
        }
        Ok(Value::Map(entries))
    }

    fn word(&mut self) -> String {
        let start = self.pos;
        while self.peek().is_some_and(|b| !is_delimiter(b)) {
            self.pos += 1;
        }
        String::from_utf8_lossy(&self.bytes[start..self.pos]).into_owned()
    }

    fn atom(&mut self) -> Result<Value, EdnError> {
        let word = self.word();
        if word.is_empty() {
            return Err(self.error(EdnErrorKind::Unexpected(self.peek().unwrap_or(b'?') as char)));
        }
        Ok(match word.as_str() {
            "nil" => Value::Nil,
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => {
                let first = word.as_bytes()[0];
                let numeric = first.is_ascii_digit()
                    || ((first == b'-' || first == b'+')
                        && word.as_bytes().get(1).is_some_and(u8::is_ascii_digit));
                if numeric && word.bytes().skip(1).all(|b| b.is_ascii_digit()) {
                    let n = word.parse::<i64>().map_err(|_| {
                        self.error(EdnErrorKind::IntegerTooBig { word: word.clone() })
                    })?;
                    Value::Int(n)
                } else {
                    Value::Other(word)
                }
            }
        })
    }

    fn string(&mut self) -> Result<String, EdnError> {
        let start_line = self.line;
        self.pos += 1;
        let mut out = Vec::new();
        loop {
            let Some(b) = self.peek() else {
                return Err(self.error(EdnErrorKind::StringNeverEnds { line: start_line }));
            };
            self.pos += 1;
            match b {
                b'"' => break,
                b'\n' => {
                    self.line += 1;
                    out.push(b);
                }
                b'\\' => {
                    let Some(e) = self.peek() else { continue };
                    self.pos += 1;
                    match e {
                        b'n' => out.push(b'\n'),
                        b't' => out.push(b'\t'),
                        b'r' => out.push(b'\r'),
                        b'u' => {
                            let hex = self.bytes.get(self.pos..self.pos + 4).unwrap_or(b"");
                            let code = std::str::from_utf8(hex)
                                .ok()
                                .and_then(|h| u32::from_str_radix(h, 16).ok())
                                .and_then(char::from_u32)
                                .ok_or_else(|| self.error(EdnErrorKind::BadUnicodeEscape))?;
                            self.pos += 4;
                            let mut buf = [0; 4];
                            out.extend_from_slice(code.encode_utf8(&mut buf).as_bytes());
                        }
                        other => out.push(other),
                    }
                }
                _ => out.push(b),
            }
        }
        String::from_utf8(out).map_err(|_| self.error(EdnErrorKind::StringNotUtf8))
    }
}

fn close_to_open(close: u8) -> char {
    match close {
        b']' => '[',
        b')' => '(',
        _ => '{',
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_jepsen_operation_map() {
        let forms = read_all("{:process 7, :type :invoke, :f :cas, :value [2 3]}").unwrap();
        assert_eq!(forms.len(), 1);
        let (line, m) = &forms[0];
        assert_eq!(*line, 1);
        assert_eq!(m.get("process"), Some(&Value::Int(7)));
        assert_eq!(m.get("f"), Some(&Value::Keyword("cas".into())));
        assert_eq!(m.get("value"), Some(&Value::List(vec![Value::Int(2), Value::Int(3)])));
    }

    #[test]
    fn comments_discards_tags_and_lines() {
        let text = "; header\n[{:a 1}\n ; note\n #_ {:b 2}\n #op {:c \"x\\ny\"}\n 1.5 sym]";
        let forms = read_all(text).unwrap();
        assert_eq!(forms.len(), 1);
        assert_eq!(forms[0].0, 2);
        let items = forms[0].1.as_list().unwrap();
        assert_eq!(items.len(), 4);
        assert_eq!(items[1].get("c"), Some(&Value::Str("x\ny".into())));
        assert_eq!(items[2], Value::Other("1.5".into()));
    }

    #[test]
    fn entries_of_a_vector_and_of_a_stream_carry_their_lines() {
        let text = "; c\n[{:a 1}\n {:a 2}]\n{:a 3}\n({:a 4})";
        let entries = read_entries(text).unwrap();
        let lines: Vec<usize> = entries.iter().map(|e| e.0).collect();
        assert_eq!(lines, vec![2, 3, 4, 5]);
        assert_eq!(entries[3].1.get("a"), Some(&Value::Int(4)));
        assert_eq!(read_entries("[{:a 1}\n").unwrap_err().line, 2);
    }

    #[test]
    fn errors_name_the_line() {
        assert_eq!(read_all("[{:a 1}\n{:b }").unwrap_err().line, 2);
        assert_eq!(read_all("{:a 1}\n\n]").unwrap_err().line, 3);
        assert_eq!(read_all("\"open").unwrap_err().kind, EdnErrorKind::StringNeverEnds { line: 1 });
        assert_eq!(
            read_all("99999999999999999999").unwrap_err().to_string(),
            "line 1: integer 99999999999999999999 does not fit 64 bits"
        );
        assert_eq!(
            read_entries("[{:a 1}\n").unwrap_err().kind,
            EdnErrorKind::NeverClosed { open: '[', line: 1 }
        );
        assert_eq!(read_all(r#""\u00zz""#).unwrap_err().to_string(), "line 1: a bad \\u escape");
    }

    #[test]
    fn deep_nesting_is_refused_not_overflowed() {
        let text = "[".repeat(100_000);
        assert_eq!(read_all(&text).unwrap_err().kind, EdnErrorKind::TooDeep);
    }
}
