//! `arakoon-admin tlog ...`: inspect, verify and repair TLog directories.
//!
//! Every command reads `.tlog`, `.tlx` and `.tlf` files alike. `verify` exits with the code the
//! original Arakoon used for the first problem it finds (48 torn tail, 49 checksum or sequence,
//! 50 missing file), so that operators who know those numbers can act on them.

use crate::exit::Exit;
use crate::output::{confirm, escape, progress_bar, say, Failure};
use arakoon_node::tlog::{
    self, archive, validate_with, Entry, FileKind, FsDir, TlogError, TlogFile,
};
use arakoon_node::value::{Update, Value};
use clap::{Args, Subcommand};
use serde_json::json;
use std::path::{Path, PathBuf};

#[derive(Debug, Subcommand)]
pub enum TlogCommand {
    /// List the files of a TLog directory: first and last i, entries, size, archive, marker.
    ///
    /// Example: arakoon-admin tlog list /var/lib/arakoon/n0/tlogs
    List {
        /// The TLog directory.
        dir: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Print the entries of a TLog file or directory.
    ///
    /// Example: arakoon-admin tlog dump /var/lib/arakoon/n0/tlogs --from 1200 --to 1210 --values
    Dump(DumpArgs),
    /// Check every entry: checksums, torn tail, sequence rules, missing files.
    ///
    /// Each problem is reported with its file, offset and i, and the command that repairs it.
    /// Exit code: 0 when clean, else Arakoon's code for the first problem (48 torn tail,
    /// 49 checksum or sequence error, 50 missing file, 43 unreadable directory).
    ///
    /// Example: arakoon-admin tlog verify /var/lib/arakoon/n0/tlogs
    Verify {
        dir: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Cut a torn tail (a write cut short by a crash) off the last file, and nothing else.
    ///
    /// Shows what will be cut and asks first; --yes skips the question. Refuses when the log
    /// has any other problem.
    ///
    /// Example: arakoon-admin tlog truncate /var/lib/arakoon/n0/tlogs/012.tlog
    Truncate {
        /// The torn file (its directory is checked as a whole).
        file: PathBuf,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
    /// Compress sealed .tlog files into .tlx archives (snappy).
    ///
    /// Given a directory, compresses every sealed file (all but the last, which a node appends
    /// to). Given a file, compresses that one.
    ///
    /// Example: arakoon-admin tlog compress /var/lib/arakoon/n0/tlogs
    Compress { path: PathBuf },
    /// Turn .tlx / .tlf archives back into plain .tlog files.
    ///
    /// Example: arakoon-admin tlog uncompress /var/lib/arakoon/n0/tlogs/003.tlx
    Uncompress { path: PathBuf },
}

#[derive(Debug, Args)]
pub struct DumpArgs {
    /// A TLog file or directory.
    path: PathBuf,
    /// Show values, not only keys.
    #[arg(long)]
    values: bool,
    /// First i to show.
    #[arg(long)]
    from: Option<u64>,
    /// Last i to show.
    #[arg(long)]
    to: Option<u64>,
    /// One JSON object per entry.
    #[arg(long)]
    json: bool,
}

pub fn run(cmd: TlogCommand) -> Result<i32, Failure> {
    match cmd {
        TlogCommand::List { dir, json } => list(&dir, json),
        TlogCommand::Dump(args) => dump(&args),
        TlogCommand::Verify { dir, json } => verify(&dir, json),
        TlogCommand::Truncate { file, yes } => truncate(&file, yes),
        TlogCommand::Compress { path } => compress(&path),
        TlogCommand::Uncompress { path } => uncompress(&path),
    }
}

fn open_dir(dir: &Path) -> Result<FsDir, Failure> {
    FsDir::open(dir).map_err(|e| {
        Failure::new(
            Exit::TlogDir,
            format!("{}: cannot open the TLog directory: {e}", dir.display()),
        )
    })
}

/// A directory and, when `path` is a file, that file.
fn dir_and_file(path: &Path) -> Result<(FsDir, Option<TlogFile>), Failure> {
    if path.is_dir() {
        return Ok((open_dir(path)?, None));
    }
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    let file = TlogFile::parse(name).ok_or_else(|| {
        Failure::new(
            Exit::BadInput,
            format!(
                "{}: not a TLog file name (NNN.tlog, NNN.tlx or NNN.tlf) nor a directory",
                path.display()
            ),
        )
    })?;
    if !path.exists() {
        return Err(Failure::new(Exit::TlogDir, format!("{}: no such file", path.display())));
    }
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    Ok((open_dir(parent)?, Some(file)))
}

fn tlog_failure(e: TlogError) -> Failure {
    Failure::new(e.exit_code(), format!("{e}\n  repair: {}", e.repair()))
}

fn list(dir: &Path, json: bool) -> Result<i32, Failure> {
    let d = open_dir(dir)?;
    let validation = validate_with(&d, &mut |_, _| true).map_err(tlog_failure)?;
    if json {
        let files: Vec<_> = validation
            .files
            .iter()
            .map(|f| {
                json!({
                    "file": f.file.name(), "first_i": f.first_i, "last_i": f.last_i,
                    "entries": f.entries, "bytes": f.bytes, "archived": f.file.kind.is_archive(),
                    "marker": f.last_marker,
                })
            })
            .collect();
        let problems: Vec<_> = validation.problems.iter().map(problem_json).collect();
        println!(
            "{}",
            json!({ "dir": dir.display().to_string(), "files": files, "problems": problems })
        );
    } else {
        println!(
            "{:<10} {:>12} {:>12} {:>9} {:>12}  {:<8} marker",
            "file", "first i", "last i", "entries", "bytes", "archive"
        );
        for f in &validation.files {
            let opt = |v: Option<u64>| v.map_or("-".to_string(), |v| v.to_string());
            println!(
                "{:<10} {:>12} {:>12} {:>9} {:>12}  {:<8} {}",
                f.file.name(),
                opt(f.first_i),
                opt(f.last_i),
                f.entries,
                f.bytes,
                if f.file.kind.is_archive() { f.file.kind.extension() } else { "no" },
                f.last_marker.as_deref().unwrap_or("-")
            );
        }
        if validation.files.is_empty() {
            println!("(no TLog files in {})", dir.display());
        }
        for p in &validation.problems {
            eprintln!("problem: {p}");
        }
        if !validation.problems.is_empty() {
            eprintln!("run `arakoon-admin tlog verify {}` for repairs", dir.display());
        }
    }
    Ok(0)
}

fn problem_json(p: &TlogError) -> serde_json::Value {
    json!({
        "kind": p.kind(), "path": p.path(), "offset": p.offset(), "i": p.i(),
        "exit_code": p.exit_code(), "message": p.to_string(), "repair": p.repair(),
    })
}

fn verify(dir: &Path, json: bool) -> Result<i32, Failure> {
    let d = open_dir(dir)?;
    let files = tlog::list_files(&d).map_err(tlog_failure)?;
    let bar = progress_bar(files.len() as u64, "verifying files");
    let mut entries = 0u64;
    let mut current: Option<TlogFile> = None;
    let validation = validate_with(&d, &mut |_, pos| {
        entries += 1;
        if current.as_ref() != Some(pos.file) {
            current = Some(pos.file.clone());
            bar.inc(1);
        }
        true
    })
    .map_err(tlog_failure)?;
    bar.finish_and_clear();
    let code = validation.problems.first().map_or(0, TlogError::exit_code);
    if json {
        let problems: Vec<_> = validation.problems.iter().map(problem_json).collect();
        println!(
            "{}",
            json!({
                "dir": dir.display().to_string(), "files": validation.files.len(),
                "entries": entries, "last_i": validation.last_i(),
                "closed_cleanly": validation.closed_cleanly(), "problems": problems,
                "exit_code": code,
            })
        );
        return Ok(code);
    }
    for p in &validation.problems {
        println!("PROBLEM [{}] {p}", p.kind());
        println!("  repair: {}", p.repair());
    }
    if validation.is_clean() {
        println!(
            "ok: {} files, {entries} entries, last i {}{}",
            validation.files.len(),
            validation.last_i().map_or("-".into(), |i| i.to_string()),
            if validation.closed_cleanly() { ", closed cleanly" } else { "" }
        );
    } else {
        println!("{} problem(s) found; exit code {code}", validation.problems.len());
    }
    Ok(code)
}

fn truncate(file: &Path, yes: bool) -> Result<i32, Failure> {
    let (d, named) = dir_and_file(file)?;
    let Some(named) = named else {
        return Err(Failure::new(
            Exit::BadInput,
            format!("{}: name the torn file, not a directory", file.display()),
        ));
    };
    let validation = validate_with(&d, &mut |_, _| true).map_err(tlog_failure)?;
    let torn = match validation.problems.as_slice() {
        [] => {
            println!("{}: nothing to cut, the log is clean", file.display());
            return Ok(0);
        }
        [p @ TlogError::TornTail { .. }] => p,
        [first, ..] => {
            return Err(Failure::new(
                first.exit_code(),
                format!(
                    "will not truncate: the log has problems that are not a torn tail:\n  {first}\n  repair: {}",
                    first.repair()
                ),
            ))
        }
    };
    if !torn.path().ends_with(&named.name()) {
        return Err(Failure::new(
            Exit::BadInput,
            format!("the torn tail is in {}, not in {}", torn.path(), file.display()),
        ));
    }
    let TlogError::TornTail { offset, i, have, .. } = torn else { unreachable!() };
    println!(
        "{}: will cut {have} bytes at offset {offset} (the unfinished entry{}); every entry before \
         it stays",
        torn.path(),
        i.map_or(String::new(), |i| format!(" for i={i}"))
    );
    if !yes && !confirm("cut the torn tail?")? {
        println!("nothing changed");
        return Ok(Exit::Declined.code());
    }
    match tlog::truncate_torn_tail(&d).map_err(tlog_failure)? {
        Some((path, at, cut)) => println!("{path}: cut {cut} bytes at offset {at}"),
        None => println!("nothing to cut"),
    }
    Ok(0)
}

fn compress(path: &Path) -> Result<i32, Failure> {
    let (d, named) = dir_and_file(path)?;
    let files = tlog::list_files(&d).map_err(tlog_failure)?;
    let targets: Vec<TlogFile> = match named {
        Some(f) if f.kind == FileKind::Tlog => vec![f],
        Some(f) => return Err(Failure::new(Exit::BadInput, format!("{f} is already an archive"))),
        None => {
            let sealed = files.len().saturating_sub(1);
            files[..sealed].iter().filter(|f| f.kind == FileKind::Tlog).cloned().collect()
        }
    };
    if targets.is_empty() {
        println!("nothing to compress (the last file is the one a node appends to)");
        return Ok(0);
    }
    let bar = progress_bar(targets.len() as u64, "compressing");
    for f in &targets {
        let n = archive::compress(&d, f.number).map_err(tlog_failure)?;
        say(&bar, format!("{} -> {} ({n} entries)", f.name(), f.with_kind(FileKind::Tlx).name()));
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(0)
}

fn uncompress(path: &Path) -> Result<i32, Failure> {
    let (d, named) = dir_and_file(path)?;
    let targets: Vec<TlogFile> = match named {
        Some(f) if f.kind.is_archive() => vec![f],
        Some(f) => return Err(Failure::new(Exit::BadInput, format!("{f} is not an archive"))),
        None => tlog::list_files(&d)
            .map_err(tlog_failure)?
            .into_iter()
            .filter(|f| f.kind.is_archive())
            .collect(),
    };
    let bar = progress_bar(targets.len() as u64, "uncompressing");
    for f in &targets {
        let n = archive::uncompress(&d, f).map_err(tlog_failure)?;
        say(&bar, format!("{} -> {} ({n} entries)", f.name(), f.with_kind(FileKind::Tlog).name()));
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(0)
}

fn dump(args: &DumpArgs) -> Result<i32, Failure> {
    let (d, named) = dir_and_file(&args.path)?;
    let from = args.from.unwrap_or(0);
    let to = args.to.unwrap_or(u64::MAX);
    let mut shown = 0u64;
    let mut visit = |e: &Entry, file: &TlogFile, offset: u64| -> bool {
        if e.i < from {
            return true;
        }
        if e.i > to {
            return false;
        }
        shown += 1;
        if args.json {
            println!("{}", entry_json(e, file, offset, args.values));
        } else {
            println!("{}", entry_text(e, file, offset, args.values));
        }
        true
    };
    let result = match named {
        // One file on its own: no cross-file rules.
        Some(file) => tlog::walk_file(&d, &file, &mut |e, offset| visit(e, &file, offset)),
        None => tlog::walk(&d, from, &mut |e, pos| visit(e, pos.file, pos.offset)),
    };
    if let Err(e) = result {
        eprintln!("stopped at a problem after {shown} entries: {e}\n  repair: {}", e.repair());
        return Ok(e.exit_code());
    }
    Ok(0)
}

fn update_text(u: &Update, values: bool) -> String {
    let v = |b: &[u8]| if values { format!("={}", escape(b)) } else { String::new() };
    let o = |b: &Option<Vec<u8>>| match b {
        Some(b) if values => format!("={}", escape(b)),
        Some(_) => String::new(),
        None => "=None".into(),
    };
    match u {
        Update::Set { key, value } => format!("set {}{}", escape(key), v(value)),
        Update::Delete { key } => format!("delete {}", escape(key)),
        Update::TestAndSet { key, wanted, .. } => {
            format!("test_and_set {}{}", escape(key), o(wanted))
        }
        Update::MasterSet { master, .. } => format!("master_set {master}"),
        Update::Sequence(us) | Update::SyncedSequence(us) => format!(
            "{}[{}]",
            u.name(),
            us.iter().map(|u| update_text(u, values)).collect::<Vec<_>>().join("; ")
        ),
        Update::UserFunction { name, arg } => format!("user_function {name}{}", o(arg)),
        Update::Assert { key, value } => format!("assert {}{}", escape(key), o(value)),
        Update::AdminSet { key, value } => format!("admin_set {}{}", escape(key), o(value)),
        Update::DeletePrefix { prefix } => format!("delete_prefix {}", escape(prefix)),
        Update::AssertExists { key } => format!("assert_exists {}", escape(key)),
        Update::Replace { key, value } => format!("replace {}{}", escape(key), o(value)),
        Update::AssertRange { prefix, keys } => {
            format!("assert_range {} ({} keys)", escape(prefix), keys.len())
        }
        other => other.name().to_string(),
    }
}

fn entry_text(e: &Entry, file: &TlogFile, offset: u64, values: bool) -> String {
    let marker = e.marker.as_deref().map_or(String::new(), |m| format!(" <{m}>"));
    let body = match &e.value {
        Value::MasterSet { master, .. } => format!("master_set {master}"),
        Value::Client { synced, updates } => format!(
            "client{} {}",
            if *synced { " synced" } else { "" },
            updates.iter().map(|u| update_text(u, values)).collect::<Vec<_>>().join(" | ")
        ),
    };
    format!("{:>10} {}@{offset}{marker} {body}", e.i, file.name())
}

fn entry_json(e: &Entry, file: &TlogFile, offset: u64, values: bool) -> serde_json::Value {
    let (kind, updates) = match &e.value {
        Value::MasterSet { master, .. } => ("master_set", vec![json!({"master": master})]),
        Value::Client { updates, .. } => (
            "client",
            updates
                .iter()
                .map(|u| json!({"update": u.name(), "text": update_text(u, values)}))
                .collect(),
        ),
    };
    json!({
        "i": e.i, "file": file.name(), "offset": offset, "kind": kind,
        "marker": e.marker, "updates": updates,
    })
}
