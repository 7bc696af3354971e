//! checker (under construction)
