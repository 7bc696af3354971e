//! The simulated network: directed links that can be cut (partitions of any shape, one-way
//! included), and per-message loss, duplication, delay and reordering drawn from the world's
//! one RNG. Deliveries are returned as (delay, copies) and scheduled by the world, so ordering
//! between messages follows from their delays alone.

use rand::Rng;

/// Fault rates of the network; all zero is a perfect network with `delay_min_us` latency.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NetFaults {
    /// Probability that a message is lost.
    pub loss: f64,
    /// Probability that a message is delivered twice.
    pub duplicate: f64,
    /// Delay range of one delivery, µs; a wide range reorders messages.
    pub delay_min_us: u64,
    pub delay_max_us: u64,
}

impl Default for NetFaults {
    fn default() -> Self {
        NetFaults { loss: 0.0, duplicate: 0.0, delay_min_us: 100, delay_max_us: 400 }
    }
}

/// Which node can reach which.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimNet {
    nodes: usize,
    /// `up[from * nodes + to]`: messages from `from` reach `to`.
    up: Vec<bool>,
}

impl SimNet {
    pub fn new(nodes: usize) -> SimNet {
        SimNet { nodes, up: vec![true; nodes * nodes] }
    }

    pub fn nodes(&self) -> usize {
        self.nodes
    }

    pub fn connected(&self, from: usize, to: usize) -> bool {
        self.up[from * self.nodes + to]
    }

    pub fn set_link(&mut self, from: usize, to: usize, up: bool) {
        self.up[from * self.nodes + to] = up;
    }

    /// Every link up.
    pub fn heal(&mut self) {
        self.up.fill(true);
    }

    /// Nodes talk only within their group (nodes in no group are isolated).
    pub fn partition(&mut self, groups: &[Vec<usize>]) {
        for from in 0..self.nodes {
            for to in 0..self.nodes {
                let together =
                    from == to || groups.iter().any(|g| g.contains(&from) && g.contains(&to));
                self.set_link(from, to, together);
            }
        }
    }

    /// Applies a directed connectivity matrix (`matrix[from][to]`).
    pub fn set_matrix(&mut self, matrix: &[Vec<bool>]) {
        for (from, row) in matrix.iter().enumerate() {
            for (to, &up) in row.iter().enumerate() {
                self.set_link(from, to, up || from == to);
            }
        }
    }

    /// The fate of one message: the delays of its deliveries (none if lost or cut).
    pub fn deliveries(
        &self,
        from: usize,
        to: usize,
        faults: &NetFaults,
        rng: &mut impl Rng,
    ) -> Vec<u64> {
        if !self.connected(from, to) {
            return Vec::new();
        }
        // Draw every random number whatever the outcome, so that one fault's rate does not
        // shift the random stream of everything after it.
        let lost = rng.gen_bool(faults.loss.clamp(0.0, 1.0));
        let twice = rng.gen_bool(faults.duplicate.clamp(0.0, 1.0));
        let hi = faults.delay_max_us.max(faults.delay_min_us);
        let d1 = rng.gen_range(faults.delay_min_us..=hi);
        let d2 = rng.gen_range(faults.delay_min_us..=hi);
        match (lost, twice) {
            (true, _) => Vec::new(),
            (false, false) => vec![d1],
            (false, true) => vec![d1, d2],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn partitions_and_one_way_links() {
        let mut net = SimNet::new(3);
        net.partition(&[vec![0, 1], vec![2]]);
        assert!(net.connected(0, 1) && net.connected(1, 0));
        assert!(!net.connected(0, 2) && !net.connected(2, 1));
        net.heal();
        net.set_link(0, 2, false);
        assert!(!net.connected(0, 2) && net.connected(2, 0));
    }

    #[test]
    fn loss_and_duplication_follow_their_rates() {
        let net = SimNet::new(2);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let faults = NetFaults { loss: 0.25, duplicate: 0.5, ..NetFaults::default() };
        let mut copies = [0usize; 3];
        for _ in 0..10_000 {
            copies[net.deliveries(0, 1, &faults, &mut rng).len()] += 1;
        }
        assert!((2200..2800).contains(&copies[0]), "{copies:?}");
        assert!((3400..4100).contains(&copies[2]), "{copies:?}");
    }
}
