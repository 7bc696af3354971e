//! The report as text for a terminal: the verdict first, then, for a violation, the operation
//! that cannot be placed, the end of the longest linearizable prefix, and the counterexample.

use crate::check::{OpView, Report, Stuck, Verdict, Violation};
use std::fmt::Write;

/// Prefix steps shown before eliding the earlier ones.
const PREFIX_SHOWN_MAX: usize = 12;
/// Context operations of a counterexample shown before eliding the later ones.
const CONTEXT_SHOWN_MAX: usize = 20;

/// `#17 line 34  process 0  [34, 35]  get("7") -> "x"  ok`
pub fn op_line(op: &OpView) -> String {
    let line = op.line.map_or_else(String::new, |l| format!(" line {l}"));
    let ret = op.ret.map_or_else(|| "never".to_string(), |r| r.to_string());
    let outcome = match op.outcome {
        crate::Outcome::Ok => "ok",
        crate::Outcome::Fail => "failed",
        crate::Outcome::Unknown => "unknown outcome",
    };
    format!(
        "#{}{line}  process {}  [{}, {ret}]  {}  {outcome}",
        op.index, op.process, op.call, op.text
    )
}

fn find(ops: &[OpView], index: usize) -> Option<&OpView> {
    ops.iter().find(|o| o.index == index)
}

fn write_stuck(out: &mut String, ops: &[OpView], stuck: &Stuck) {
    let blocking =
        find(ops, stuck.blocking).map_or_else(|| format!("#{}", stuck.blocking), op_line);
    let state = stuck.prefix.last().map_or(&stuck.initial_state, |s| &s.state_after);
    let _ = writeln!(out, "  cannot be placed: {blocking}");
    let why = if stuck.refused {
        "the model refuses it there"
    } else {
        "it fits there, but nothing that must follow it does"
    };
    let _ = writeln!(
        out,
        "  after the longest linearizable prefix ({} operations, state {state}), {why};\n  \
         no linearizable prefix is longer",
        stuck.prefix.len()
    );
    let skipped = stuck.prefix.len().saturating_sub(PREFIX_SHOWN_MAX);
    let _ =
        writeln!(out, "  the prefix, in linearization order, from state {}:", stuck.initial_state);
    if skipped > 0 {
        let _ =
            writeln!(out, "    ... {skipped} earlier operations (all of them in --format json)");
    }
    for (k, step) in stuck.prefix.iter().enumerate().skip(skipped) {
        let text =
            find(ops, step.index).map_or_else(|| format!("#{}", step.index), |o| o.text.clone());
        let _ = writeln!(out, "    {:>4}. #{} {text}  => {}", k + 1, step.index, step.state_after);
    }
}

fn write_violation(out: &mut String, v: &Violation) {
    let part = if v.partition.is_empty() {
        String::new()
    } else {
        format!(" in partition {}", v.partition)
    };
    let _ = writeln!(out, "Violation{part} ({} operations):", v.ops.len());
    write_stuck(out, &v.ops, &v.stuck);
    let minimal = if v.counterexample_minimal {
        "every one is needed"
    } else {
        "shrinking stopped before it was minimal"
    };
    let _ = writeln!(
        out,
        "\nCounterexample: {} of the {} operations cannot all be explained as recorded \
         ({minimal}):",
        v.counterexample.len(),
        v.ops.len()
    );
    for op in &v.counterexample {
        let _ = writeln!(out, "    {}", op_line(op));
    }
    if !v.context.is_empty() {
        let _ = writeln!(
            out,
            "  not even if these {} may or may not have taken effect (within their call and \
             return; one of unknown outcome, at any time after its call):",
            v.context.len()
        );
        let skipped = v.context.len().saturating_sub(CONTEXT_SHOWN_MAX);
        for op in &v.context[..v.context.len() - skipped] {
            let _ = writeln!(out, "    {}", op_line(op));
        }
        if skipped > 0 {
            let _ = writeln!(out, "    ... and {skipped} more (all of them in --format json)");
        }
    }
    let _ = writeln!(out, "  why:");
    let mut both = v.counterexample.clone();
    both.extend(v.context.iter().cloned());
    write_stuck(out, &both, &v.counterexample_stuck);
}

/// The whole report as text.
pub fn render_text(report: &Report) -> String {
    let mut out = String::new();
    let ms = report.elapsed.as_secs_f64() * 1e3;
    let scope = format!(
        "{} operations, {} partition{}, {ms:.1} ms, {} configurations",
        report.operations,
        report.partitions,
        if report.partitions == 1 { "" } else { "s" },
        report.stats.configurations
    );
    match report.verdict {
        Verdict::Linearizable => {
            let _ = writeln!(out, "LINEARIZABLE ({scope})");
        }
        Verdict::NotLinearizable => {
            let _ = writeln!(out, "NOT LINEARIZABLE ({scope})\n");
            if let Some(v) = &report.violation {
                write_violation(&mut out, v);
            }
        }
        Verdict::Unknown => {
            let _ = writeln!(out, "UNKNOWN: no verdict ({scope})");
            if let Some(u) = &report.unfinished {
                let _ = writeln!(out, "  {}; unfinished partitions:", u.reason);
                for p in &u.partitions {
                    let name = if p.name.is_empty() { "(whole history)" } else { &p.name };
                    let _ = writeln!(out, "    {name}: {} operations", p.operations);
                }
            }
        }
    }
    out
}
