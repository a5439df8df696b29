//! QEMU's `isa-debug-exit` device: how tests end the emulator with a verdict.
//!
//! The runner attaches it at port 0xf4. QEMU exits with `(value << 1) | 1`, so
//! the codes below become 99 (success) and 97 (failure): neither can be
//! mistaken for QEMU's own 0 (shutdown) or 1 (error).

use super::port::outl;

const DEBUG_EXIT_PORT: u16 = 0xf4;

/// The verdict written to the debug-exit device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum ExitCode {
    Success = 0x31,
    Failure = 0x30,
}

/// Ends the emulator. On real hardware (or without the device) the write is
/// ignored and the caller's fallback runs.
pub fn exit(code: ExitCode) {
    // SAFETY: writing the debug-exit port has no effect other than ending
    // QEMU; on other machines the port is unused.
    unsafe { outl(DEBUG_EXIT_PORT, code as u32) }
}
