//! `mx_signals_t` (`types.h`), contract §1.4.
//!
//! The generic bits (`READABLE`, `SIGNALED`, ...) have per-object aliases
//! (`CHANNEL_READABLE`, `TIMER_SIGNALED`, ...) with the same value.

use crate::meta::{ConstStyle, Fmt};

c_flags! {
    /// Object signal bits (`mx_signals_t`).
    pub struct Signals: u32, ConstStyle::Define { fmt: Fmt::Shift, cast: Some("mx_signals_t") };
    {
        /// No signal.
        const NONE = 0 => "MX_SIGNAL_NONE";
        /// Bit 0: readable.
        const READABLE = 1 << 0 => "__MX_OBJECT_READABLE";
        /// Bit 1: writable.
        const WRITABLE = 1 << 1 => "__MX_OBJECT_WRITABLE";
        /// Bit 2: the peer closed.
        const PEER_CLOSED = 1 << 2 => "__MX_OBJECT_PEER_CLOSED";
        /// Bit 3: signaled / terminated.
        const SIGNALED = 1 << 3 => "__MX_OBJECT_SIGNALED";
        /// Bit 4, object-specific.
        const SIGNAL_4 = 1 << 4 => "__MX_OBJECT_SIGNAL_4";
        /// Bit 5, object-specific.
        const SIGNAL_5 = 1 << 5 => "__MX_OBJECT_SIGNAL_5";
        /// Bit 6, object-specific.
        const SIGNAL_6 = 1 << 6 => "__MX_OBJECT_SIGNAL_6";
        /// Bit 7, object-specific.
        const SIGNAL_7 = 1 << 7 => "__MX_OBJECT_SIGNAL_7";
        /// Asserted while exactly one handle to the object exists.
        const LAST_HANDLE = 1 << 22 => "MX_SIGNAL_LAST_HANDLE";
        /// Reported in `observed` when the handle being waited on was closed.
        const HANDLE_CLOSED = 1 << 23 => "MX_SIGNAL_HANDLE_CLOSED";
        /// Every kernel-owned bit (0 to 23).
        const OBJECT_ALL = 0x00ff_ffff => "__MX_OBJECT_SIGNAL_ALL";
        /// User signal 0.
        const USER_0 = 1 << 24 => "MX_USER_SIGNAL_0";
        /// User signal 1.
        const USER_1 = 1 << 25 => "MX_USER_SIGNAL_1";
        /// User signal 2.
        const USER_2 = 1 << 26 => "MX_USER_SIGNAL_2";
        /// User signal 3.
        const USER_3 = 1 << 27 => "MX_USER_SIGNAL_3";
        /// User signal 4.
        const USER_4 = 1 << 28 => "MX_USER_SIGNAL_4";
        /// User signal 5.
        const USER_5 = 1 << 29 => "MX_USER_SIGNAL_5";
        /// User signal 6.
        const USER_6 = 1 << 30 => "MX_USER_SIGNAL_6";
        /// User signal 7.
        const USER_7 = 1 << 31 => "MX_USER_SIGNAL_7";
        /// All user signals: what `mx_object_signal` may change on most objects.
        const USER_ALL = 0xff00_0000 => "MX_USER_SIGNAL_ALL";

        /// Event: signaled.
        const EVENT_SIGNALED = Self::SIGNALED.bits() => "MX_EVENT_SIGNALED";
        /// Eventpair: signaled.
        const EPAIR_SIGNALED = Self::SIGNALED.bits() => "MX_EPAIR_SIGNALED";
        /// Eventpair: the other end's last handle closed.
        const EPAIR_PEER_CLOSED = Self::PEER_CLOSED.bits() => "MX_EPAIR_PEER_CLOSED";
        /// Channel: a message is queued.
        const CHANNEL_READABLE = Self::READABLE.bits() => "MX_CHANNEL_READABLE";
        /// Channel: the peer is open.
        const CHANNEL_WRITABLE = Self::WRITABLE.bits() => "MX_CHANNEL_WRITABLE";
        /// Channel: the peer closed.
        const CHANNEL_PEER_CLOSED = Self::PEER_CLOSED.bits() => "MX_CHANNEL_PEER_CLOSED";
        /// Socket: readable.
        const SOCKET_READABLE = Self::READABLE.bits() => "MX_SOCKET_READABLE";
        /// Socket: writable.
        const SOCKET_WRITABLE = Self::WRITABLE.bits() => "MX_SOCKET_WRITABLE";
        /// Socket: the peer closed.
        const SOCKET_PEER_CLOSED = Self::PEER_CLOSED.bits() => "MX_SOCKET_PEER_CLOSED";
        /// Socket: reading was shut down.
        const SOCKET_READ_DISABLED = Self::SIGNAL_4.bits() => "MX_SOCKET_READ_DISABLED";
        /// Socket: writing was shut down.
        const SOCKET_WRITE_DISABLED = Self::SIGNAL_5.bits() => "MX_SOCKET_WRITE_DISABLED";
        /// Socket: control data readable.
        const SOCKET_CONTROL_READABLE = Self::SIGNAL_6.bits() => "MX_SOCKET_CONTROL_READABLE";
        /// Socket: control data writable.
        const SOCKET_CONTROL_WRITABLE = Self::SIGNAL_7.bits() => "MX_SOCKET_CONTROL_WRITABLE";
        /// Port: a packet is queued.
        const PORT_READABLE = Self::READABLE.bits() => "MX_PORT_READABLE";
        /// FIFO: readable.
        const FIFO_READABLE = Self::READABLE.bits() => "MX_FIFO_READABLE";
        /// FIFO: writable.
        const FIFO_WRITABLE = Self::WRITABLE.bits() => "MX_FIFO_WRITABLE";
        /// FIFO: the peer closed.
        const FIFO_PEER_CLOSED = Self::PEER_CLOSED.bits() => "MX_FIFO_PEER_CLOSED";
        /// Process, thread or job: terminated.
        const TASK_TERMINATED = Self::SIGNALED.bits() => "MX_TASK_TERMINATED";
        /// Job: no processes left.
        const JOB_NO_PROCESSES = Self::SIGNALED.bits() => "MX_JOB_NO_PROCESSES";
        /// Job: no child jobs left.
        const JOB_NO_JOBS = Self::SIGNAL_4.bits() => "MX_JOB_NO_JOBS";
        /// Process: terminated.
        const PROCESS_TERMINATED = Self::SIGNALED.bits() => "MX_PROCESS_TERMINATED";
        /// Thread: terminated.
        const THREAD_TERMINATED = Self::SIGNALED.bits() => "MX_THREAD_TERMINATED";
        /// Log: a record is available.
        const LOG_READABLE = Self::READABLE.bits() => "MX_LOG_READABLE";
        /// Log: writable.
        const LOG_WRITABLE = Self::WRITABLE.bits() => "MX_LOG_WRITABLE";
        /// Timer: the deadline passed.
        const TIMER_SIGNALED = Self::SIGNALED.bits() => "MX_TIMER_SIGNALED";
    }
}

c_combos! {
    /// The bits `mx_object_signal` may change, per object kind.
    impl Signals { pub const C_MASKS: ConstGroup = ConstStyle::Define { fmt: Fmt::Shift, cast: None }; }
    {
        /// Events: user signals and SIGNALED.
        const EVENT_SIGNAL_MASK = USER_ALL | SIGNALED => "MX_EVENT_SIGNAL_MASK";
        /// Eventpairs: user signals, SIGNALED and PEER_CLOSED.
        const EPAIR_SIGNAL_MASK = USER_ALL | SIGNALED | PEER_CLOSED => "MX_EPAIR_SIGNAL_MASK";
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_match_contract() {
        assert_eq!(Signals::USER_ALL.bits(), 0xff00_0000);
        assert_eq!(Signals::USER_0.bits(), 1 << 24);
        assert_eq!(Signals::EVENT_SIGNAL_MASK.bits(), 0xff00_0008);
        assert_eq!(Signals::EPAIR_SIGNAL_MASK.bits(), 0xff00_000c);
        assert_eq!(Signals::LAST_HANDLE.bits(), 1 << 22);
        assert_eq!(Signals::HANDLE_CLOSED.bits(), 1 << 23);
        assert_eq!(Signals::JOB_NO_JOBS.bits(), 1 << 4);
    }
}
