//! The ballot record: the consensus state that must survive a crash but is not a log entry.
//!
//! The TLog format has no room for ballots, yet Paxos needs two of them to be durable: the
//! highest ballot promised (so a restarted acceptor cannot accept from an older master) and the
//! ballot under which the log's last entry was accepted (so a new master re-proposes the right
//! value for the one slot that may be undecided). Both live in one small file, `ballot`, beside
//! the TLog files, replaced atomically: write `ballot.part`, fsync, rename, fsync the directory.
//! Its layout: int64 promised | int64 accepted_n | int32 CRC-32C of the 16 bytes before.

use super::dir::LogDir;
use super::error::TlogError;
use crate::llio::{Put, Reader};
use std::io::Read;

/// The file name, beside the TLog files (not a TLog name, so TLog listings ignore it).
pub const BALLOT_FILE: &str = "ballot";

/// The durable ballots.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BallotRecord {
    pub promised: u64,
    pub accepted_n: u64,
}

impl BallotRecord {
    fn to_bytes(self) -> Vec<u8> {
        let mut buf = Vec::with_capacity(20);
        buf.put_i64(self.promised as i64);
        buf.put_i64(self.accepted_n as i64);
        let crc = crc32c::crc32c(&buf);
        buf.put_i32(crc as i32);
        buf
    }

    /// Reads the record; a directory without one holds the zero record.
    pub fn load(dir: &dyn LogDir) -> Result<BallotRecord, TlogError> {
        let path = dir.path_of(BALLOT_FILE);
        let names = dir.list().map_err(|e| TlogError::io(dir.location(), e))?;
        if !names.iter().any(|n| n == BALLOT_FILE) {
            return Ok(BallotRecord::default());
        }
        let mut bytes = Vec::new();
        dir.open_read(BALLOT_FILE)
            .and_then(|r| r.take(64).read_to_end(&mut bytes))
            .map_err(|e| TlogError::io(&path, e))?;
        let bad = |reason: &str| TlogError::BadArchive {
            path: path.clone(),
            offset: 0,
            reason: format!(
                "ballot record {reason}; if the TLog is healthy, remove it and let \
                             the node catch up before it votes again"
            ),
        };
        if bytes.len() != 20 {
            return Err(bad(&format!("has {} bytes, not 20", bytes.len())));
        }
        let mut r = Reader::new(&bytes);
        let (promised, accepted_n) = (r.i64().unwrap_or(0), r.i64().unwrap_or(0));
        let stored = r.i32().unwrap_or(0) as u32;
        if stored != crc32c::crc32c(&bytes[..16]) || promised < 0 || accepted_n < 0 {
            return Err(bad("is damaged (checksum)"));
        }
        Ok(BallotRecord { promised: promised as u64, accepted_n: accepted_n as u64 })
    }

    /// Replaces the record durably.
    pub fn store(self, dir: &dyn LogDir) -> Result<(), TlogError> {
        let part = format!("{BALLOT_FILE}.part");
        let io = |e| TlogError::io(dir.path_of(&part), e);
        let mut f = dir.create(&part).map_err(io)?;
        f.append(&self.to_bytes()).map_err(io)?;
        f.sync_data().map_err(io)?;
        dir.rename(&part, BALLOT_FILE).map_err(io)?;
        dir.sync_dir().map_err(io)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tlog::MemDir;

    #[test]
    fn the_record_survives_a_crash_once_stored() {
        let dir = MemDir::new("b");
        assert_eq!(BallotRecord::load(&dir).unwrap(), BallotRecord::default());
        let r = BallotRecord { promised: 7, accepted_n: 4 };
        r.store(&dir).unwrap();
        dir.crash(|_| 0);
        assert_eq!(BallotRecord::load(&dir).unwrap(), r);
        assert!(dir.flip_bit(BALLOT_FILE, 3, 1));
        assert!(BallotRecord::load(&dir).is_err());
    }
}
