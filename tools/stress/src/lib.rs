//! The part of `progjar-stress` other crates reuse: the byte pattern.
//!
//! The tests check echoed bytes with the same generator the tool does
//! (`progjar-testkit` builds its test streams on it), so there is one
//! pattern in the project, not one per test harness.

pub mod pattern;
