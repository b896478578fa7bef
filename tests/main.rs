//! The integration tests, in one binary (as casey/just keeps them): each
//! module runs the real binary against real Lisp daemons; `util` is what
//! they share.

mod util;

mod check;
mod control;
mod cores;
mod deb;
mod docs;
mod first_hour;
mod foreground;
mod lifecycle;
mod lisp_api;
mod listen;
mod log;
mod many;
mod original;
mod output;
mod pidfile;
mod privileges;
mod readiness;
mod reload;
mod restas;
mod runners;
mod security;
mod status;
mod stopping;
mod supervise;
mod syslog;
mod systemd;
