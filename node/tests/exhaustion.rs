//! Exhaustion ends cleanly (issue 15, item 5), on real processes: a full disk under the node's
//! home and TLog, SIGTERM in every state, idle and crowding clients, and a descriptor limit
//! below `max_connections`.

mod harness;

use arakoon_node::protocol::client::{encode_prologue, Request};
use arakoon_node::rc::Rc;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BINARY: &str = env!("CARGO_BIN_EXE_arakoon");

/// A node process that is killed when the test ends, passed or not.
struct Node(Child);

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits at most `within` for `child` to exit; its exit code (`None`: still running, or killed
/// by a signal).
fn wait_exit(child: &mut Child, within: Duration) -> Option<Option<i32>> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status.code());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

fn sigterm(child: &Child) {
    // SAFETY: a signal to our own child.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
}

/// Starts node n0 of `cluster` under a shell that first sets the open-files limit to `nofile`.
fn start_with_nofile(cluster: &harness::Cluster, nofile: u32) -> Node {
    let script = format!("ulimit -n {nofile} && exec \"$0\" --node n0 -config \"$1\"");
    let mut command = Command::new("sh");
    command.args(["-c", &script]);
    spawn_n0(cluster, command)
}

/// Spawns node n0 of `cluster` through `command` (a shell that prepares and then execs the
/// binary, which it is handed last, before the configuration), its log in n0's log file.
fn spawn_n0(cluster: &harness::Cluster, mut command: Command) -> Node {
    let log = std::fs::File::create(cluster.log_path(0)).unwrap();
    command
        .arg(BINARY)
        .arg(cluster.config_arg())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .map(Node)
        .unwrap()
}

/// A client connection from `from` (any 127.x address) that has sent its prologue.
async fn connect_from(from: &str, to: SocketAddr) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
    let s = socket.connect(to).await.unwrap().into_std().unwrap();
    s.set_nonblocking(false).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut p = Vec::new();
    encode_prologue("itest", &mut p);
    (&s).write_all(&p).unwrap();
    s
}

/// Reads an rc and its message, or `None` when the connection closed first.
fn read_refusal(s: &mut TcpStream) -> Option<(u32, String)> {
    let mut b = [0u8; 4];
    s.read_exact(&mut b).ok()?;
    let rc = u32::from_le_bytes(b);
    s.read_exact(&mut b).ok()?;
    let mut msg = vec![0u8; u32::from_le_bytes(b) as usize];
    s.read_exact(&mut msg).ok()?;
    Some((rc, String::from_utf8_lossy(&msg).into_owned()))
}

/// How long until the node closes `s` (reading, and dropping what arrives); `None`: not within
/// `within`.
fn closed_within(s: &mut TcpStream, within: Duration) -> Option<Duration> {
    let start = Instant::now();
    s.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    let mut b = [0u8; 256];
    while start.elapsed() < within {
        match s.read(&mut b) {
            Ok(0) => return Some(start.elapsed()),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => return Some(start.elapsed()),
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_time_out_and_one_address_holds_only_its_share() {
    let extra = "client_idle_ms = 1500\nmax_connections = 8\nmax_connections_per_address = 3";
    let mut cluster = harness::cluster(1, 1000, extra);
    cluster.start_all();
    cluster.wait_for_master(Duration::from_secs(20)).await;
    let to = cluster.client_addr(0);
    std::thread::sleep(Duration::from_millis(1600)); // the master search's connections go idle
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(connect_from("127.0.0.1", to).await);
    }
    let mut fourth = connect_from("127.0.0.1", to).await;
    let (rc, msg) = read_refusal(&mut fourth).expect("a refusal, not a silent close");
    assert_eq!(rc, Rc::MaxConnections.code(), "{msg}");
    assert!(msg.contains("127.0.0.1 holds 3") && msg.contains("max_connections_per_address"));
    // Another address still gets in, and is served.
    let mut other = connect_from("127.0.0.2", to).await;
    other
        .write_all(&Request::Ping { client_id: "t".into(), cluster_id: "itest".into() }.to_bytes())
        .unwrap();
    let mut rc = [0u8; 4];
    other.read_exact(&mut rc).unwrap();
    assert_eq!(u32::from_le_bytes(rc), 0);
    // Idle ones are closed after client_idle_ms, and their slots come back.
    for s in &mut held {
        let after = closed_within(s, Duration::from_secs(5)).expect("an idle connection closes");
        assert!(after < Duration::from_millis(3000), "closed after {after:?}");
    }
    std::thread::sleep(Duration::from_millis(100));
    let mut again = connect_from("127.0.0.1", to).await;
    again
        .write_all(&Request::Ping { client_id: "t".into(), cluster_id: "itest".into() }.to_bytes())
        .unwrap();
    again.read_exact(&mut rc).unwrap();
    assert_eq!(u32::from_le_bytes(rc), 0, "the address's slots were released");
    cluster.stop(0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickling_client_is_dropped_and_sigterm_ends_a_node_that_holds_stalled_clients() {
    let extra = "client_stall_ms = 300\nclient_min_bytes_per_s = 1000";
    let mut cluster = harness::cluster(1, 1000, extra);
    cluster.start_all();
    cluster.wait_for_master(Duration::from_secs(20)).await;
    let to = cluster.client_addr(0);
    // One byte every 100 ms: 10 bytes a second, each read well within client_stall_ms.
    let mut trickle = connect_from("127.0.0.1", to).await;
    let request = Request::Set { key: b"k".to_vec(), value: vec![1; 10_000] }.to_bytes();
    let start = Instant::now();
    let mut dropped = None;
    for b in request.iter().take(60) {
        if trickle.write_all(&[*b]).is_err() {
            dropped = Some(start.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        trickle.set_nonblocking(true).unwrap();
        let mut probe = [0u8; 1];
        let closed = matches!(trickle.read(&mut probe), Ok(0));
        trickle.set_nonblocking(false).unwrap();
        if closed {
            dropped = Some(start.elapsed());
            break;
        }
    }
    let dropped = dropped.expect("a client trickling 10 bytes a second is dropped");
    assert!(dropped < Duration::from_secs(3), "dropped after {dropped:?}");

    // SIGTERM with a client stalled inside a request and another idle: a clean stop.
    let mut stalled = connect_from("127.0.0.1", to).await;
    stalled.write_all(&request[..100]).unwrap();
    let _idle = connect_from("127.0.0.1", to).await;
    let start = Instant::now();
    let status = cluster.stop(0).expect("SIGTERM ends the node within 10 s");
    assert_eq!(status.code(), Some(0), "{}", cluster.log(0));
    assert!(start.elapsed() < Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_connections_is_fitted_under_the_open_files_limit_and_the_tlog_rolls_over() {
    let extra = "max_connections = 1024\nmax_connections_per_address = 1024\ntlog_max_entries = 10";
    let cluster = harness::cluster(1, 1000, extra);
    let mut node = start_with_nofile(&cluster, 300);
    cluster.wait_for_master(Duration::from_secs(20)).await;
    let log = cluster.log(0);
    // 300 - (128 + 64 + 4) = 104.
    assert!(log.contains("serving at most 104 clients"), "{log}");
    let to = cluster.client_addr(0);
    let mut held = Vec::new();
    let mut refused = 0;
    for _ in 0..150 {
        let mut s = connect_from("127.0.0.1", to).await;
        s.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        match read_refusal(&mut s) {
            Some((rc, msg)) => {
                assert_eq!(rc, Rc::MaxConnections.code(), "{msg}");
                assert!(msg.contains("at most 104"), "{msg}");
                refused += 1;
            }
            None => held.push(s),
        }
    }
    assert!(held.len() <= 104 && refused >= 46, "{} held, {refused} refused", held.len());
    // With every client slot taken, the node still has descriptors for its TLog rollovers.
    let mut config = cluster.client_config();
    config.attempts = 3;
    let mut c = arakoon_node::client::Client::new(config);
    drop(held.pop()); // a slot for this client
    std::thread::sleep(Duration::from_millis(100));
    for k in 0..40u32 {
        c.set(format!("k{k}").as_bytes(), b"v")
            .await
            .unwrap_or_else(|e| panic!("write {k} with every slot taken: {e}\n{}", cluster.log(0)));
    }
    assert!(wait_exit(&mut node.0, Duration::from_millis(100)).is_none(), "the node runs on");
    sigterm(&node.0);
    assert_eq!(wait_exit(&mut node.0, Duration::from_secs(10)), Some(Some(0)));
}

/// Whether this process may mount a tmpfs in a mount namespace of its own.
fn can_mount_tmpfs() -> bool {
    let dir = tempfile::tempdir().unwrap();
    let script = "mount -t tmpfs -o size=1m tmpfs \"$0\"";
    Command::new("unshare")
        .args(["-rm", "sh", "-c", script])
        .arg(dir.path())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Starts node n0 of `cluster` with its home (TLog and store) on a tmpfs of `mib` MiB that
/// only this process sees.
fn start_on_tmpfs(cluster: &harness::Cluster, mib: u32) -> Node {
    let home = &cluster.config.nodes[0].home;
    std::fs::create_dir_all(home).unwrap();
    let script = format!(
        "mount -t tmpfs -o size={mib}m tmpfs \"$0\" && exec \"$1\" --node n0 -config \"$2\""
    );
    let mut command = Command::new("unshare");
    command.args(["-rm", "sh", "-c", &script]).arg(home);
    spawn_n0(cluster, command)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_writes_or_stops_the_node_naming_the_file_and_sigterm_ends_it() {
    if !can_mount_tmpfs() {
        eprintln!("SKIPPED: cannot mount a tmpfs here (unshare -rm mount failed); the disk-full test needs one");
        return;
    }
    let cluster = harness::cluster(1, 1000, "");
    let mut node = start_on_tmpfs(&cluster, 16);
    cluster.wait_for_master(Duration::from_secs(20)).await;
    let mut config = cluster.client_config();
    config.attempts = 2;
    config.request_timeout = Duration::from_secs(3);
    let mut c = arakoon_node::client::Client::new(config);
    c.set(b"first", b"v").await.unwrap();
    let value = vec![7u8; 256 << 10];
    let mut refused = None;
    for k in 0..200u32 {
        if let Err(e) = c.set(format!("k{k}").as_bytes(), &value).await {
            refused = Some(e);
            break;
        }
    }
    let refused = refused.expect("a 16 MiB disk fills up within 50 MiB of writes");
    // The node stops on its own, with the code of the part that failed and a message that
    // names the file; it once closed its ports and hung, SIGTERM or not.
    let code = wait_exit(&mut node.0, Duration::from_secs(10));
    if code.is_none() {
        sigterm(&node.0);
        let after_term = wait_exit(&mut node.0, Duration::from_secs(10));
        panic!(
            "a node whose disk is full did not stop (after SIGTERM: {after_term:?})\n{}",
            cluster.log(0)
        );
    }
    let log = cluster.log(0);
    let code = code.unwrap();
    let home = cluster.config.nodes[0].home.display().to_string();
    assert!(
        matches!(code, Some(43) | Some(45)),
        "exit {code:?} after {refused}: 43 (TLog) or 45 (store)\n{log}"
    );
    assert!(log.contains(&home), "the message names the file under {home}\n{log}");
}
