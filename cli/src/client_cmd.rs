//! `arakoon-admin client ...`: every client command from the command line.
//!
//! Commands go through the node crate's client, with its master discovery and its rule that an
//! update whose outcome is unknown is never retried. Keys and values are taken as UTF-8 text;
//! values are printed with unprintable bytes as `\xNN`, and so is every key and value in JSON
//! (a JSON string cannot hold arbitrary bytes). Exit codes: 0 done, 4 the cluster refused
//! (not_found, assertion_failed, ...: the message names the return code), 5 no master or no
//! node reachable, 6 outcome unknown.

use crate::connect::{client_failure, learn_names, ConnectArgs};
use crate::exit::Exit;
use crate::output::{confirm, escape, Failure};
use arakoon_node::client::sequence_file::parse_sequence;
use arakoon_node::client::{Client, ClientConfig, ClientError, ReadError};
use arakoon_node::protocol::client::{Consistency, Payload, Reply, Request};
use arakoon_node::shell::statistics::{self, StatValue};
use arakoon_node::store::Range;
use arakoon_node::value::Update;
use clap::{Args, Subcommand};
use serde_json::{json, Value as Json};
use std::path::PathBuf;

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  arakoon-admin client set -c cluster.ini greeting hello\n  \
                        arakoon-admin client get -c cluster.ini greeting --json\n  \
                        arakoon-admin client who-master --cluster demo --node 10.0.0.1:4000 \
                        --node 10.0.0.2:4000\n\n\
                        Exit codes: 0 done; 2 bad command line; 3 bad configuration or input \
                        file; 4 the cluster refused (not_found, assertion_failed, ...); 5 no \
                        master or no node reachable; 6 outcome unknown.")]
pub struct ClientArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: ClientCommand,
}

#[derive(Debug, Args)]
pub struct ReadArgs {
    /// consistent (the master, in its lease), dirty (the first node that answers, as it is),
    /// or at-least:I (the first node that answers once it has applied slot I).
    #[arg(long, default_value = "consistent", value_name = "HOW")]
    consistency: String,
}

#[derive(Debug, Args)]
pub struct RangeArgs {
    /// The first key (inclusive unless --exclude-first); none: from the first key.
    #[arg(long, value_name = "KEY")]
    first: Option<String>,
    #[arg(long)]
    exclude_first: bool,
    /// The last key (exclusive unless --include-last); none: to the last key.
    #[arg(long, value_name = "KEY")]
    last: Option<String>,
    #[arg(long)]
    include_last: bool,
    /// At most this many.
    #[arg(long, value_name = "N")]
    max: Option<usize>,
    #[command(flatten)]
    read: ReadArgs,
}

#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Read a key's value.
    ///
    /// Example: arakoon-admin client get -c cluster.ini greeting
    Get {
        key: String,
        #[command(flatten)]
        read: ReadArgs,
    },
    /// Set a key to a value.
    ///
    /// Example: arakoon-admin client set -c cluster.ini greeting hello
    Set { key: String, value: String },
    /// Delete a key (fails with not_found, exit 4, when it is absent).
    ///
    /// Example: arakoon-admin client delete -c cluster.ini greeting
    Delete { key: String },
    /// List keys in a range, ascending.
    ///
    /// Example: arakoon-admin client range -c cluster.ini --first a --last b --max 100
    Range(RangeArgs),
    /// List keys and values in a range, ascending, one `key<TAB>value` per line.
    ///
    /// Example: arakoon-admin client range-entries -c cluster.ini --first user/ --max 10
    RangeEntries(RangeArgs),
    /// List the keys that start with a prefix.
    ///
    /// Example: arakoon-admin client prefix -c cluster.ini user/ --max 100
    Prefix {
        prefix: String,
        #[arg(long, value_name = "N")]
        max: Option<usize>,
        #[command(flatten)]
        read: ReadArgs,
    },
    /// Delete every key that starts with a prefix (asks first; --yes skips the question).
    ///
    /// Example: arakoon-admin client delete-prefix -c cluster.ini tmp/ --yes
    DeletePrefix {
        prefix: String,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
    /// Set (or delete) a key only if its value is the one expected; prints the value before.
    ///
    /// Without --expected the key must be absent; without --wanted it is deleted.
    ///
    /// Example: arakoon-admin client test-and-set -c cluster.ini lock --wanted me
    TestAndSet {
        key: String,
        /// The value the key must hold (absent: the key must not exist).
        #[arg(long, value_name = "VALUE")]
        expected: Option<String>,
        /// The value to set (absent: delete the key).
        #[arg(long, value_name = "VALUE")]
        wanted: Option<String>,
    },
    /// Apply a list of updates atomically, read from a JSON file (`-` for stdin).
    ///
    /// The file holds an array of updates: {"op": "set", "key": K, "value": V},
    /// {"op": "delete", "key": K}, {"op": "assert", "key": K, "value": V or null},
    /// {"op": "assert_exists", "key": K}, {"op": "test_and_set", "key": K, "expected": V or
    /// null, "wanted": V or null}, {"op": "replace", "key": K, "value": V or null},
    /// {"op": "delete_prefix", "prefix": P}. If one fails, none is applied.
    ///
    /// Example: arakoon-admin client sequence -c cluster.ini updates.json --synced
    Sequence {
        file: PathBuf,
        /// Fsync the value on every node (synced_sequence).
        #[arg(long)]
        synced: bool,
    },
    /// Name the master.
    ///
    /// Example: arakoon-admin client who-master -c cluster.ini
    WhoMaster,
    /// The master's statistics.
    ///
    /// Example: arakoon-admin client statistics -c cluster.ini --json
    Statistics,
    /// The protocol version the master speaks.
    ///
    /// Example: arakoon-admin client version -c cluster.ini
    Version,
    /// Whether the master expects to make progress (a quorum is up).
    ///
    /// Example: arakoon-admin client expect-progress -c cluster.ini
    ExpectProgress,
    /// Ask the master to give up its lease, so that another node becomes master (asks first;
    /// --yes skips the question).
    ///
    /// Example: arakoon-admin client drop-master -c cluster.ini --yes
    DropMaster {
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
    /// Decide an empty value (a round trip through consensus).
    ///
    /// Example: arakoon-admin client nop -c cluster.ini
    Nop,
    /// One node's view of itself (its role, slots, master), asked of that node directly.
    ///
    /// NODE is a node name of the configuration, or one of the --node addresses.
    ///
    /// Example: arakoon-admin client node-state -c cluster.ini n1
    NodeState { node: String },
    /// The version one node reports, asked of that node directly.
    ///
    /// Example: arakoon-admin client node-version -c cluster.ini n1
    NodeVersion { node: String },
    /// The number of keys in the store.
    ///
    /// Example: arakoon-admin client key-count -c cluster.ini
    KeyCount,
    /// Collapse one running node's TLog: fold all but the open file and the last --keep sealed
    /// ones into its head (<tlog_dir>/head.db) and remove them, without stopping it. Files a
    /// catch-up is reading are kept (the node's log says so); a second collapse at once is
    /// refused. --keep must be at least 1, as on Arakoon.
    ///
    /// Example: arakoon-admin client collapse-tlogs -c cluster.ini --keep 2 n1
    CollapseTlogs {
        /// The node to collapse (a name of the configuration, or one of the --node addresses).
        node: String,
        /// Sealed TLog files to keep besides the open one.
        #[arg(long, value_name = "N")]
        keep: u32,
    },
    /// Bring one running node's head up to its committed slot, then collapse as collapse-tlogs.
    /// Refused on the master (0x20), as on Arakoon: run it on a slave.
    ///
    /// Example: arakoon-admin client copy-db-to-head -c cluster.ini --keep 1 n1
    CopyDbToHead {
        node: String,
        #[arg(long, value_name = "N")]
        keep: u32,
    },
}

pub fn run(args: ClientArgs) -> Result<i32, Failure> {
    let config = args.connect.client_config()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::new(Exit::Declined, format!("cannot start the runtime: {e}")))?;
    let (human, json) = runtime.block_on(execute(config, args.command))?;
    if args.json {
        println!("{json}");
    } else if !human.is_empty() {
        println!("{human}");
    }
    Ok(0)
}

fn consistency(read: &ReadArgs) -> Result<Consistency, Failure> {
    match read.consistency.as_str() {
        "consistent" => Ok(Consistency::Consistent),
        "dirty" => Ok(Consistency::NoGuarantees),
        other => other
            .strip_prefix("at-least:")
            .and_then(|i| i.parse().ok())
            .map(Consistency::AtLeast)
            .ok_or_else(|| {
                Failure::new(
                    Exit::Usage,
                    format!(
                        "--consistency {other:?}: say consistent, dirty or at-least:I (I a slot)"
                    ),
                )
            }),
    }
}

fn range(args: &RangeArgs) -> Range {
    Range {
        first: args.first.as_ref().map(|k| k.as_bytes().to_vec()),
        first_inclusive: !args.exclude_first,
        last: args.last.as_ref().map(|k| k.as_bytes().to_vec()),
        last_inclusive: args.include_last,
        max: args.max,
    }
}

fn keys_out(keys: &[Vec<u8>]) -> (String, Json) {
    let text: Vec<String> = keys.iter().map(|k| escape(k)).collect();
    (text.join("\n"), json!({ "keys": text }))
}

fn entries_out(entries: &[(Vec<u8>, Vec<u8>)]) -> (String, Json) {
    let lines: Vec<String> =
        entries.iter().map(|(k, v)| format!("{}\t{}", escape(k), escape(v))).collect();
    let list: Vec<Json> =
        entries.iter().map(|(k, v)| json!({"key": escape(k), "value": escape(v)})).collect();
    (lines.join("\n"), json!({ "entries": list }))
}

fn ok() -> (String, Json) {
    ("ok".to_string(), json!({"ok": true}))
}

/// Runs one command; returns its text and its JSON.
async fn execute(config: ClientConfig, command: ClientCommand) -> Result<(String, Json), Failure> {
    let mut client = Client::new(learn_names(config).await);
    let c = &mut client;
    use ClientCommand as C;
    let f = client_failure;
    Ok(match command {
        C::Get { key, read } => {
            let req = Request::Get { c: consistency(&read)?, key: key.as_bytes().to_vec() };
            let v = match read_request(c, &req, &format!("get {key:?}")).await? {
                Payload::String(v) => v,
                other => return Err(unexpected(&req, other)),
            };
            (escape(&v), json!({"key": escape(key.as_bytes()), "value": escape(&v)}))
        }
        C::Set { key, value } => {
            c.set(key.as_bytes(), value.as_bytes())
                .await
                .map_err(|e| f(&format!("set {key:?}"), e))?;
            ok()
        }
        C::Delete { key } => {
            c.delete(key.as_bytes()).await.map_err(|e| f(&format!("delete {key:?}"), e))?;
            ok()
        }
        C::Range(args) => {
            let req = Request::Range { c: consistency(&args.read)?, range: range(&args) };
            match read_request(c, &req, "range").await? {
                Payload::Keys(keys) => keys_out(&keys),
                other => return Err(unexpected(&req, other)),
            }
        }
        C::RangeEntries(args) => {
            let req = Request::RangeEntries { c: consistency(&args.read)?, range: range(&args) };
            match read_request(c, &req, "range_entries").await? {
                Payload::Entries(entries) => entries_out(&entries),
                other => return Err(unexpected(&req, other)),
            }
        }
        C::Prefix { prefix, max, read } => {
            let req = Request::PrefixKeys {
                c: consistency(&read)?,
                prefix: prefix.as_bytes().to_vec(),
                max,
            };
            match read_request(c, &req, &format!("prefix_keys {prefix:?}")).await? {
                Payload::Keys(keys) => keys_out(&keys),
                other => return Err(unexpected(&req, other)),
            }
        }
        C::DeletePrefix { prefix, yes } => {
            if !yes && !confirm(&format!("delete every key that starts with {prefix:?}?"))? {
                return Err(Failure::new(Exit::Declined, "nothing deleted"));
            }
            let n = c
                .delete_prefix(prefix.as_bytes())
                .await
                .map_err(|e| f(&format!("delete_prefix {prefix:?}"), e))?;
            (format!("deleted {n} keys"), json!({"deleted": n}))
        }
        C::TestAndSet { key, expected, wanted } => {
            let before = c
                .test_and_set(
                    key.as_bytes(),
                    expected.as_deref().map(str::as_bytes),
                    wanted.as_deref().map(str::as_bytes),
                )
                .await
                .map_err(|e| f(&format!("test_and_set {key:?}"), e))?;
            let shown = before.as_deref().map(escape);
            let changed = before.as_deref() == expected.as_deref().map(str::as_bytes);
            let text = format!(
                "{} (value before: {})",
                if changed { "set" } else { "unchanged: the value was not the one expected" },
                shown.as_deref().unwrap_or("none")
            );
            (text, json!({"previous": shown, "changed": changed}))
        }
        C::Sequence { file, synced } => {
            let updates = read_sequence(&file)?;
            let n = updates.len();
            c.sequence(updates, synced).await.map_err(|e| f("sequence", e))?;
            (format!("ok: {n} updates applied"), json!({"ok": true, "updates": n}))
        }
        C::WhoMaster => {
            let m = c.who_master().await.map_err(|e| f("who_master", e))?;
            (m.clone().unwrap_or_else(|| "(no master)".into()), json!({"master": m}))
        }
        C::Statistics => {
            let bytes = c.statistics().await.map_err(|e| f("statistics", e))?;
            match statistics::decode(&bytes).map(|(_, v)| stat_json(&v)) {
                Some(value) => (statistics_text(&value, ""), value),
                None => (escape(&bytes), json!({"raw": escape(&bytes)})),
            }
        }
        C::Version => {
            let (major, minor, patch, info) = c.version().await.map_err(|e| f("version", e))?;
            version_out(major, minor, patch, &info)
        }
        C::ExpectProgress => {
            let yes =
                c.expect_progress_possible().await.map_err(|e| f("expect_progress_possible", e))?;
            (
                if yes {
                    "yes: the master expects progress"
                } else {
                    "no: progress is not possible now"
                }
                .to_string(),
                json!({"progress_possible": yes}),
            )
        }
        C::DropMaster { yes } => {
            if !yes && !confirm("ask the master to drop its lease (a new election follows)?")? {
                return Err(Failure::new(Exit::Declined, "nothing changed"));
            }
            let before = c.who_master().await.map_err(|e| f("who_master", e))?;
            c.drop_master().await.map_err(|e| f("drop_master", e))?;
            (
                format!("ok: {} dropped its mastership", before.as_deref().unwrap_or("the master")),
                json!({"ok": true, "dropped": before}),
            )
        }
        C::Nop => {
            c.nop().await.map_err(|e| f("nop", e))?;
            ok()
        }
        C::NodeState { node } => {
            let k = node_of(c.config(), &node)?;
            let state = match ask(c, k, &node, &Request::NodeState).await? {
                Payload::NodeState(s) => *s,
                other => {
                    return Err(Failure::new(
                        Exit::Refused,
                        format!("{node}: unexpected reply {other:?}"),
                    ))
                }
            };
            let fields = json!({
                "name": state.name,
                "role": arakoon_node::protocol::node_state::role_name(state.role),
                "master": state.master,
                "lease_valid": state.lease_valid,
                "promised": state.promised,
                "last": state.last,
                "committed": state.committed,
                "applied": state.applied,
                "learner": state.learner,
            });
            (state.to_string(), json!({"node": node, "state": state.to_string(), "fields": fields}))
        }
        C::CollapseTlogs { node, keep } => collapse(c, &node, keep, false).await?,
        C::CopyDbToHead { node, keep } => collapse(c, &node, keep, true).await?,
        C::NodeVersion { node } => {
            let k = node_of(c.config(), &node)?;
            match ask(c, k, &node, &Request::Version).await? {
                Payload::Version { major, minor, patch, info } => {
                    let (text, mut json) = version_out(major, minor, patch, &info);
                    json["node"] = json!(node);
                    (text, json)
                }
                other => {
                    return Err(Failure::new(
                        Exit::Refused,
                        format!("{node}: unexpected reply {other:?}"),
                    ))
                }
            }
        }
        C::KeyCount => {
            let n = c.get_key_count().await.map_err(|e| f("get_key_count", e))?;
            (n.to_string(), json!({"key_count": n}))
        }
    })
}

fn unexpected(req: &Request, payload: Payload) -> Failure {
    Failure::new(Exit::Refused, format!("{}: unexpected reply {payload:?}", req.name()))
}

/// A read: a consistent one goes to the master (found and confirmed by the client); a dirty or
/// at-least one is served by the first node, in the order given, that answers, so that naming
/// one node reads from that node.
async fn read_request(client: &mut Client, req: &Request, what: &str) -> Result<Payload, Failure> {
    client.read(req).await.map_err(|e| match e {
        ReadError::Master(e) => client_failure(what, e),
        ReadError::Refused { node, rc, message } => {
            client_failure(&format!("{what} on {node}"), ClientError::Failed { rc, message })
        }
        e @ ReadError::NoNodeAnswered { .. } => {
            Failure::new(Exit::Unreachable, format!("{what}: {e}"))
        }
    })
}

fn version_out(major: i32, minor: i32, patch: i32, info: &str) -> (String, Json) {
    (
        format!("{major}.{minor}.{patch} {info}").trim_end().to_string(),
        json!({"major": major, "minor": minor, "patch": patch, "info": info}),
    )
}

/// A node by configured name or by the address it was given as.
/// collapse_tlogs / copy_db_to_head on one node, printing each step on stderr as it arrives.
/// Arakoon's wire steps carry a time only; what each step did is in the node's log.
async fn collapse(
    c: &Client,
    node: &str,
    keep: u32,
    copy_db: bool,
) -> Result<(String, Json), Failure> {
    let k = node_of(c.config(), node)?;
    let (cluster_id, addr) = (c.config().cluster_id.clone(), c.config().nodes[k].1);
    let mut steps = Vec::new();
    let result = arakoon_node::client::head::request_collapse(
        &arakoon_node::server::env::TokioNet,
        addr,
        &cluster_id,
        i32::try_from(keep).unwrap_or(i32::MAX),
        copy_db,
        &mut |n, ms| {
            eprintln!("{node}: step {n} done at {ms} ms");
            steps.push(ms);
        },
    )
    .await;
    let total =
        result.map_err(|e| Failure::new(Exit::Unreachable, format!("{node}: collapse: {e}")))?;
    let files = arakoon_node::protocol::client::collapsed_files(total);
    let text = if copy_db {
        format!(
            "{node}: the head is at the committed slot; TLog files beyond the last {keep} removed"
        )
    } else if total == 0 {
        format!(
            "{node}: nothing to collapse (at most {keep} sealed TLog files besides the open one)"
        )
    } else {
        format!("{node}: collapsed: {files} TLog file(s) folded into the head in {total} steps")
    };
    Ok((text, json!({"node": node, "steps": total, "step_ms": steps, "collapsed": files})))
}

fn node_of(config: &ClientConfig, node: &str) -> Result<usize, Failure> {
    config.node_index(node).map_err(|e| Failure::new(Exit::BadInput, e.to_string()))
}

/// Asks node `k` directly, without master discovery.
async fn ask(client: &Client, k: usize, node: &str, request: &Request) -> Result<Payload, Failure> {
    match client.ask(k, request).await {
        Ok(Reply::Ok(payload)) => Ok(payload),
        Ok(Reply::Failed { rc, message }) => Err(client_failure(
            &format!("{node}: {}", request.name()),
            ClientError::Failed { rc, message },
        )),
        Err(e) => {
            Err(Failure::new(Exit::Unreachable, format!("{node}: {e}; is the node running?")))
        }
    }
}

/// Reads the updates of `sequence` from a JSON file (`-`: stdin).
fn read_sequence(file: &PathBuf) -> Result<Vec<Update>, Failure> {
    let name = file.display().to_string();
    let text = if name == "-" {
        std::io::read_to_string(std::io::stdin())
    } else {
        std::fs::read_to_string(file)
    }
    .map_err(|e| Failure::new(Exit::BadInput, format!("{name}: cannot read: {e}")))?;
    parse_sequence(&text).map_err(|e| Failure::new(Exit::BadInput, format!("{name}: {e}")))
}

/// A statistics tree as JSON: a list is an object of its named values.
fn stat_json(value: &StatValue) -> Json {
    match value {
        StatValue::Int32(n) => json!(n),
        StatValue::Int64(n) => json!(n),
        StatValue::Float(x) => json!(x),
        StatValue::Text(t) => json!(t),
        StatValue::List(items) => {
            Json::Object(items.iter().map(|(k, v)| (k.clone(), stat_json(v))).collect())
        }
    }
}

fn statistics_text(value: &Json, prefix: &str) -> String {
    match value {
        Json::Object(items) => items
            .iter()
            .map(|(k, v)| match v {
                Json::Object(_) => statistics_text(v, &format!("{prefix}{k}.")),
                Json::String(s) => format!("{prefix}{k}: {s}"),
                other => format!("{prefix}{k}: {other}"),
            })
            .collect::<Vec<_>>()
            .join("\n"),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_node_s_statistics_decode() {
        let mut stats = arakoon_node::shell::statistics::Statistics::new(1000);
        stats.record(arakoon_node::shell::statistics::Op::Set, 1000, 1200, 3);
        let mem =
            arakoon_node::shell::statistics::MemFigures { maxrss_kib: 2048, ..Default::default() };
        let bytes = stats.encode(&[("n0".into(), 5)], &mem);
        let (name, value) = statistics::decode(&bytes).expect("decodes");
        let value = stat_json(&value);
        assert_eq!(name, "arakoon_stats");
        assert_eq!(value["mem_maxrss"], 2048, "{value}");
        assert_eq!(value["set_info"]["n"], 1, "{value}");
        assert_eq!(value["node_is"]["n0"], 5, "{value}");
    }

    #[test]
    fn statistics_decode_into_named_values() {
        use arakoon_node::llio::Put;
        let mut out = Vec::new();
        out.put_i32(5);
        out.put_bytes(b"arakoon_stats");
        out.put_i32(3);
        // Items come in order (Llio.named_field_to).
        out.put_i32(4);
        out.put_bytes(b"role");
        out.put_bytes(b"master");
        out.put_i32(2);
        out.put_bytes(b"applied");
        out.put_i64(7);
        out.put_i32(1);
        out.put_bytes(b"mem_maxrss");
        out.put_i32(3);
        let (name, value) = statistics::decode(&out).unwrap();
        assert_eq!(name, "arakoon_stats");
        let value = stat_json(&value);
        assert_eq!(value, json!({"applied": 7, "mem_maxrss": 3, "role": "master"}));
        assert_eq!(statistics_text(&value, ""), "applied: 7\nmem_maxrss: 3\nrole: master");
    }
}
