//! The link shapes of the `ring` and `bridge` faults, the same on every tier.

/// Whether `i` and `j` talk in a `ring` of `n` nodes: each reaches only its two neighbours.
pub fn ring_link(n: usize, i: usize, j: usize) -> bool {
    let d = (i + n - j) % n;
    d.min(n - d) <= 1
}

/// The node a `bridge` of `n` nodes leaves in both halves: the middle one.
pub fn bridge_node(n: usize) -> usize {
    n / 2
}

/// Whether `i` and `j` talk in a `bridge` of `n` nodes: the nodes below the bridge node and
/// those above it reach each other only through it.
pub fn bridge_link(n: usize, i: usize, j: usize) -> bool {
    let b = bridge_node(n);
    let below = |k: usize| k < b;
    i == b || j == b || below(i) == below(j)
}

/// The `n` by `n` matrix of which node pairs talk (`[from][to]`).
pub fn link_matrix(n: usize, link: impl Fn(usize, usize) -> bool) -> Vec<Vec<bool>> {
    (0..n).map(|i| (0..n).map(|j| link(i, j)).collect()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ring_of_five_gives_each_node_a_majority_and_a_bridge_joins_two_halves() {
        for i in 0..5 {
            assert_eq!((0..5).filter(|&j| ring_link(5, i, j)).count(), 3);
        }
        assert!(!ring_link(5, 0, 2));
        assert_eq!(bridge_node(5), 2);
        assert!(bridge_link(5, 0, 1) && bridge_link(5, 0, 2) && !bridge_link(5, 0, 3));
        assert_eq!(link_matrix(2, |i, j| i == j), vec![vec![true, false], vec![false, true]]);
    }
}
