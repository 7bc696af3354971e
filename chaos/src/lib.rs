//! chaos (under construction)

pub mod process;
pub mod proxy;
pub mod sandbox;
