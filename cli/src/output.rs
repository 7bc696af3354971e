//! What every command shares: failures with an exit code, byte escaping, confirmation prompts,
//! progress bars that only draw on a terminal.

use crate::exit::Exit;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::{BufRead, IsTerminal, Write};

/// A command failed: the message for the operator and the process exit code.
#[derive(Debug)]
pub struct Failure {
    pub code: i32,
    pub message: String,
}

impl Failure {
    /// `code` is an [`crate::exit::Exit`], or a code a library's error chose (a TLog problem's
    /// Arakoon code, a sandbox supervisor's answer).
    pub fn new(code: impl Into<i32>, message: impl Into<String>) -> Failure {
        Failure { code: code.into(), message: message.into() }
    }
}

/// A TLog problem as a failure: its message, the repair, and Arakoon's exit code for it.
pub fn tlog_failure(e: arakoon_node::tlog::TlogError) -> Failure {
    Failure::new(e.exit_code(), format!("{e}\n  repair: {}", e.repair()))
}

/// Bytes as text: printable ASCII as is, everything else as `\xNN`.
pub fn escape(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len());
    for &b in bytes {
        if (0x20..0x7f).contains(&b) && b != b'\\' {
            s.push(b as char);
        } else {
            s.push_str(&format!("\\x{b:02x}"));
        }
    }
    s
}

/// Asks a yes/no question on the terminal. Without a terminal it refuses: a destructive command
/// run from a script must say `--yes`.
pub fn confirm(question: &str) -> Result<bool, Failure> {
    if !std::io::stdin().is_terminal() {
        return Err(Failure::new(
            Exit::Declined,
            "refusing to change anything without confirmation: stdin is not a terminal; add --yes",
        ));
    }
    print!("{question} [y/N] ");
    std::io::stdout().flush().ok();
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| Failure::new(Exit::Declined, e.to_string()))?;
    Ok(matches!(line.trim(), "y" | "Y" | "yes"))
}

/// A progress bar on stderr when it is a terminal, invisible otherwise (CI stays quiet).
/// Prints a line above a progress bar; when the bar is hidden (not a terminal), on stdout, so
/// that nothing said is lost in a pipe or a CI log.
pub fn say(bar: &ProgressBar, line: impl Into<String>) {
    let line = line.into();
    if bar.is_hidden() {
        println!("{line}");
    } else {
        bar.println(line);
    }
}

pub fn progress_bar(len: u64, what: &str) -> ProgressBar {
    let bar = bar_of(len, "{msg} [{bar:30}] {pos}/{len} ({per_sec}, eta {eta})");
    bar.set_message(what.to_string());
    bar
}

/// A bar over `duration` (counted in milliseconds) drawn with `template`, on stderr when it is
/// a terminal, invisible otherwise.
pub fn timed_bar(duration: std::time::Duration, template: &str) -> ProgressBar {
    bar_of(duration.as_millis() as u64, template)
}

fn bar_of(len: u64, template: &str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    if !std::io::stderr().is_terminal() {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    bar.set_style(
        ProgressStyle::with_template(template).expect("a valid template").progress_chars("=> "),
    );
    bar
}

/// A spinner with a message on stderr when it is a terminal, invisible otherwise.
pub fn spinner() -> ProgressBar {
    let bar = ProgressBar::new_spinner();
    if !std::io::stderr().is_terminal() {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    bar
}

#[cfg(test)]
mod tests {
    #[test]
    fn escape_shows_unprintable_bytes() {
        assert_eq!(super::escape(b"a b\x00\\\xff"), "a b\\x00\\x5c\\xff");
    }
}
