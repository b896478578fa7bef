//! Every format that crosses a process boundary between the tool and a
//! Lisp, one type each, with its writer (`Display`) and a bounded reader:
//! after each word only the protocol's next legal words are taken, and a
//! line too long, too many lines or a word out of place is a broken
//! protocol. Pure: no process, no descriptor; `crate::daemon` does the
//! reading and the waiting (with deadlines). Each has a round-trip test and
//! a test that the bootstrap (`plan/bootstrap.lisp`) says the same words.

pub mod builder;
pub mod cause;
pub mod control;
pub mod manifest;
pub mod readiness;
pub mod record;
pub mod reload;
pub mod state;
