//! Target resolution, written once for every tier: a fault's targets (`master`, `minority`,
//! `random`, ...) become node numbers, from a seeded RNG and a [`ClusterView`].
//!
//! Two rules keep one seed striking the same nodes on every tier. Each resolution draws the same
//! number of values from the RNG whatever the view says (a `pick` draws one even from an empty
//! or one-node choice; an ordering shuffles every node), so a tier that sees another master does
//! not shift the draws of the steps after. And the targets of one fault never name a node twice:
//! each target chooses among the nodes the fault's earlier targets did not take.

use super::ClusterView;
use crate::faults::{Fault, Target};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::fmt;

/// What a resolved fault strikes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Strikes {
    /// The cluster as a whole (ring, bridge, heal, loss, delay, power_loss).
    Cluster,
    /// These nodes, in the order they were chosen.
    Nodes(Vec<usize>),
    /// Groups that talk within, not across; every node is in exactly one (partition, isolate).
    Groups(Vec<Vec<usize>>),
    /// The links from each node of `from` to each of `to` (one_way).
    OneWay { from: Vec<usize>, to: Vec<usize> },
    /// The node that holds the lease (drop_master).
    Master(usize),
}

impl Strikes {
    /// The nodes struck, for faults that strike nodes (empty otherwise).
    pub fn nodes(&self) -> &[usize] {
        match self {
            Strikes::Nodes(ks) => ks,
            _ => &[],
        }
    }

    /// Whether the fault names nodes and none was found (`restart: down` with every node up).
    pub fn is_empty(&self) -> bool {
        matches!(self, Strikes::Nodes(ks) if ks.is_empty())
    }
}

fn names(ks: &[usize]) -> String {
    ks.iter().map(|k| format!("n{k}")).collect::<Vec<_>>().join(",")
}

impl fmt::Display for Strikes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Strikes::Cluster => Ok(()),
            Strikes::Nodes(ks) => write!(f, "{}", names(ks)),
            Strikes::Groups(gs) => {
                let gs: Vec<String> = gs.iter().map(|g| names(g)).collect();
                write!(f, "{}", gs.join(" | "))
            }
            Strikes::OneWay { from, to } => write!(f, "{} -> {}", names(from), names(to)),
            Strikes::Master(m) => write!(f, "n{m}"),
        }
    }
}

/// A fault of the catalogue with its targets resolved to nodes.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    /// The fault as the drill wrote it (its kind, durations, amounts).
    pub fault: Fault,
    pub strikes: Strikes,
}

impl fmt::Display for Resolved {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.strikes {
            Strikes::Cluster => write!(f, "{}", self.fault),
            s => write!(f, "{} ({s})", self.fault),
        }
    }
}

/// Resolves targets with its own seeded RNG.
#[derive(Debug, Clone)]
pub struct Resolver {
    rng: ChaCha8Rng,
}

/// Mixed into the run's seed so that the resolver's draws are its own stream, apart from the
/// workload's and the tier's.
const RESOLVER_STREAM: u64 = 0x7461_7267_6574_7321;

impl Resolver {
    pub fn new(seed: u64) -> Resolver {
        Resolver { rng: ChaCha8Rng::seed_from_u64(seed ^ RESOLVER_STREAM) }
    }

    /// `fault`'s targets resolved against `view`; `None` for a `drop_master` while no node
    /// holds the lease (nothing to apply).
    pub fn resolve(&mut self, fault: &Fault, view: &ClusterView) -> Option<Resolved> {
        let n = view.nodes();
        let mut taken = vec![false; n];
        let strikes = match fault {
            Fault::Kill(t)
            | Fault::Stop(t)
            | Fault::Resume(t)
            | Fault::Restart(t)
            | Fault::Wipe(t)
            | Fault::TornTail(t)
            | Fault::DeleteTlog(t)
            | Fault::FsyncFail(t)
            | Fault::Pause { target: t, .. }
            | Fault::Bitflip { target: t, .. }
            | Fault::Truncate { target: t, .. }
            | Fault::DiskFull { target: t, .. }
            | Fault::ClockOffset { target: t, .. }
            | Fault::ClockDrift { target: t, .. }
            | Fault::Collapse { target: t, .. } => Strikes::Nodes(self.target(t, view, &mut taken)),
            Fault::Isolate(t) => {
                let struck = self.target(t, view, &mut taken);
                let rest: Vec<usize> = (0..n).filter(|k| !taken[*k]).collect();
                Strikes::Groups(vec![struck, rest])
            }
            Fault::Partition(groups) => {
                let mut resolved: Vec<Vec<usize>> = Vec::new();
                for g in groups {
                    let mut nodes = Vec::new();
                    for t in g {
                        nodes.extend(self.target(t, view, &mut taken));
                    }
                    resolved.push(nodes);
                }
                let rest: Vec<usize> = (0..n).filter(|k| !taken[*k]).collect();
                if !rest.is_empty() {
                    resolved.push(rest);
                }
                Strikes::Groups(resolved)
            }
            Fault::OneWay { from, to } => {
                let from = self.target(from, view, &mut taken);
                let to = self.target(to, view, &mut taken);
                Strikes::OneWay { from, to }
            }
            Fault::DropMaster => Strikes::Master(view.master?),
            Fault::PowerLoss
            | Fault::Ring
            | Fault::Bridge
            | Fault::Heal
            | Fault::Loss(_)
            | Fault::Delay(_) => Strikes::Cluster,
        };
        Some(Resolved { fault: fault.clone(), strikes })
    }

    /// Whether resolving `fault` looks at the cluster (a tier is asked for a view only then).
    pub fn needs_view(fault: &Fault) -> bool {
        !matches!(
            fault,
            Fault::PowerLoss
                | Fault::Ring
                | Fault::Bridge
                | Fault::Heal
                | Fault::Loss(_)
                | Fault::Delay(_)
        )
    }

    /// The nodes `t` names now, among those not `taken`; marks them taken.
    fn target(&mut self, t: &Target, view: &ClusterView, taken: &mut [bool]) -> Vec<usize> {
        let n = view.nodes();
        let free = |k: &usize| !taken[*k];
        let master = view.master.filter(|m| *m < n && !taken[*m]);
        let up: Vec<usize> = (0..n).filter(|k| view.is_up(*k)).filter(free).collect();
        let chosen = match t {
            Target::Node(k) if *k < n && !taken[*k] => vec![*k],
            Target::Node(_) => Vec::new(),
            Target::Master => match master {
                Some(m) => {
                    // Drawn anyway, so that the draws do not depend on who is master.
                    self.rng.gen::<u64>();
                    vec![m]
                }
                None => self.pick(&up),
            },
            Target::Slave => {
                let slaves: Vec<usize> =
                    up.iter().copied().filter(|k| Some(*k) != master).collect();
                self.pick(&slaves)
            }
            Target::Random => self.pick(&up),
            Target::All => (0..n).filter(free).collect(),
            Target::Down => (0..n).filter(|k| !view.is_up(*k)).filter(free).collect(),
            Target::Minority | Target::Majority => {
                // The master first, then the others in a seeded order.
                let mut order: Vec<usize> = (0..n).collect();
                for i in (1..n).rev() {
                    order.swap(i, self.rng.gen_range(0..=i));
                }
                let mut first: Vec<usize> = master.into_iter().collect();
                first.extend(order.into_iter().filter(|k| Some(*k) != master && free(k)));
                let size =
                    if *t == Target::Minority { (n.saturating_sub(1)) / 2 } else { n / 2 + 1 };
                first.truncate(size.max(1));
                first
            }
        };
        for &k in &chosen {
            taken[k] = true;
        }
        chosen
    }

    /// One node of `from`, or none; draws one value either way.
    fn pick(&mut self, from: &[usize]) -> Vec<usize> {
        let x: u64 = self.rng.gen();
        if from.is_empty() {
            Vec::new()
        } else {
            vec![from[(x % from.len() as u64) as usize]]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(up: &[bool], master: Option<usize>) -> ClusterView {
        ClusterView { up: up.to_vec(), paused: vec![false; up.len()], master }
    }

    #[test]
    fn one_way_master_to_slave_without_a_master_never_names_a_node_on_both_ends() {
        for seed in 0..200 {
            let mut r = Resolver::new(seed);
            let f = Fault::OneWay { from: Target::Master, to: Target::Slave };
            let got = r.resolve(&f, &view(&[true; 3], None)).expect("resolved");
            let Strikes::OneWay { from, to } = got.strikes else { panic!("{got:?}") };
            assert_eq!((from.len(), to.len()), (1, 1), "seed {seed}");
            assert_ne!(from, to, "seed {seed}");
        }
    }

    #[test]
    fn the_draws_do_not_depend_on_who_is_master() {
        // Same seed, a master on one tier and none on the other: the step after resolves alike.
        let kill = Fault::Kill(Target::Master);
        let then = Fault::Kill(Target::Random);
        let (mut a, mut b) = (Resolver::new(9), Resolver::new(9));
        a.resolve(&kill, &view(&[true; 5], Some(3)));
        b.resolve(&kill, &view(&[true; 5], None));
        let all = view(&[true; 5], None);
        for _ in 0..20 {
            assert_eq!(a.resolve(&then, &all), b.resolve(&then, &all));
        }
    }

    #[test]
    fn minority_takes_the_master_first_and_a_partition_names_every_node_once() {
        let mut r = Resolver::new(1);
        let m = r.resolve(&Fault::Kill(Target::Minority), &view(&[true; 5], Some(4))).unwrap();
        assert_eq!(m.strikes.nodes().len(), 2);
        assert_eq!(m.strikes.nodes()[0], 4);
        let p = Fault::Partition(vec![vec![Target::Minority], vec![Target::Majority]]);
        let got = r.resolve(&p, &view(&[true; 5], Some(1))).unwrap();
        let Strikes::Groups(gs) = &got.strikes else { panic!("{got:?}") };
        let mut all: Vec<usize> = gs.iter().flatten().copied().collect();
        all.sort_unstable();
        assert_eq!(all, vec![0, 1, 2, 3, 4], "{got}");
        assert!(gs[0].contains(&1) && gs[0].len() == 2 && gs[1].len() == 3, "{got}");
    }

    #[test]
    fn down_slave_and_drop_master_follow_the_view() {
        let mut r = Resolver::new(3);
        let v = view(&[true, false, true], Some(0));
        let down = r.resolve(&Fault::Restart(Target::Down), &v).unwrap();
        assert_eq!(down.strikes, Strikes::Nodes(vec![1]));
        let slave = r.resolve(&Fault::Kill(Target::Slave), &v).unwrap();
        assert_eq!(slave.strikes, Strikes::Nodes(vec![2]));
        assert_eq!(r.resolve(&Fault::DropMaster, &v).unwrap().strikes, Strikes::Master(0));
        assert_eq!(r.resolve(&Fault::DropMaster, &view(&[true; 3], None)), None);
        let none = r.resolve(&Fault::Restart(Target::Down), &view(&[true; 3], None)).unwrap();
        assert!(none.strikes.is_empty());
        assert_eq!(format!("{down}"), "restart down (n1)");
    }
}
