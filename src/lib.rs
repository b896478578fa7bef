//! daemonization: run Common Lisp programs as proper Unix daemons, driven by
//! the plist conf files of the Lisp library of the same name.
//!
//! The pipeline: text ──reader──▶ forms ──config──▶ `DaemonSpec` ──lisp──▶
//! launch plan ──daemon──▶ process ──report──▶ one line and an exit code.

pub mod args;
pub mod cli;
pub mod command;
pub mod config;
pub mod daemon;
pub mod logging;
pub mod many;
pub mod plan;
pub mod reader;
pub mod report;
pub mod source;
pub mod suggest;
pub mod trust;
pub mod unit;
pub mod visible;
pub mod wire;
