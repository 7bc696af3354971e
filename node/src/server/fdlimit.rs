//! `max_connections` against the process's open-files limit (RLIMIT_NOFILE).
//!
//! Every client connection is a descriptor; so are the TLog files, the store's files, the
//! listeners and the peer connections. With `max_connections` at the limit, clients could take
//! every descriptor and the next TLog rollover failed, stopping the node. At start the node
//! raises its soft limit to the hard one, keeps [`reserve`] descriptors for its own files and
//! peers, and lowers `max_connections` to what is left, with a warning: a node that serves fewer
//! clients beats one that refuses to start on a file Arakoon accepted (clients over the limit get
//! 0xfe and a message). Only when not even the reserve is available does it refuse to start.

use crate::config::ClusterConfig;

/// Descriptors kept for the node itself: standard streams, the TLog (the file written, readers
/// for catch-ups and collapse), the store's files, the head, listeners and the runtime's own
/// (epoll, eventfd), and the incoming peer connections (server/peers.rs caps them).
pub fn reserve(config: &ClusterConfig) -> u64 {
    128 + super::peers::PEER_CONNECTIONS_MAX as u64 + 4 * config.nodes.len() as u64
}

/// What start-up decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FdPlan {
    pub max_connections: usize,
    /// A warning to log when `max_connections` was lowered.
    pub warning: Option<String>,
}

/// Why the node cannot start under the process's open-files limit.
#[derive(Debug, thiserror::Error)]
pub enum FdLimitError {
    #[error(
        "the open-files limit is {limit}; this node needs {reserve} descriptors for its TLog, \
         store and peers before any client: raise it (ulimit -n, LimitNOFILE=) to at least \
         {at_least}"
    )]
    TooLow { limit: u64, reserve: u64, at_least: u64 },
    #[error("getrlimit(RLIMIT_NOFILE): {0}")]
    GetLimit(#[source] std::io::Error),
}

/// Fits `max_connections` into `limit` descriptors (after raising the soft limit); an error when
/// not even the reserve fits.
pub fn plan(config: &ClusterConfig, limit: u64) -> Result<FdPlan, FdLimitError> {
    let reserve = reserve(config);
    let wanted = config.max_connections as u64;
    if limit <= reserve {
        return Err(FdLimitError::TooLow { limit, reserve, at_least: reserve + wanted });
    }
    if limit >= reserve + wanted {
        return Ok(FdPlan { max_connections: config.max_connections, warning: None });
    }
    let fit = (limit - reserve) as usize;
    Ok(FdPlan {
        max_connections: fit,
        warning: Some(format!(
            "max_connections is {wanted}, but the open-files limit is {limit} and {reserve} \
             descriptors are kept for the TLog, the store and the peers: serving at most {fit} \
             clients; raise the limit (ulimit -n, LimitNOFILE=) to {} for all of them",
            reserve + wanted
        )),
    })
}

/// Raises the soft open-files limit to the hard one; returns the soft limit now in force.
pub fn raise_nofile_limit() -> Result<u64, FdLimitError> {
    // SAFETY: getrlimit/setrlimit on a local struct.
    unsafe {
        let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return Err(FdLimitError::GetLimit(std::io::Error::last_os_error()));
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit { rlim_cur: lim.rlim_max, rlim_max: lim.rlim_max };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim.rlim_cur = lim.rlim_max;
            }
        }
        Ok(lim.rlim_cur)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_are_fitted_under_the_limit_with_a_reserve() {
        let text = "[global]\ncluster = a, b, c\ncluster_id = x\nmax_connections = 1000\n\
                    [a]\nip = 127.0.0.1\nclient_port = 1\nmessaging_port = 2\nhome = /h/a\n\
                    [b]\nip = 127.0.0.1\nclient_port = 3\nmessaging_port = 4\nhome = /h/b\n\
                    [c]\nip = 127.0.0.1\nclient_port = 5\nmessaging_port = 6\nhome = /h/c\n";
        let config = ClusterConfig::parse(text, "t.ini").unwrap();
        let r = reserve(&config);
        assert_eq!(r, 128 + 64 + 12);
        let all = plan(&config, 1_000_000).unwrap();
        assert_eq!(all, FdPlan { max_connections: 1000, warning: None });
        let some = plan(&config, 1024).unwrap();
        assert_eq!(some.max_connections, 1024 - r as usize);
        assert!(some.warning.unwrap().contains("serving at most 820 clients"));
        let e = plan(&config, r).unwrap_err();
        assert!(matches!(e, FdLimitError::TooLow { at_least: 1204, .. }), "{e:?}");
        assert!(e.to_string().contains("at least 1204"), "{e}");
    }
}
