//! One judge for every tier: whether a run met the drill's expectations.

use crate::drill::{Drill, Expectation};

/// Whether a run met its drill's expectations, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub passed: bool,
    /// "every check held", what broke, or what was expected to break and did not.
    pub verdict: String,
}

/// Judges a run: `broke` is the first check that broke (a step, the settling, the history's
/// checks), if any; `master_after_ms` is how long after the last step a node held the lease.
/// For `expect: violation`, a break is the pass.
pub fn judge(drill: &Drill, mut broke: Option<String>, master_after_ms: Option<u64>) -> Verdict {
    if broke.is_none() {
        for e in &drill.expect {
            if let Expectation::MasterWithin(limit) = e {
                match master_after_ms {
                    Some(ms) if ms <= limit.0 => {}
                    Some(ms) => {
                        broke = Some(format!(
                            "master_within: the first master after the last step came after {ms}ms, not within {limit}"
                        ))
                    }
                    None => {
                        broke = Some(format!(
                            "master_within: no master after the last step (limit {limit})"
                        ))
                    }
                }
                break;
            }
        }
    }
    let (passed, verdict) = match (drill.expects_violation(), broke) {
        (false, None) => (true, "every check held".to_string()),
        (false, Some(b)) => (false, b),
        (true, Some(b)) => (true, format!("the expected violation: {b}")),
        (true, None) => (false, "expected a violation, but every check held".to_string()),
    };
    Verdict { passed, verdict }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drill::Millis;

    fn drill(expect: Vec<Expectation>) -> Drill {
        Drill {
            name: "t".into(),
            description: String::new(),
            cluster: Default::default(),
            workload: Default::default(),
            duration: Millis(1000),
            seeds: 0..1,
            tiers: Vec::new(),
            steps: Vec::new(),
            expect,
        }
    }

    #[test]
    fn a_late_or_missing_master_breaks_master_within_and_a_break_passes_expect_violation() {
        let d = drill(vec![Expectation::MasterWithin(Millis(3000))]);
        assert!(judge(&d, None, Some(3000)).passed);
        let late = judge(&d, None, Some(3001));
        assert!(!late.passed && late.verdict.contains("after 3001ms"), "{late:?}");
        assert!(!judge(&d, None, None).passed);
        let first = judge(&d, Some("linearizable: x".into()), Some(1));
        assert_eq!(first.verdict, "linearizable: x");
        let v = drill(vec![Expectation::Violation]);
        assert!(judge(&v, Some("x".into()), None).passed);
        assert!(!judge(&v, None, None).passed);
    }
}
