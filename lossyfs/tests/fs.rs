//! The lossy file system itself, through std::fs on a real mount: what a power cut keeps and
//! what it loses, torn tails, failed fsyncs.

use lossyfs::LossyFs;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::Path;

/// Mounts on a fresh directory, or says why it cannot and returns None (the test then skips).
fn mount() -> Option<(tempfile::TempDir, LossyFs)> {
    let tmp = tempfile::tempdir().unwrap();
    match LossyFs::mount(tmp.path()) {
        Ok(fs) => Some((tmp, fs)),
        Err(e) => {
            eprintln!("SKIPPED: cannot mount a FUSE file system here ({e}); needs /dev/fuse and root or fusermount3");
            None
        }
    }
}

fn sync_dir(dir: &Path) {
    File::open(dir).unwrap().sync_all().unwrap();
}

fn append(path: &Path, bytes: &[u8]) -> File {
    let mut f = OpenOptions::new().create(true).append(true).open(path).unwrap();
    f.write_all(bytes).unwrap();
    f
}

#[test]
fn unsynced_data_is_lost_and_synced_data_kept() {
    let Some((tmp, fs)) = mount() else { return };
    let dir = tmp.path();
    let a = dir.join("a");
    append(&a, b"durable").sync_data().unwrap();
    sync_dir(dir);
    let mut f = append(&a, b" lost");
    f.flush().unwrap();
    assert_eq!(fs::read(&a).unwrap(), b"durable lost", "reads see unsynced writes");
    fs::write(dir.join("never-synced"), b"x").unwrap();
    fs.power_cut(None);
    // The crashed process's handle is dead, and so is the file system until the power is back.
    assert!(f.write_all(b"zombie").is_err());
    assert!(fs::read(&a).is_err());
    drop(f);
    fs.power_on();
    assert_eq!(fs::read(&a).unwrap(), b"durable");
    assert!(!dir.join("never-synced").exists(), "a name never synced is gone");
    let s = fs.stats();
    assert_eq!(s.bytes_lost, 5 + 1);
    assert_eq!(s.power_cuts, 1);
    fs.unmount().unwrap();
}

#[test]
fn a_synced_file_without_a_synced_directory_is_gone() {
    let Some((tmp, fs)) = mount() else { return };
    let dir = tmp.path();
    append(&dir.join("f"), b"data").sync_all().unwrap();
    fs.power_cut(None);
    fs.power_on();
    assert!(!dir.join("f").exists(), "strict: the file's own fsync does not make its name durable");
}

#[test]
fn a_rename_is_not_durable_until_the_directory_is_synced() {
    let Some((tmp, fs)) = mount() else { return };
    let dir = tmp.path();
    append(&dir.join("old"), b"one").sync_all().unwrap();
    sync_dir(dir);
    fs::rename(dir.join("old"), dir.join("new")).unwrap();
    fs.power_cut(None);
    fs.power_on();
    assert_eq!(fs::read(dir.join("old")).unwrap(), b"one", "the rename was undone");
    assert!(!dir.join("new").exists());
    fs::rename(dir.join("old"), dir.join("new")).unwrap();
    sync_dir(dir);
    fs::remove_file(dir.join("new")).unwrap();
    fs.power_cut(None);
    fs.power_on();
    assert_eq!(fs::read(dir.join("new")).unwrap(), b"one", "an unsynced unlink is undone");
    assert!(!dir.join("old").exists(), "the synced rename stays");
    // A subdirectory's entries hang on the parent's sync too.
    fs::create_dir(dir.join("sub")).unwrap();
    append(&dir.join("sub/x"), b"x").sync_all().unwrap();
    sync_dir(&dir.join("sub"));
    fs.power_cut(None);
    fs.power_on();
    assert!(!dir.join("sub").exists());
    fs::create_dir(dir.join("sub")).unwrap();
    append(&dir.join("sub/x"), b"x").sync_all().unwrap();
    sync_dir(&dir.join("sub"));
    sync_dir(dir);
    fs.power_cut(None);
    fs.power_on();
    assert_eq!(fs::read(dir.join("sub/x")).unwrap(), b"x");
}

#[test]
fn a_torn_tail_is_a_prefix_of_the_unsynced_writes() {
    let Some((tmp, fs)) = mount() else { return };
    let dir = tmp.path();
    let path = dir.join("log");
    let mut seen_partial = false;
    let mut seen_lengths = std::collections::BTreeSet::new();
    for seed in 0..40u64 {
        // A durable prefix, then unsynced appends of distinct bytes.
        let f = File::create(&path).unwrap();
        drop(f);
        let f = append(&path, b"SYNCED:");
        f.sync_data().unwrap();
        sync_dir(dir);
        let mut unsynced = Vec::new();
        let mut f = append(&path, b"");
        for i in 0..5u8 {
            let chunk: Vec<u8> = (0..100u8).map(|b| b'a' + (i * 7 + b) % 26).collect();
            f.write_all(&chunk).unwrap();
            unsynced.extend_from_slice(&chunk);
        }
        fs.power_cut(Some(seed));
        drop(f);
        fs.power_on();
        let got = fs::read(&path).unwrap();
        assert!(got.starts_with(b"SYNCED:"), "seed {seed}: the synced bytes stay");
        let tail = &got[7..];
        assert!(tail.len() <= unsynced.len());
        assert_eq!(tail, &unsynced[..tail.len()], "seed {seed}: the kept tail is a prefix");
        seen_partial |= tail.len() % 100 != 0;
        seen_lengths.insert(tail.len());
    }
    assert!(seen_partial, "some seed cut a write short");
    assert!(seen_lengths.len() > 5, "the seeds kept different tails: {seen_lengths:?}");
    // The same seed tears the same way.
    let run = |seed| {
        fs::write(&path, b"").unwrap();
        let mut f = append(&path, b"");
        f.write_all(&[7u8; 1000]).unwrap();
        f.write_all(&[8u8; 1000]).unwrap();
        fs.power_cut(Some(seed));
        drop(f);
        fs.power_on();
        fs::read(&path).unwrap().len()
    };
    assert_eq!(run(99), run(99));
}

#[test]
fn a_failed_fsync_is_reported_and_its_writes_never_become_durable() {
    let Some((tmp, fs)) = mount() else { return };
    let dir = tmp.path();
    let path = dir.join("f");
    let f = append(&path, b"base");
    f.sync_data().unwrap();
    sync_dir(dir);
    let mut f = append(&path, b"+lost");
    fs.fail_next_fsync();
    let err = f.sync_data().expect_err("the armed fsync fails");
    assert_eq!(err.raw_os_error(), Some(libc::EIO));
    assert!(!fs.fsync_failure_armed());
    // The page cache still has them, and a later fsync succeeds without them (as Linux does).
    assert_eq!(fs::read(&path).unwrap(), b"base+lost");
    f.write_all(b"+kept").unwrap();
    f.sync_data().unwrap();
    fs.power_cut(None);
    drop(f);
    fs.power_on();
    let mut got = Vec::new();
    File::open(&path).unwrap().read_to_end(&mut got).unwrap();
    assert_eq!(got, b"base\0\0\0\0\0+kept", "only the writes after the failure reached the disk");
    // A failed directory fsync leaves the directory as it was.
    fs::write(dir.join("g"), b"").unwrap();
    fs.fail_next_fsync();
    assert!(File::open(dir).unwrap().sync_all().is_err());
    fs.power_cut(None);
    fs.power_on();
    assert!(!dir.join("g").exists());
    assert_eq!(fs.stats().failed_fsyncs, 2);
}

#[test]
fn truncation_and_overwrites_are_undone_too() {
    let Some((tmp, fs)) = mount() else { return };
    let dir = tmp.path();
    let path = dir.join("f");
    fs::write(&path, b"0123456789").unwrap();
    File::open(&path).unwrap().sync_all().unwrap();
    sync_dir(dir);
    let f = OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(3).unwrap();
    use std::os::unix::fs::FileExt;
    f.write_at(b"XY", 5).unwrap();
    assert_eq!(fs::read(&path).unwrap(), b"012\0\0XY");
    fs.power_cut(None);
    drop(f);
    fs.power_on();
    assert_eq!(fs::read(&path).unwrap(), b"0123456789");
}

#[test]
fn a_flipped_bit_reads_back_flipped_and_survives_a_power_cut() {
    let Some((tmp, fs)) = mount() else { return };
    let dir = tmp.path();
    fs::create_dir(dir.join("sub")).unwrap();
    sync_dir(dir);
    let path = dir.join("sub/f");
    append(&path, b"0123456789").sync_all().unwrap();
    sync_dir(&dir.join("sub"));
    // An unsynced write after the flipped byte stays unsynced; the flip is on the disk.
    let f = append(&path, b"tail");
    fs.flip_bit(Path::new("sub/f"), 2, 0).unwrap();
    assert_eq!(fs::read(&path).unwrap(), b"0133456789tail", "'2' ^ 1 is '3'");
    fs.power_cut(None);
    drop(f);
    fs.power_on();
    assert_eq!(fs::read(&path).unwrap(), b"0133456789", "the flip is at rest");
    // Only durable bytes rot, of an existing file.
    assert!(fs.flip_bit(Path::new("sub/f"), 10, 0).is_err());
    assert!(fs.flip_bit(Path::new("sub/none"), 0, 0).is_err());
    assert!(fs.flip_bit(Path::new("sub/f"), 0, 8).is_err());
    // The seeded flip: the same seed strikes the same bit; the file filter holds.
    append(&dir.join("sub/g"), &[0u8; 64]).sync_all().unwrap();
    append(&dir.join("h"), &[0u8; 64]).sync_all().unwrap();
    sync_dir(&dir.join("sub"));
    sync_dir(dir);
    let before = fs::read(dir.join("sub/g")).unwrap();
    let mut seen = std::collections::BTreeSet::new();
    for seed in 0..20u64 {
        let only_g = |p: &Path| p.ends_with("g");
        let flip = fs.flip_random_bit(Path::new("sub"), seed, only_g).unwrap().expect("g is there");
        assert_eq!(flip.path, Path::new("sub/g"), "seed {seed}");
        assert_eq!(flip.file_bytes, 64);
        let after = fs::read(dir.join("sub/g")).unwrap();
        let diff: Vec<usize> = (0..64).filter(|&k| after[k] != before[k]).collect();
        assert_eq!(diff, [flip.offset as usize], "seed {seed}: one byte changed");
        assert_eq!(after[diff[0]] ^ before[diff[0]], 1 << flip.bit, "seed {seed}: one bit");
        // Flipped back by the same seed.
        assert_eq!(fs.flip_random_bit(Path::new("sub"), seed, only_g).unwrap(), Some(flip.clone()));
        assert_eq!(fs::read(dir.join("sub/g")).unwrap(), before, "seed {seed}");
        seen.insert((flip.offset, flip.bit));
    }
    assert!(seen.len() > 10, "the seeds strike different bits: {seen:?}");
    assert_eq!(fs.flip_random_bit(Path::new("sub"), 0, |_| false).unwrap(), None);
    let everywhere = fs.flip_random_bit(Path::new(""), 3, |_| true).unwrap().unwrap();
    assert!(["h", "sub/f", "sub/g"].iter().any(|p| everywhere.path == Path::new(p)));
    assert_eq!(fs.stats().bits_flipped, 1 + 40 + 1);
}

/// A listing read in pages while names are added in front of the reader's position lists no
/// name twice (a collapse once removed a TLog file twice: `1000.tlog` sorts before `769.tlog`).
#[test]
fn a_directory_listed_while_files_are_made_lists_no_name_twice() {
    let Some((tmp, _fs)) = mount() else { return };
    let dir = tmp.path();
    for k in 500..900 {
        fs::write(dir.join(format!("{k}.tlog")), b"").unwrap();
    }
    let mut seen = std::collections::BTreeSet::new();
    for (made, entry) in (1000..).zip(fs::read_dir(dir).unwrap()) {
        let name = entry.unwrap().file_name();
        assert!(seen.insert(name.clone()), "{name:?} listed twice");
        fs::write(dir.join(format!("{made}.tlog")), b"").unwrap();
    }
    assert!(seen.len() >= 400, "{} names", seen.len());
}
