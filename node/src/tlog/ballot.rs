//! The ballot record: the consensus state that must survive a crash but is not a log entry.
//!
//! The TLog format has no room for ballots, yet Paxos needs two of them to be durable: the
//! highest ballot promised (so a restarted acceptor cannot accept from an older master) and the
//! ballot under which the log's last entry was accepted (so a new master re-proposes the right
//! value for the one slot that may be undecided). Both live in one small file, `ballot`, beside
//! the TLog files, replaced atomically: write `ballot.part`, fsync, rename, fsync the directory.
//! Its layout: int64 promised | int64 accepted_n | int64 accepted_from | bool learner | int32
//! CRC-32C of the 25 bytes before.
//!
//! `learner` marks a node rebuilt from a peer after losing its disk: it has forgotten what it
//! accepted and promised, so it must not vote until a master has brought it up to date.
//!
//! `accepted_n` is the ballot of every entry from slot `accepted_from` on: a node accepts slots in
//! order under ballots that only grow, so one pair describes its whole uncommitted tail. The
//! persister writes an entry before the record that mentions it, so a durable record never
//! claims an entry that a crash lost.

use super::dir::LogDir;
use super::error::TlogError;
use crate::llio::{Put, Reader};

/// The file name, beside the TLog files (not a TLog name, so TLog listings ignore it).
pub const BALLOT_FILE: &str = "ballot";
const RECORD_BYTES: usize = 29;

/// The durable ballots.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BallotRecord {
    pub promised: u64,
    pub accepted_n: u64,
    pub accepted_from: u64,
    pub learner: bool,
}

impl BallotRecord {
    fn to_bytes(self) -> Vec<u8> {
        let mut buf = Vec::with_capacity(RECORD_BYTES);
        buf.put_i64(self.promised as i64);
        buf.put_i64(self.accepted_n as i64);
        buf.put_i64(self.accepted_from as i64);
        buf.put_bool(self.learner);
        let crc = crc32c::crc32c(&buf);
        buf.put_i32(crc as i32);
        buf
    }

    /// Reads the record; a directory without one holds the zero record.
    pub fn load(dir: &dyn LogDir) -> Result<BallotRecord, TlogError> {
        // Read at every Promise and Accepted the simulator checks: the path is made only for
        // an error.
        let read = dir.read_small(BALLOT_FILE, 64);
        let Some(bytes) = read.map_err(|e| TlogError::io(dir.path_of(BALLOT_FILE), e))? else {
            return Ok(BallotRecord::default());
        };
        if bytes.len() != RECORD_BYTES {
            let path = dir.path_of(BALLOT_FILE);
            return Err(TlogError::BallotSize { path, bytes: bytes.len(), expected: RECORD_BYTES });
        }
        let mut r = Reader::new(&bytes);
        let fields = [r.i64().unwrap_or(-1), r.i64().unwrap_or(-1), r.i64().unwrap_or(-1)];
        let learner = r.bool();
        let stored = r.i32().unwrap_or(0) as u32;
        let damaged = stored != crc32c::crc32c(&bytes[..RECORD_BYTES - 4])
            || fields.iter().any(|f| *f < 0)
            || learner.is_err();
        if damaged {
            return Err(TlogError::BallotDamaged { path: dir.path_of(BALLOT_FILE) });
        }
        Ok(BallotRecord {
            promised: fields[0] as u64,
            accepted_n: fields[1] as u64,
            accepted_from: fields[2] as u64,
            learner: learner.unwrap_or(true),
        })
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
        let r = BallotRecord { promised: 7, accepted_n: 4, accepted_from: 12, learner: true };
        r.store(&dir).unwrap();
        dir.crash(|_| 0);
        assert_eq!(BallotRecord::load(&dir).unwrap(), r);
        assert!(dir.flip_bit(BALLOT_FILE, 3, 1));
        assert!(BallotRecord::load(&dir).is_err());
    }
}
