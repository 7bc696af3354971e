//! chaos (under construction)

pub mod proxy;
pub mod process;
