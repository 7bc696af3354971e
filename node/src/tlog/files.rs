//! TLog file names: `NNN.tlog` (being written or sealed), `NNN.tlx` (snappy archive),
//! `NNN.tlf` (bzip2 archive), `NNN.tlc` (legacy archive); at least three digits. Anything else in
//! the directory, `.part` files of an unfinished compression included, is not part of the log.

use std::fmt;

/// How a TLog file's entries are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FileKind {
    /// Plain entries.
    Tlog,
    /// Snappy chunks.
    Tlx,
    /// bzip2.
    Tlf,
    /// The legacy compressed format.
    Tlc,
}

impl FileKind {
    pub fn extension(self) -> &'static str {
        match self {
            FileKind::Tlog => "tlog",
            FileKind::Tlx => "tlx",
            FileKind::Tlf => "tlf",
            FileKind::Tlc => "tlc",
        }
    }

    pub fn is_archive(self) -> bool {
        self != FileKind::Tlog
    }
}

/// A parsed TLog file name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct TlogFile {
    pub number: u64,
    pub kind: FileKind,
}

impl TlogFile {
    pub fn new(number: u64, kind: FileKind) -> TlogFile {
        TlogFile { number, kind }
    }

    /// Parses `NNN.ext`; `None` for anything that is not a TLog file.
    pub fn parse(name: &str) -> Option<TlogFile> {
        let (stem, ext) = name.rsplit_once('.')?;
        let kind = match ext {
            "tlog" => FileKind::Tlog,
            "tlx" => FileKind::Tlx,
            "tlf" => FileKind::Tlf,
            "tlc" => FileKind::Tlc,
            _ => return None,
        };
        if stem.len() < 3 || stem.len() > 19 || !stem.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some(TlogFile { number: stem.parse().ok()?, kind })
    }

    pub fn name(&self) -> String {
        format!("{:03}.{}", self.number, self.kind.extension())
    }

    pub fn with_kind(&self, kind: FileKind) -> TlogFile {
        TlogFile { number: self.number, kind }
    }
}

impl fmt::Display for TlogFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_print() {
        assert_eq!(TlogFile::parse("007.tlog"), Some(TlogFile::new(7, FileKind::Tlog)));
        assert_eq!(TlogFile::parse("1234.tlx"), Some(TlogFile::new(1234, FileKind::Tlx)));
        assert_eq!(TlogFile::new(3, FileKind::Tlf).name(), "003.tlf");
        for bad in ["07.tlog", "abc.tlog", "001.tlog.part", "001.txt", "head.db", ".tlog"] {
            assert_eq!(TlogFile::parse(bad), None, "{bad}");
        }
    }
}
