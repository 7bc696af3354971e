//! chaos (under construction)
