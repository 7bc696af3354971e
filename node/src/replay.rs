//! Replay: bring a store up to date from the TLog (under construction).
