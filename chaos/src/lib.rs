//! chaos (under construction)

pub mod proxy;
