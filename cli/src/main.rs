//! `arakoon-admin`: the operator's toolkit for arakoon-rs.
//!
//! One module per command family; each returns the process exit code, or a [`Failure`] whose
//! message is printed on stderr. Exit codes are documented in the README.

mod check_cmd;
mod output;
mod sim_cmd;
mod tlog_cmd;

use clap::{Parser, Subcommand};
use output::Failure;

#[derive(Debug, Parser)]
#[command(name = "arakoon-admin", version, about = "The operator's toolkit for arakoon-rs", long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Inspect, verify and repair TLog directories.
    #[command(subcommand)]
    Tlog(tlog_cmd::TlogCommand),
    /// Simulate whole clusters under faults, seed by seed, and check every run.
    Sim(sim_cmd::SimArgs),
    /// Check that a recorded history is linearizable; explain a violation.
    Check(check_cmd::CheckArgs),
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Tlog(cmd) => tlog_cmd::run(cmd),
        Command::Sim(args) => sim_cmd::run(args),
        Command::Check(args) => check_cmd::run(args),
    };
    match result {
        Ok(code) => std::process::exit(code),
        Err(Failure { code, message }) => {
            eprintln!("arakoon-admin: {message}");
            std::process::exit(code);
        }
    }
}
