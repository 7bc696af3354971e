//! A drill report's HTML timeline: one self-contained page (inline SVG, no scripts, nothing
//! fetched) with a lane per client (each operation a bar from call to return, coloured by
//! outcome), a lane per node (its role over time, a mark where it became master and where its
//! process started again), and the drill's faults as shaded bands across all lanes.
//!
//! The checker draws its own timeline (`arakoon_checker::explain::html`) and this one shares
//! its escaping; the two are kept apart because they draw different things on different axes:
//! the checker's places one history's operations by rank (each distinct call or return time is
//! a step) and marks the linearizable prefix, this one draws wall-clock (or simulated) ms, so
//! that operations, role changes of nodes and fault bands line up in time.

use super::DrillOutcome as Report;
use arakoon_checker::explain::html::esc as html;
use std::fmt::Write as _;

const WIDTH: f64 = 1400.0;
const LANE_H: f64 = 18.0;
/// Where the lanes start (the labels sit left of it).
const LEFT: f64 = 160.0;
const TOP: f64 = 30.0;

fn role_color(role: &str) -> &'static str {
    match role {
        "master" => "#36c",
        "slave" => "#9bd",
        "candidate" => "#c9f",
        "catching_up" => "#fc6",
        "paused" => "#888",
        "starting" => "#eee",
        _ => "#fff",
    }
}

/// The page for `r`.
pub fn html_page(r: &Report) -> String {
    let d = &r.drill;
    let end_ms = r.end_ms.max(1) as f64;
    let x = |ms: f64| LEFT + ms / end_ms * (WIDTH - LEFT - 10.0);
    let lanes_clients = r.client_lanes.max(1);
    let nodes = d.cluster.nodes;
    let height = TOP + 10.0 + (lanes_clients + nodes) as f64 * LANE_H + 40.0;
    let mut svg = String::new();
    let _ = write!(svg, "<svg xmlns='http://www.w3.org/2000/svg' width='{WIDTH}' height='{height}' font-family='monospace' font-size='11'>");
    // Fault bands: from each fault to the next one.
    for (k, (at, what)) in r.fault_log.iter().enumerate() {
        let next = r.fault_log.get(k + 1).map_or(*at as f64 + end_ms / 100.0, |(t, _)| *t as f64);
        let (x0, x1) = (x(*at as f64), x(next).max(x(*at as f64) + 2.0));
        let _ = write!(
            svg,
            "<rect x='{x0:.1}' y='20' width='{:.1}' height='{:.1}' fill='#f4a' fill-opacity='0.12'><title>{}ms: {}</title></rect><text x='{x0:.1}' y='14' fill='#a04'>{}</text>",
            x1 - x0,
            height - 40.0,
            at,
            html(what),
            html(&what.chars().take(24).collect::<String>())
        );
    }
    for c in 0..lanes_clients {
        let y = TOP + c as f64 * LANE_H;
        let label =
            if c < d.workload.clients { format!("client {c}") } else { "final reads".into() };
        let _ = write!(svg, "<text x='4' y='{:.1}'>{label}</text>", y + 12.0);
    }
    for op in &r.ops {
        let lane = (op.process % lanes_clients as u64) as f64;
        let y = TOP + lane * LANE_H;
        let call = op.call_us as f64 / 1000.0;
        let ret = op.ret_us.map_or(end_ms, |t| t as f64 / 1000.0);
        let color = match op.outcome {
            "ok" => "#4a4",
            "fail" => "#bbb",
            _ => "#e90",
        };
        let (x0, x1) = (x(call), x(ret));
        let _ = write!(
            svg,
            "<rect x='{x0:.2}' y='{:.1}' width='{:.2}' height='{:.1}' fill='{color}'><title>{} {} ({:.1}–{:.1} ms)</title></rect>",
            y + 2.0,
            (x1 - x0).max(0.5),
            LANE_H - 4.0,
            html(&op.label),
            op.outcome,
            call,
            ret
        );
    }
    for k in 0..nodes {
        let y = TOP + (lanes_clients + k) as f64 * LANE_H;
        let _ = write!(svg, "<text x='4' y='{:.1}'>n{k}</text>", y + 12.0);
        let changes: Vec<&(u64, usize, String)> =
            r.roles.iter().filter(|(_, n, _)| *n == k).collect();
        for (j, (at, _, role)) in changes.iter().enumerate() {
            let until = changes.get(j + 1).map_or(end_ms, |(t, _, _)| *t as f64);
            let (x0, x1) = (x(*at as f64), x(until));
            let _ = write!(
                svg,
                "<rect x='{x0:.2}' y='{:.1}' width='{:.2}' height='{:.1}' fill='{}' stroke='#ccc' stroke-width='0.3'><title>n{k} {role} from {at} ms</title></rect>",
                y + 2.0,
                (x1 - x0).max(0.5),
                LANE_H - 4.0,
                role_color(role)
            );
            let was_master = j > 0 && changes[j - 1].2 == "master";
            if role == "master" && !was_master {
                let _ = write!(
                    svg,
                    "<line x1='{x0:.2}' x2='{x0:.2}' y1='{:.1}' y2='{:.1}' stroke='#014' stroke-width='2'><title>n{k} became master at {at} ms</title></line>",
                    y,
                    y + LANE_H
                );
            }
        }
        for (at, _) in r.restarts.iter().filter(|(_, n)| *n == k) {
            let x0 = x(*at as f64);
            let _ = write!(
                svg,
                "<path d='M{:.1},{:.1} l5,-7 l5,7 z' fill='#c30'><title>n{k} started again at {at} ms</title></path>",
                x0 - 5.0,
                y + LANE_H - 1.0
            );
        }
    }
    svg.push_str("</svg>");
    let verdict = if r.passed { "PASS" } else { "FAIL" };
    format!(
        "<!doctype html><html><head><meta charset='utf-8'><title>{name} seed {seed}</title>\
         <style>body{{font-family:sans-serif;margin:16px}}pre{{background:#f6f6f6;padding:8px}}</style></head><body>\
         <h1>{name}, seed {seed}: {verdict}</h1><p>{desc}</p><pre>{tier} tier, seed {seed}\n{verdict_text}\nreplay: {replay}</pre>\
         <p>Clients: green ok, grey failed (did not happen), orange unknown outcome. Nodes: blue master, light blue slave, \
         violet candidate, yellow catching up, grey paused, white down, pale grey starting (not answering yet); a dark \
         line where a node became master, a red triangle where its process started again. Shaded bands: the drill's \
         faults (hover for details).</p>\
         {svg}<h2>Faults</h2><pre>{faults}</pre></body></html>",
        name = html(&d.name),
        seed = r.seed,
        tier = r.tier.name(),
        desc = html(&d.description),
        verdict_text = html(&r.verdict),
        replay = html(&r.replay),
        faults = html(&r.fault_log.iter().map(|(t, l)| format!("{t}ms {l}\n")).collect::<String>()),
    )
}

#[cfg(test)]
pub(crate) mod tests {
    use crate::faults::Tier;
    use crate::history::OpSummary;
    use crate::outcome::DrillOutcome as Report;

    /// A small sandbox-tier outcome: two nodes, a kill, a master change, a restart.
    pub(crate) fn report() -> Report {
        let drill = crate::drill::parse(
            "name: t\ndescription: a <test>\ncluster: { nodes: 2 }\nworkload: { clients: 1 }\n\
             duration: 1s\nsteps:\n  - at: 100ms\n    kill: n0\n",
            "t.yaml",
            None,
        )
        .unwrap();
        let roles = [(0, 0, "master"), (0, 1, "slave"), (100, 0, "down"), (400, 1, "master")];
        Report {
            drill,
            tier: Tier::Sandbox,
            seed: 7,
            passed: true,
            verdict: "every check held".into(),
            replay: "arakoon-admin drill run t.yaml --tier sandbox --seed 7".into(),
            ops_ok: 1,
            ops_failed: 0,
            ops_unknown: 1,
            linearizability: "linearizable".into(),
            master_after_last_step_ms: Some(300),
            end_ms: 1000,
            histories: None,
            fault_log: vec![(100, "kill n0 <&>".into())],
            roles: roles.iter().map(|(t, k, r)| (*t, *k, r.to_string())).collect(),
            restarts: vec![(700, 0)],
            ops: vec![
                OpSummary {
                    process: 0,
                    call_us: 10_000,
                    ret_us: Some(20_000),
                    label: "set k0 \"a\"".into(),
                    outcome: "ok",
                },
                OpSummary {
                    process: 2,
                    call_us: 50_000,
                    ret_us: None,
                    label: "get k0".into(),
                    outcome: "unknown",
                },
            ],
            client_lanes: 2,
            extra: serde_json::Map::new(),
            trace: Vec::new(),
            logs: Vec::new(),
        }
    }

    #[test]
    fn the_page_has_client_and_node_lanes_master_changes_restarts_and_escaped_faults() {
        let page = super::html_page(&report());
        for wanted in [
            "client 0",
            "final reads",
            ">n0<",
            ">n1<",
            "n0 became master at 0 ms",
            "n1 became master at 400 ms",
            "n0 started again at 700 ms",
            "100ms: kill n0 &lt;&amp;&gt;",
            "a &lt;test&gt;",
            "sandbox tier, seed 7",
            "replay: arakoon-admin drill run t.yaml --tier sandbox --seed 7",
        ] {
            assert!(page.contains(wanted), "the page lacks {wanted:?}");
        }
        assert!(!page.contains("kill n0 <&>"), "a fault's text is not escaped");
        // The client that went on as a new process (2 = 0 + 2 lanes) keeps lane 0: both bars
        // are drawn at the first lane's height.
        assert_eq!(page.matches("y='32.0'").count(), 2, "{page}");
    }
}
