//! The integration tests, in one binary (as casey/just keeps them): each
//! module runs the real binary against real Lisp daemons; `util` is what
//! they share.

mod util;

mod check;
mod cores;
mod deb;
mod lifecycle;
mod lisp_api;
mod original;
mod privileges;
mod restas;
mod runners;
mod security;
mod supervise;
mod syslog;
mod systemd;
