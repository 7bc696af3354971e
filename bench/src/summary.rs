//! Medians over repeated runs of a comparison (`arakoon-admin bench --compare etcd --runs N`).
//!
//! One run of a step on a 2-core machine moves by 10% and more from the next (the other
//! system's figures move as much), so a figure worth quoting is a median of several runs, and a
//! ratio worth quoting is taken within one run (both systems measured minutes apart, on the
//! same machine state) before its median is. A step's runs alternate between the systems.

use crate::{Op, StepResult, System};

/// One step (operation, value size, client count) over its runs.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct StepMedians {
    pub op: Op,
    pub value_size: usize,
    pub clients: usize,
    /// Runs in which both systems ran this step.
    pub runs: usize,
    pub arakoon_ops_per_second: f64,
    pub etcd_ops_per_second: f64,
    /// Arakoon's ops/s over etcd's within each run: the median, the lowest and the highest.
    pub ratio: f64,
    pub ratio_min: f64,
    pub ratio_max: f64,
    pub arakoon_p99_us: u64,
    pub etcd_p99_us: u64,
    /// The largest latency of any run.
    pub arakoon_max_us: u64,
    pub etcd_max_us: u64,
    /// Failed requests over all runs.
    pub arakoon_errors: u64,
    pub etcd_errors: u64,
    pub arakoon_cpu_us_per_op: f64,
    pub etcd_cpu_us_per_op: f64,
}

/// The median of `values` (the mean of the two middle ones for an even count); 0 for none.
pub fn median(values: &mut [f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

/// Every step's medians, in the order the steps first ran. A run counts for a step only when
/// both systems have a result for it (an interrupted comparison leaves a lone one out).
pub fn medians(results: &[StepResult]) -> Vec<StepMedians> {
    let key = |r: &StepResult| (r.op, r.value_size, r.clients);
    let mut steps: Vec<(Op, usize, usize)> = Vec::new();
    for r in results {
        if !steps.contains(&key(r)) {
            steps.push(key(r));
        }
    }
    let mut out = Vec::new();
    for step in steps {
        let of = |system| results.iter().filter(move |r| key(r) == step && r.system == system);
        let pairs: Vec<(&StepResult, &StepResult)> = of(System::Arakoon)
            .filter_map(|a| of(System::Etcd).find(|e| e.run == a.run).map(|e| (a, e)))
            .collect();
        if pairs.is_empty() {
            continue;
        }
        // The median of `f` over the runs, of arakoon's results (`etcd` false) or etcd's.
        let mid = |etcd: bool, f: fn(&StepResult) -> f64| {
            median(&mut pairs.iter().map(|p| f(if etcd { p.1 } else { p.0 })).collect::<Vec<_>>())
        };
        let mut ratios: Vec<f64> =
            pairs.iter().map(|(a, e)| a.ops_per_second / e.ops_per_second.max(1e-9)).collect();
        // Sorted by the median, so that the lowest and the highest are at the ends.
        let ratio = median(&mut ratios);
        let (op, value_size, clients) = step;
        out.push(StepMedians {
            op,
            value_size,
            clients,
            runs: pairs.len(),
            arakoon_ops_per_second: mid(false, |r| r.ops_per_second),
            etcd_ops_per_second: mid(true, |r| r.ops_per_second),
            ratio,
            ratio_min: ratios[0],
            ratio_max: ratios[ratios.len() - 1],
            arakoon_p99_us: mid(false, |r| r.p99_us as f64).round() as u64,
            etcd_p99_us: mid(true, |r| r.p99_us as f64).round() as u64,
            arakoon_max_us: pairs.iter().map(|p| p.0.max_us).max().unwrap_or(0),
            etcd_max_us: pairs.iter().map(|p| p.1.max_us).max().unwrap_or(0),
            arakoon_errors: pairs.iter().map(|p| p.0.errors).sum(),
            etcd_errors: pairs.iter().map(|p| p.1.errors).sum(),
            arakoon_cpu_us_per_op: mid(false, |r| r.server_cpu_us_per_op),
            etcd_cpu_us_per_op: mid(true, |r| r.server_cpu_us_per_op),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(system: System, clients: usize, run: usize, ops_per_second: f64) -> StepResult {
        StepResult {
            system,
            op: Op::Set,
            value_size: 100,
            clients,
            run,
            ops: ops_per_second as u64,
            errors: u64::from(run == 2),
            seconds: 1.0,
            ops_per_second,
            p50_us: 100,
            p99_us: 1_000 * run as u64,
            max_us: 5_000 * run as u64,
            server_cpu_us_per_op: 10.0 * run as f64,
            load_cpu_us_per_op: 1.0,
            first_error: None,
            stages: Vec::new(),
        }
    }

    /// Each row `(clients, run, arakoon's ops/s, etcd's)` as the two systems' results of a run.
    fn runs(rows: &[(usize, usize, f64, f64)]) -> Vec<StepResult> {
        let pair = |&(c, run, a, e): &(usize, usize, f64, f64)| {
            [step(System::Arakoon, c, run, a), step(System::Etcd, c, run, e)]
        };
        rows.iter().flat_map(pair).collect()
    }

    #[test]
    fn the_median_of_an_odd_and_an_even_count() {
        assert_eq!(median(&mut []), 0.0);
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), 2.5);
    }

    /// The ratio is taken within each run, then its median: here the runs' ratios are 2, 4
    /// and 2.5, so 2.5, while the medians of the ops/s alone (3,000 over 1,000) would say 3.
    #[test]
    fn ratios_are_taken_within_a_run_before_their_median() {
        let results = runs(&[
            (64, 1, 2_000.0, 1_000.0),
            (64, 2, 4_000.0, 1_000.0),
            (64, 3, 3_000.0, 1_200.0),
        ]);
        let m = medians(&results);
        assert_eq!(m.len(), 1);
        let m = &m[0];
        assert_eq!((m.runs, m.clients), (3, 64));
        assert_eq!(m.arakoon_ops_per_second, 3_000.0);
        assert_eq!(m.etcd_ops_per_second, 1_000.0);
        assert_eq!((m.ratio, m.ratio_min, m.ratio_max), (2.5, 2.0, 4.0));
        assert_eq!((m.arakoon_p99_us, m.arakoon_max_us), (2_000, 15_000));
        assert_eq!((m.arakoon_errors, m.etcd_errors), (1, 1));
        assert_eq!(m.arakoon_cpu_us_per_op, 20.0);
    }

    /// Steps keep the order they first ran in; a run that only one system finished (the
    /// comparison was interrupted) does not count.
    #[test]
    fn steps_keep_their_order_and_a_lone_run_is_left_out() {
        let mut results = runs(&[(1, 1, 4_000.0, 2_000.0), (64, 1, 30_000.0, 10_000.0)]);
        results.push(step(System::Arakoon, 1, 2, 5_000.0));
        let m = medians(&results);
        assert_eq!(m.iter().map(|s| (s.clients, s.runs)).collect::<Vec<_>>(), [(1, 1), (64, 1)]);
        assert_eq!(m[0].ratio, 2.0);
        assert_eq!(m[1].ratio, 3.0);
    }
}
