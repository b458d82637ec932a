//! Parity cases for the trigger, event, credential, vault, tool, channel, healing and data
//! commands (see `tests/parity.rs`).

use super::harness::Case;

pub fn cases() -> Vec<Case> {
    Vec::new()
}
