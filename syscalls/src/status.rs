//! `mx_status_t` (`errors.h`): every status code of the contract (§1.2).

use crate::meta::{ConstStyle, Fmt};

c_enum! {
    /// A syscall status (`mx_status_t`): 0 is success, every error is negative.
    pub enum Status: i32, ConstStyle::Define { fmt: Fmt::Dec, cast: None };
    {
        /// Success.
        Ok = 0 => "MX_OK",
        /// An otherwise unspecified failure inside the system.
        Internal = -1 => "MX_ERR_INTERNAL",
        /// The operation is not implemented, supported or enabled.
        NotSupported = -2 => "MX_ERR_NOT_SUPPORTED",
        /// A resource other than memory needed by the operation ran out.
        NoResources = -3 => "MX_ERR_NO_RESOURCES",
        /// Memory needed by the operation could not be allocated.
        NoMemory = -4 => "MX_ERR_NO_MEMORY",
        /// The second phase of `mx_channel_call` failed; see its `read_status`.
        CallFailed = -5 => "MX_ERR_CALL_FAILED",
        /// Interrupted; the vDSO retries the call. Never seen by user code.
        InternalIntrRetry = -6 => "MX_ERR_INTERNAL_INTR_RETRY",
        /// An argument is invalid (including a bad user pointer).
        InvalidArgs = -10 => "MX_ERR_INVALID_ARGS",
        /// A handle value does not name a handle of the caller.
        BadHandle = -11 => "MX_ERR_BAD_HANDLE",
        /// The object is of the wrong type for the operation.
        WrongType = -12 => "MX_ERR_WRONG_TYPE",
        /// Unknown syscall number, or a syscall issued from outside the vDSO.
        BadSyscall = -13 => "MX_ERR_BAD_SYSCALL",
        /// An argument is outside the valid range.
        OutOfRange = -14 => "MX_ERR_OUT_OF_RANGE",
        /// A caller-supplied buffer is too small.
        BufferTooSmall = -15 => "MX_ERR_BUFFER_TOO_SMALL",
        /// The object's state does not allow the operation.
        BadState = -20 => "MX_ERR_BAD_STATE",
        /// The deadline passed first.
        TimedOut = -21 => "MX_ERR_TIMED_OUT",
        /// Not ready yet; try again after waiting.
        ShouldWait = -22 => "MX_ERR_SHOULD_WAIT",
        /// The operation was canceled (e.g. its handle was closed meanwhile).
        Canceled = -23 => "MX_ERR_CANCELED",
        /// The other end of the object is closed.
        PeerClosed = -24 => "MX_ERR_PEER_CLOSED",
        /// The requested entity was not found.
        NotFound = -25 => "MX_ERR_NOT_FOUND",
        /// The entity to create already exists.
        AlreadyExists = -26 => "MX_ERR_ALREADY_EXISTS",
        /// The object is already bound.
        AlreadyBound = -27 => "MX_ERR_ALREADY_BOUND",
        /// Temporarily unavailable.
        Unavailable = -28 => "MX_ERR_UNAVAILABLE",
        /// A right or policy forbids the operation.
        AccessDenied = -30 => "MX_ERR_ACCESS_DENIED",
        /// Input/output error.
        Io = -40 => "MX_ERR_IO",
        /// The device refused the I/O.
        IoRefused = -41 => "MX_ERR_IO_REFUSED",
        /// Data failed an integrity check.
        IoDataIntegrity = -42 => "MX_ERR_IO_DATA_INTEGRITY",
        /// Data was lost.
        IoDataLoss = -43 => "MX_ERR_IO_DATA_LOSS",
        /// The device is not present.
        IoNotPresent = -44 => "MX_ERR_IO_NOT_PRESENT",
        /// A buffer overran.
        IoOverrun = -45 => "MX_ERR_IO_OVERRUN",
        /// A deadline of the I/O was missed.
        IoMissedDeadline = -46 => "MX_ERR_IO_MISSED_DEADLINE",
        /// The path is invalid.
        BadPath = -50 => "MX_ERR_BAD_PATH",
        /// Not a directory.
        NotDir = -51 => "MX_ERR_NOT_DIR",
        /// Not a regular file.
        NotFile = -52 => "MX_ERR_NOT_FILE",
        /// The file would be too large.
        FileBig = -53 => "MX_ERR_FILE_BIG",
        /// No space left.
        NoSpace = -54 => "MX_ERR_NO_SPACE",
        /// The directory is not empty.
        NotEmpty = -55 => "MX_ERR_NOT_EMPTY",
        /// Stop iterating (a flow-control value).
        Stop = -60 => "MX_ERR_STOP",
        /// Go on to the next item (a flow-control value; used in VM exits).
        Next = -61 => "MX_ERR_NEXT",
        /// The protocol is not supported.
        ProtocolNotSupported = -70 => "MX_ERR_PROTOCOL_NOT_SUPPORTED",
        /// The address cannot be reached.
        AddressUnreachable = -71 => "MX_ERR_ADDRESS_UNREACHABLE",
        /// The address is in use.
        AddressInUse = -72 => "MX_ERR_ADDRESS_IN_USE",
        /// Not connected.
        NotConnected = -73 => "MX_ERR_NOT_CONNECTED",
        /// The connection was refused.
        ConnectionRefused = -74 => "MX_ERR_CONNECTION_REFUSED",
        /// The connection was reset.
        ConnectionReset = -75 => "MX_ERR_CONNECTION_RESET",
        /// The connection was aborted.
        ConnectionAborted = -76 => "MX_ERR_CONNECTION_ABORTED",
    }
}

/// The result of a kernel operation: `Err` never holds [`Status::Ok`]. The raw
/// `i32` crosses the ABI; read one with `Status::try_from(raw)` (unknown
/// values are the `Err`) or [`Status::check`].
pub type MxResult<T = ()> = Result<T, Status>;

impl Status {
    /// Turns a raw status into a result: 0 is `Ok`, a known negative value is
    /// `Err`, anything else is `Err(Internal)`. Positive values (counts
    /// returned by a few calls) are `Ok(value)`.
    pub fn check(raw: i32) -> MxResult<u32> {
        match Status::try_from(raw) {
            _ if raw >= 0 => Ok(raw.unsigned_abs()),
            Ok(status) => Err(status),
            Err(_) => Err(Status::Internal),
        }
    }

    /// The raw value of a result whose success value is a count.
    pub fn raw_of(result: MxResult<u32>) -> i32 {
        match result {
            Ok(n) => i32::try_from(n).unwrap_or(i32::MAX),
            Err(status) => status.into_raw(),
        }
    }

    /// True for [`Status::Ok`].
    pub fn is_ok(self) -> bool {
        self == Status::Ok
    }

    /// The one-line description from the declaration (for logs and reports).
    pub fn description(self) -> &'static str {
        Self::C.items.iter().find(|c| c.value == self as i128).map_or("", |c| c.doc.trim())
    }
}

impl core::fmt::Display for Status {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.c_name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_values_convert_both_ways() {
        for &s in Status::ALL {
            assert_eq!(Status::try_from(s.into_raw()), Ok(s));
        }
        assert_eq!(Status::try_from(-7), Err(-7));
        assert_eq!(Status::BadHandle.into_raw(), -11);
        assert_eq!(Status::ConnectionAborted.c_name(), "MX_ERR_CONNECTION_ABORTED");
    }

    #[test]
    fn check_maps_results() {
        assert_eq!(Status::check(0), Ok(0));
        assert_eq!(Status::check(224), Ok(224));
        assert_eq!(Status::check(-24), Err(Status::PeerClosed));
        assert_eq!(Status::check(-9999), Err(Status::Internal));
        assert_eq!(Status::raw_of(Err(Status::TimedOut)), -21);
    }
}
