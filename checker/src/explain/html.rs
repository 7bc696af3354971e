//! The report as one self-contained HTML page (inline CSS and script, no network): a timeline
//! with one lane per process and one bar per operation. Time is drawn by rank (each distinct
//! call or return time is one step), so bursts and idle stretches read alike. Operations of the
//! longest linearizable prefix carry their position in it; hovering a bar shows the operation,
//! its times and the state after it; the operation that cannot be placed is red, and the
//! counterexample gets a timeline of its own.

use crate::check::{OpView, Report, Stuck, Verdict};
use crate::history::Outcome;
use std::collections::{BTreeSet, HashMap};
use std::fmt::Write;

const LANE_PX: usize = 30;
const LEFT_PX: usize = 110;
const WIDTH_TARGET_PX: usize = 1400;

/// Text made safe inside HTML elements and quoted attributes (arakoon-admin's drill timelines
/// use it too).
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// What to mark on a timeline.
struct Marks<'a> {
    stuck: Option<&'a Stuck>,
    /// Operations to outline (the counterexample, on the full timeline).
    outlined: &'a BTreeSet<usize>,
    /// Operations drawn faded: the context of a counterexample, which may or may not have
    /// taken effect.
    faded: &'a BTreeSet<usize>,
}

fn timeline(out: &mut String, title: &str, ops: &[OpView], marks: &Marks<'_>) {
    let mut times: Vec<u64> = ops.iter().flat_map(|o| [Some(o.call), o.ret]).flatten().collect();
    times.sort_unstable();
    times.dedup();
    let rank: HashMap<u64, usize> = times.iter().enumerate().map(|(i, &t)| (t, i)).collect();
    let step = (WIDTH_TARGET_PX / times.len().max(1)).clamp(6, 60);
    let end_x = LEFT_PX + (times.len() + 1) * step;
    let mut processes: Vec<u64> = ops.iter().map(|o| o.process).collect();
    processes.sort_unstable();
    processes.dedup();
    let lane: HashMap<u64, usize> = processes.iter().enumerate().map(|(i, &p)| (p, i)).collect();
    let height = processes.len() * LANE_PX + 30;
    let position: HashMap<usize, (usize, &str)> = marks.stuck.map_or_else(HashMap::new, |s| {
        s.prefix
            .iter()
            .enumerate()
            .map(|(k, p)| (p.index, (k + 1, p.state_after.as_str())))
            .collect()
    });
    let blocking = marks.stuck.map(|s| s.blocking);

    let _ = writeln!(out, "<h2>{}</h2>", esc(title));
    let _ = writeln!(
        out,
        "<div class=\"scroll\"><svg width=\"{}\" height=\"{height}\" xmlns=\"http://www.w3.org/2000/svg\">",
        end_x + 20
    );
    for (i, p) in processes.iter().enumerate() {
        let y = i * LANE_PX + 20;
        let _ = writeln!(
            out,
            "<line class=\"lane\" x1=\"{LEFT_PX}\" y1=\"{}\" x2=\"{end_x}\" y2=\"{}\"/><text class=\"pname\" x=\"4\" y=\"{}\">process {p}</text>",
            y + LANE_PX / 2,
            y + LANE_PX / 2,
            y + LANE_PX / 2 + 4
        );
    }
    for op in ops {
        let x1 = LEFT_PX + rank[&op.call] * step;
        let x2 = op.ret.map_or(end_x, |r| LEFT_PX + rank[&r] * step + step / 2).max(x1 + 4);
        let y = lane[&op.process] * LANE_PX + 24;
        let mut class = match op.outcome {
            Outcome::Ok => "op ok".to_string(),
            Outcome::Fail => "op fail".to_string(),
            Outcome::Unknown => "op unknown".to_string(),
        };
        if blocking == Some(op.index) {
            class.push_str(" blocking");
        }
        if marks.outlined.contains(&op.index) {
            class.push_str(" outlined");
        }
        if marks.faded.contains(&op.index) {
            class.push_str(" faded");
        }
        let (label, state) = match position.get(&op.index) {
            Some((k, state)) => (format!("{k}. {}", op.text), format!("state after: {state}")),
            None if blocking == Some(op.index) => (
                format!("✗ {}", op.text),
                "cannot be placed after the longest linearizable prefix".to_string(),
            ),
            None => (op.text.clone(), "not in the longest linearizable prefix".to_string()),
        };
        let ret = op.ret.map_or_else(|| "never".to_string(), |r| r.to_string());
        let line = op.line.map_or_else(String::new, |l| format!(", line {l}"));
        let info = format!(
            "#{}{line}: process {}, {} [{}, {ret}], {:?}\n{state}",
            op.index, op.process, op.text, op.call, op.outcome
        );
        let _ = writeln!(
            out,
            "<g class=\"{class}\" data-info=\"{}\"><title>{}</title><rect x=\"{x1}\" y=\"{y}\" width=\"{}\" height=\"{}\" rx=\"3\"/>\
             <svg x=\"{}\" y=\"{y}\" width=\"{}\" height=\"{}\"><text x=\"0\" y=\"15\">{}</text></svg></g>",
            esc(&info),
            esc(&info),
            x2 - x1,
            LANE_PX - 8,
            x1 + 3,
            (x2 - x1).saturating_sub(5),
            LANE_PX - 8,
            esc(&label)
        );
    }
    let _ = writeln!(out, "</svg></div>");
}

const STYLE: &str = "body{font-family:sans-serif;margin:20px;color:#222}
.verdict{font-size:22px;font-weight:bold;padding:8px 12px;border-radius:6px;display:inline-block}
.v-linearizable{background:#d9f2d9}.v-not-linearizable{background:#f8d0d0}.v-unknown{background:#f5e6b8}
.scroll{overflow-x:auto;border:1px solid #ccc;margin-bottom:16px}
.lane{stroke:#eee}.pname{font-size:12px;fill:#555}
.op rect{fill:#cfe0f7;stroke:#5b84c4}.op.fail rect{fill:#e4e4e4;stroke:#aaa;stroke-dasharray:3 2}
.op.unknown rect{fill:#fbe3c6;stroke:#d08a2e;stroke-dasharray:5 3}
.op.outlined rect{stroke:#222;stroke-width:2.5}.op.faded{opacity:.45}.op.blocking rect{fill:#f6b3b3;stroke:#c00;stroke-width:3}
.op text{font-size:11px;font-family:monospace}.op:hover rect{fill:#fff7a8}
#info{position:sticky;top:0;background:#fffbe0;border:1px solid #e0d890;padding:6px 10px;white-space:pre-wrap;font-family:monospace;min-height:2.6em}
pre{background:#f6f6f6;padding:10px;overflow-x:auto}";

const SCRIPT: &str = "document.querySelectorAll('g.op').forEach(function(g){
g.addEventListener('mouseenter',function(){document.getElementById('info').textContent=g.getAttribute('data-info');});});";

/// The page for `report`. `ops` is what to draw when there is no violation (the whole history,
/// or nothing); a violation brings its own operations.
pub fn render_html(report: &Report, title: &str, ops: &[OpView], text: &str) -> String {
    let mut out = String::new();
    let (class, word) = match report.verdict {
        Verdict::Linearizable => ("v-linearizable", "linearizable"),
        Verdict::NotLinearizable => ("v-not-linearizable", "not linearizable"),
        Verdict::Unknown => ("v-unknown", "unknown: no verdict"),
    };
    let _ = writeln!(
        out,
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{}</title><style>{STYLE}</style></head><body>",
        esc(title)
    );
    let _ = writeln!(out, "<h1>{}</h1><div class=\"verdict {class}\">{word}</div>", esc(title));
    let _ = writeln!(
        out,
        "<p>{} operations, {} partitions, checked in {:.1} ms. Hover an operation for details.</p><div id=\"info\"> </div>",
        report.operations,
        report.partitions,
        report.elapsed.as_secs_f64() * 1e3
    );
    let none = BTreeSet::new();
    if let Some(v) = &report.violation {
        let kept: BTreeSet<usize> = v.counterexample.iter().map(|o| o.index).collect();
        let context: BTreeSet<usize> = v.context.iter().map(|o| o.index).collect();
        let minimal = if v.counterexample_minimal { ", every one needed" } else { "" };
        let mut both = v.counterexample.clone();
        both.extend(v.context.iter().cloned());
        both.sort_by_key(|o| (o.call, o.index));
        timeline(
            &mut out,
            &format!(
                "Counterexample: {} of {} operations cannot all be explained as recorded{minimal}; \
                 not even if the {} faded ones may or may not have taken effect",
                v.counterexample.len(),
                v.ops.len(),
                v.context.len()
            ),
            &both,
            &Marks { stuck: Some(&v.counterexample_stuck), outlined: &none, faded: &context },
        );
        let part = if v.partition.is_empty() {
            "the history".to_string()
        } else {
            format!("partition {}", v.partition)
        };
        timeline(
            &mut out,
            &format!(
                "All {} operations of {part}: numbered in the longest linearizable prefix ({}), counterexample outlined",
                v.ops.len(),
                v.stuck.prefix.len()
            ),
            &v.ops,
            &Marks { stuck: Some(&v.stuck), outlined: &kept, faded: &none },
        );
    } else if !ops.is_empty() {
        timeline(
            &mut out,
            &format!("{} operations", ops.len()),
            ops,
            &Marks { stuck: None, outlined: &none, faded: &none },
        );
    }
    let _ = writeln!(out, "<h2>Report</h2><pre>{}</pre>", esc(text));
    let _ = writeln!(out, "<script>{SCRIPT}</script></body></html>");
    out
}
