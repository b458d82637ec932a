//! Parity cases for the persona, run, execution, message, memory, review, stats and system
//! commands (see `tests/parity.rs`).

use super::harness::Case;

pub fn cases() -> Vec<Case> {
    Vec::new()
}
