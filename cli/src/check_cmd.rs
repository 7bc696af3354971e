//! `arakoon-admin check`: decide whether a recorded history is linearizable, and explain why
//! not.

use crate::output::Failure;
use arakoon_checker::edn::read_one;
use arakoon_checker::import::{read, Format};
use arakoon_checker::{check_raw, Budget, ModelKind, Verdict};
use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
use clap::{Args, ValueEnum};
use std::path::PathBuf;
use std::time::Duration;

/// Exit codes: the verdict, or why there is none.
const EXIT_LINEARIZABLE: i32 = 0;
const EXIT_NOT_LINEARIZABLE: i32 = 1;
const EXIT_UNKNOWN: i32 = 2;
const EXIT_BAD_INPUT: i32 = 3;

/// The `--model` values: the checker's own list of models, with its one-line help for each.
fn model_parser() -> impl clap::builder::TypedValueParser<Value = ModelKind> {
    let values = ModelKind::ALL.map(|k| PossibleValue::new(k.name()).help(k.about()));
    PossibleValuesParser::new(values)
        .map(|name| ModelKind::parse(&name).expect("clap only passes the names it was given"))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FormatChoice {
    /// From the first line that is neither blank nor a `;` comment.
    Auto,
    /// Ours: one JSON object per line (see checker/README.md).
    Jsonl,
    /// Jepsen EDN: operation maps in a vector or as a stream; nemesis entries are skipped.
    Edn,
    /// Jepsen log lines: `INFO jepsen.util - 2 :invoke :cas [3 0]`, tabs or spaces.
    JepsenLog,
}

/// What `check --help` adds below the options (the subcommand's one-line summary comes from
/// its variant in `main.rs`).
const AFTER_HELP: &str = "\
Reads a history (calls and completions of client operations: ok, fail, or unknown outcome) and
searches for an order of the operations, consistent with real time, that the model accepts. A
violation is explained: the operation that cannot be placed, the longest linearizable prefix,
and a small counterexample.

Models (--model): register, cas-register, etcd-register, kv, multi-key, mutex, set; see above.
Formats (--format): jsonl (ours, see checker/README.md), edn (Jepsen EDN maps), jepsen-log
(`INFO jepsen.util - 2 :invoke :cas [3 0]`), or auto (the default: from the first line).

Exit codes:
  0  linearizable
  1  not linearizable
  2  unknown: the time or memory budget ran out first (never a guess)
  3  bad input: unreadable file, malformed history (the line and the reason are printed), or
     an operation the model does not know

Examples:
  arakoon-admin check history.jsonl --model kv
  arakoon-admin check etcd_007.log --model etcd-register
  arakoon-admin check cas-failure.edn --model cas-register --html /tmp/report.html
  arakoon-admin check c10-ok.txt --model multi-key --initial '\"\"' --time-limit 30s";

/// Check that a recorded history is linearizable; explain a violation.
#[derive(Debug, Args)]
#[command(after_help = AFTER_HELP)]
pub struct CheckArgs {
    /// The history file.
    file: PathBuf,
    /// The sequential specification to check against.
    #[arg(long, value_parser = model_parser())]
    model: ModelKind,
    /// The file format.
    #[arg(long, value_enum, default_value_t = FormatChoice::Auto)]
    format: FormatChoice,
    /// The initial value, in EDN: `nil`, `0`, `"x"` (every key's, for kv and multi-key).
    #[arg(long)]
    initial: Option<String>,
    /// Also write the report as a self-contained HTML timeline to this file.
    #[arg(long)]
    html: Option<PathBuf>,
    /// Print the report on stdout as JSON instead of text.
    #[arg(long)]
    json: bool,
    /// Time for the search, e.g. 60s, 500ms, 2m.
    #[arg(long, default_value = "60s")]
    time_limit: String,
    /// Memory for the search tables, in MiB.
    #[arg(long, default_value_t = 2048)]
    memory_mib: usize,
    /// Do not shrink a violation to a small counterexample.
    #[arg(long)]
    no_shrink: bool,
}

fn parse_duration(text: &str) -> Result<Duration, Failure> {
    let bad = || {
        Failure::new(EXIT_BAD_INPUT, format!("--time-limit {text:?}: write it as 60s, 500ms or 2m"))
    };
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| bad())?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n.saturating_mul(60))),
        _ => Err(bad()),
    }
}

pub fn run(args: CheckArgs) -> Result<i32, Failure> {
    let path = args.file.display().to_string();
    let bad = |message: String| Failure::new(EXIT_BAD_INPUT, message);
    let text = std::fs::read_to_string(&args.file)
        .map_err(|e| bad(format!("{path}: cannot read the history: {e}")))?;
    let format = match args.format {
        FormatChoice::Auto => Format::detect(&text),
        FormatChoice::Jsonl => Format::Jsonl,
        FormatChoice::Edn => Format::Edn,
        FormatChoice::JepsenLog => Format::JepsenLog,
    };
    let raw = read(&text, format).map_err(|e| {
        bad(format!("{path}: {e}; fix the history, or say its format with --format"))
    })?;
    let initial = match &args.initial {
        Some(i) => Some(read_one(i).map_err(|e| {
            bad(format!("--initial {i:?}: {}; write an EDN value: nil, 0, \"x\"", e.kind))
        })?),
        None => None,
    };
    let budget = Budget {
        time_limit: Some(parse_duration(&args.time_limit)?),
        memory_bytes_max: args.memory_mib.saturating_mul(1 << 20),
        shrink: !args.no_shrink,
        ..Budget::default()
    };
    let kind = args.model;
    let checked = check_raw(kind, initial.as_ref(), &raw, &budget)
        .map_err(|e| bad(format!("{path}: {e} (is {} the right --model?)", kind.name())))?;
    if let Some(out) = &args.html {
        std::fs::write(out, checked.html(&path)).map_err(|e| {
            Failure::new(
                EXIT_BAD_INPUT,
                format!("{}: cannot write the HTML report: {e}", out.display()),
            )
        })?;
    }
    if args.json {
        println!("{:#}", checked.json());
    } else {
        print!("{}", checked.text());
        if let Some(out) = &args.html {
            println!("HTML timeline: {}", out.display());
        }
    }
    Ok(match checked.report.verdict {
        Verdict::Linearizable => EXIT_LINEARIZABLE,
        Verdict::NotLinearizable => EXIT_NOT_LINEARIZABLE,
        Verdict::Unknown => EXIT_UNKNOWN,
    })
}
