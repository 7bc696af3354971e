//! `arakoon-admin completions SHELL`: the shell completion script, printed to stdout.

use clap_complete::Shell;

/// Writes the completion script of `command` for `shell` to stdout.
pub fn run(shell: Shell, command: &mut clap::Command) -> i32 {
    clap_complete::generate(shell, command, "arakoon-admin", &mut std::io::stdout());
    0
}
