//! The TLog: the node's source of truth (under construction).
