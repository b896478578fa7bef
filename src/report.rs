//! Outcomes → what the user sees: the one-line message and the exit code.

/// Exit codes, following the LSB init-script conventions.
pub mod exit {
    pub const OK: u8 = 0;
    /// Generic failure.
    pub const FAILED: u8 = 1;
    /// Invalid or excess arguments, unknown command.
    pub const USAGE: u8 = 2;
    /// Unimplemented feature (LSB 3).
    pub const NOT_IMPLEMENTED: u8 = 3;
    /// The program is not configured: a conf error (LSB 6).
    pub const CONF_ERROR: u8 = 6;
}
