//! Real processes for the sandbox and the end-to-end tests: free loopback ports, and a child
//! process handle that can be killed (-9), stopped (SIGTERM), paused (SIGSTOP) and resumed
//! (SIGCONT), and that never outlives the process that started it: it is killed on drop, and the
//! kernel kills it if its parent dies first (PR_SET_PDEATHSIG).

use std::fs::File;
use std::io;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// `n` distinct free TCP ports on 127.0.0.1, outside the kernel's ephemeral range so that no
/// other process's `bind(0)` or outgoing connection takes one before its node binds it
/// ([`arakoon_node::ports`]).
pub fn free_ports(n: usize) -> io::Result<Vec<u16>> {
    arakoon_node::ports::free_loopback_ports(n)
}

/// Finds a sibling binary of this program (`arakoon` beside `arakoon-admin` or a test binary),
/// or the one `ARAKOON_BIN` names.
pub fn locate_binary(name: &str) -> io::Result<PathBuf> {
    if let Some(p) = std::env::var_os("ARAKOON_BIN") {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe()?;
    let mut dir = exe.parent().map(Path::to_path_buf);
    // Test binaries live in target/<profile>/deps; binaries in target/<profile>.
    for _ in 0..2 {
        let Some(d) = dir else { break };
        let candidate = d.join(name);
        if candidate.is_file() {
            return Ok(candidate);
        }
        dir = d.parent().map(Path::to_path_buf);
    }
    Err(io::Error::new(
        io::ErrorKind::NotFound,
        format!(
            "cannot find the `{name}` binary beside {}; build it with `cargo build -p arakoon-node` \
             or set ARAKOON_BIN",
            exe.display()
        ),
    ))
}

/// A child process under our control.
#[derive(Debug)]
pub struct Process {
    child: Option<Child>,
    pid: u32,
    label: String,
}

fn signal(pid: u32, sig: i32) -> io::Result<()> {
    // SAFETY: kill(2) has no memory-safety preconditions; pid is a child we started.
    let rc = unsafe { libc::kill(pid as libc::pid_t, sig) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

impl Process {
    /// Starts `program args`, with stdout and stderr appended to `log`; the kernel kills it
    /// (SIGKILL) when the thread that started it ends.
    pub fn spawn(label: &str, program: &Path, args: &[String], log: &Path) -> io::Result<Process> {
        Process::spawn_with(label, program, args, log, libc::SIGKILL, false)
    }

    /// Like [`Process::spawn`], with the signal the child gets when its parent thread ends
    /// (`death_signal`), and optionally in a session of its own (`new_session`: the terminal's
    /// Ctrl-C and hang-up no longer reach it, which a long-lived background process needs).
    ///
    /// PR_SET_PDEATHSIG fires when the *thread* that forked the child ends, not the process:
    /// spawn from a thread that lives as long as the child should be tied to it (the main one).
    pub fn spawn_with(
        label: &str,
        program: &Path,
        args: &[String],
        log: &Path,
        death_signal: i32,
        new_session: bool,
    ) -> io::Result<Process> {
        let out = File::options().create(true).append(true).open(log)?;
        let err = out.try_clone()?;
        let mut cmd = Command::new(program);
        cmd.args(args).stdin(Stdio::null()).stdout(out).stderr(err);
        let parent = std::process::id() as libc::pid_t;
        // SAFETY: setsid, prctl and getppid are async-signal-safe and touch no memory of ours.
        unsafe {
            cmd.pre_exec(move || {
                if new_session && libc::setsid() < 0 {
                    return Err(io::Error::last_os_error());
                }
                if libc::prctl(libc::PR_SET_PDEATHSIG, death_signal) != 0 {
                    return Err(io::Error::last_os_error());
                }
                // The parent may have died between fork and prctl: then no signal would come.
                if libc::getppid() != parent {
                    return Err(io::Error::other("the parent died while starting the child"));
                }
                Ok(())
            });
        }
        let child = cmd.spawn()?;
        Ok(Process { pid: child.id(), child: Some(child), label: label.to_string() })
    }

    /// Gives up control: the process keeps running after this handle is gone (it is no longer
    /// killed on drop). Returns its pid.
    pub fn release(mut self) -> u32 {
        // Dropping a std Child neither kills nor waits for it.
        self.child = None;
        self.pid
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub fn label(&self) -> &str {
        &self.label
    }

    /// Whether the process is still running (a paused one is).
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// The exit status, if the process has ended.
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        self.child.as_mut().and_then(|c| c.try_wait().ok().flatten())
    }

    /// kill -9, then reap.
    pub fn kill(&mut self) -> io::Result<()> {
        if let Some(mut c) = self.child.take() {
            // A reaped child's pid may belong to another process by now: signal only a live one.
            if let Ok(None) = c.try_wait() {
                // Resume first: a stopped process still dies of SIGKILL, but be explicit.
                let _ = signal(self.pid, libc::SIGCONT);
                let _ = c.kill();
            }
            c.wait()?;
        }
        Ok(())
    }

    /// SIGTERM, then wait up to `grace` for a clean exit, then kill -9.
    pub fn terminate(&mut self, grace: Duration) -> io::Result<Option<ExitStatus>> {
        let Some(mut c) = self.child.take() else { return Ok(None) };
        if let Some(status) = c.try_wait()? {
            return Ok(Some(status));
        }
        let _ = signal(self.pid, libc::SIGCONT);
        signal(self.pid, libc::SIGTERM)?;
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Some(status) = c.try_wait()? {
                return Ok(Some(status));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        c.kill()?;
        c.wait()?;
        Ok(None)
    }

    /// SIGSTOP.
    pub fn pause(&mut self) -> io::Result<()> {
        self.require_running("pause")?;
        signal(self.pid, libc::SIGSTOP)
    }

    /// SIGCONT.
    pub fn resume(&mut self) -> io::Result<()> {
        self.require_running("resume")?;
        signal(self.pid, libc::SIGCONT)
    }

    fn require_running(&mut self, what: &str) -> io::Result<()> {
        if self.is_running() {
            Ok(())
        } else {
            Err(io::Error::other(format!("cannot {what} {}: it is not running", self.label)))
        }
    }
}

/// Sends SIGTERM to every process, then waits until `grace` has passed for all of them before
/// killing (-9) those still running. Returns, per process, the exit status of a clean exit.
pub fn terminate_all(procs: &mut [&mut Process], grace: Duration) -> Vec<Option<ExitStatus>> {
    for p in procs.iter_mut() {
        if p.is_running() {
            let _ = signal(p.pid, libc::SIGCONT);
            let _ = signal(p.pid, libc::SIGTERM);
        }
    }
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline && procs.iter_mut().any(|p| p.is_running()) {
        std::thread::sleep(Duration::from_millis(10));
    }
    procs
        .iter_mut()
        .map(|p| {
            let status = p.exit_status();
            let _ = p.kill();
            status
        })
        .collect()
}

/// The state letter of a process as `/proc/PID/stat` gives it (`R`, `S`, `T` stopped, `Z`
/// zombie, ...), or None when there is no such process.
pub fn pid_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may itself hold spaces or parentheses.
    let after = &stat[stat.rfind(')')? + 1..];
    after.trim_start().chars().next()
}

/// Whether a process with this pid exists and has not ended (a zombie has ended).
pub fn pid_alive(pid: u32) -> bool {
    matches!(pid_state(pid), Some(s) if s != 'Z' && s != 'X')
}

/// The command line of a process, or None when it has none (gone, or a zombie).
pub fn cmdline(pid: u32) -> Option<Vec<String>> {
    let bytes = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    if bytes.is_empty() {
        return None;
    }
    let text = String::from_utf8_lossy(&bytes);
    Some(text.trim_end_matches('\0').split('\0').map(str::to_string).collect())
}

/// Every live process (but this one) whose command line satisfies `pred`.
pub fn pids_where(pred: impl Fn(&[String]) -> bool) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    let me = std::process::id();
    let mut pids: Vec<u32> = entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != me && cmdline(pid).is_some_and(|args| pred(&args)))
        .filter(|&pid| pid_alive(pid))
        .collect();
    pids.sort_unstable();
    pids
}

/// SIGKILL to a process that is not our child (one we only know by pid).
pub fn kill_pid(pid: u32) -> io::Result<()> {
    signal(pid, libc::SIGKILL)
}

/// SIGTERM to a process that is not our child.
pub fn term_pid(pid: u32) -> io::Result<()> {
    signal(pid, libc::SIGTERM)
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.kill();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_distinct() {
        let ports = free_ports(16).unwrap();
        let (lo, hi) = arakoon_node::ports::ephemeral_range();
        for p in &ports {
            // A port of the ephemeral range can be taken by any `bind(0)` or outgoing
            // connection between `sandbox up` picking it and the supervisor binding it.
            assert!(*p < lo || *p > hi, "port {p} inside the ephemeral range {lo}..={hi}");
        }
        let mut sorted = ports.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), 16);
    }

    #[test]
    fn pause_resume_terminate_and_kill() {
        let tmp = tempfile::tempdir().unwrap();
        let log = tmp.path().join("log");
        let script = "trap 'exit 7' TERM; echo ready; while true; do sleep 0.01; done";
        let args = vec!["-c".to_string(), script.into()];
        let mut p = Process::spawn("sh", Path::new("/bin/sh"), &args, &log).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !std::fs::read_to_string(&log).unwrap_or_default().contains("ready") {
            assert!(Instant::now() < deadline, "the child never got ready");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(p.is_running());
        p.pause().unwrap();
        assert!(p.is_running(), "a paused process is still running");
        p.resume().unwrap();
        let status = p.terminate(Duration::from_secs(5)).unwrap().expect("exits on SIGTERM");
        assert_eq!(status.code(), Some(7));
        assert!(!p.is_running());
        let err = p.pause().unwrap_err();
        assert!(err.to_string().contains("not running"), "{err}");

        let mut p = Process::spawn("sleep", Path::new("/bin/sleep"), &["60".into()], &log).unwrap();
        let pid = p.pid();
        drop(p.kill());
        assert!(!Path::new(&format!("/proc/{pid}")).exists() || !p.is_running());
    }
}
