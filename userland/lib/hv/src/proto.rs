//! The client wire protocol of `userland/hyperv-server/README.md`: the one
//! definition (`libhv` mirrors it). Little-endian.
//!
//! init hands the server a connector channel (`PA_HND(PA_USER0, 0)`) and
//! each `+hyperv` program a client channel (`PA_HND(PA_USER0, 0x4856)`).
//! The server greets a new client with [`Hello`] and the handles [root
//! memory VMO, SynIC VMO, notification event]; the client then makes
//! `mx_channel_call`s of [`Request`]s answered by [`Reply`]s.

#![allow(missing_docs)]

use crate::abi::{Field, HvResult, HvStatus};

/// `Hello.magic`: "HVSV".
pub const HELLO_MAGIC: u32 = 0x5653_4856;
/// `Hello.version`.
pub const VERSION: u32 = 1;
/// A hypercall (`control` = the input value).
pub const OP_HYPERCALL: u32 = 1;
/// The root emptied a SIM slot (`control` = the SINT).
pub const OP_END_OF_MESSAGE: u32 = 2;
/// The `arg` of a client channel's handle info (`PA_HND(PA_USER0, 0x4856)`).
pub const HV_CLIENT_ARG: u32 = 0x4856;
/// `PA_HND(PA_USER0, HV_CLIENT_ARG)`.
pub const HV_CLIENT_HANDLE_INFO: u32 = 0x4856_00F0;
/// The server's connector: `PA_HND(PA_USER0, 0)`.
pub const HV_CONNECTOR_ARG: u32 = 0;
/// The root memory each client gets (bytes).
pub const HV_ROOT_MEMORY_SIZE: u64 = 64 << 20;
/// Pages of root memory.
pub const HV_ROOT_MEMORY_PAGES: u64 = HV_ROOT_MEMORY_SIZE / 4096;
/// The SynIC VMO: page 0 SIM, page 1 SIEF.
pub const HV_SYNIC_SIZE: u64 = 2 * 4096;
/// Offset of the SIEF page in the SynIC VMO.
pub const HV_SIEF_OFFSET: usize = 4096;
/// Signal the server raises on the notification event (`MX_USER_SIGNAL_0`).
pub const NOTIFY_SIGNAL: u32 = 1 << 24;
/// Handles that come with [`Hello`], in order.
pub const HELLO_HANDLES: usize = 3;

macro_rules! wire {
    ($(#[$m:meta])* pub struct $name:ident, size $size:literal { $( @$off:literal $field:ident: $ty:ty, )* }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub struct $name { $( pub $field: $ty, )* }

        impl $name {
            pub const SIZE: usize = $size;

            /// Decodes exactly `SIZE` bytes (`None` for any other length).
            pub fn decode(b: &[u8]) -> Option<Self> {
                if b.len() != $size {
                    return None;
                }
                Some($name { $( $field: <$ty as Field>::get(&b[$off..]), )* })
            }

            pub fn encode(&self) -> [u8; $size] {
                let mut b = [0u8; $size];
                $( Field::put(&self.$field, &mut b[$off..]); )*
                b
            }
        }

        $( const _: () = assert!($off + <$ty as Field>::WIDTH <= $size); )*
    };
}

wire! {
    /// Server → client, first message (with the three handles).
    pub struct Hello, size 32 {
        @0 magic: u32,
        @4 version: u32,
        @8 root_partition_id: u64,
        @16 memory_size: u64,
        @24 reserved: u64,
    }
}

wire! {
    /// Client → server (`mx_channel_call`).
    pub struct Request, size 48 {
        @0 txid: u32,
        @4 op: u32,
        @8 control: u64,
        @16 input: u64,
        @24 output: u64,
        @32 memory_base: u64,
        @40 reserved: u64,
    }
}

wire! {
    /// Server → client: the hypercall result value.
    pub struct Reply, size 16 {
        @0 txid: u32,
        @4 reserved: u32,
        @8 result: u64,
    }
}

impl Reply {
    /// A reply to `txid` with `status` and `reps` completed.
    pub fn new(txid: u32, status: HvStatus, reps: u16) -> Reply {
        Reply { txid, reserved: 0, result: HvResult::new(status, reps).raw() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts() {
        let h = Hello {
            magic: HELLO_MAGIC,
            version: 1,
            root_partition_id: 3,
            memory_size: HV_ROOT_MEMORY_SIZE,
            reserved: 0,
        };
        let b = h.encode();
        assert_eq!(&b[0..4], &0x5653_4856u32.to_le_bytes());
        assert_eq!(b[8], 3);
        assert_eq!(Hello::decode(&b), Some(h));
        assert_eq!(Hello::decode(&b[..31]), None);

        let r = Request { txid: 9, op: OP_HYPERCALL, control: 0x40, input: 1, output: 2, memory_base: 3, reserved: 0 };
        let b = r.encode();
        assert_eq!(b.len(), 48);
        assert_eq!(b[4], 1);
        assert_eq!(b[8], 0x40);
        assert_eq!(b[32], 3);
        assert_eq!(Request::decode(&b), Some(r));

        let reply = Reply::new(9, HvStatus::INVALID_PARAMETER, 2);
        let b = reply.encode();
        assert_eq!(b.len(), 16);
        assert_eq!(b[8], 5);
        assert_eq!(b[12], 2);
    }

    #[test]
    fn handle_info() {
        assert_eq!(HV_CLIENT_HANDLE_INFO, mx_abi::pa_hnd(mx_abi::PA_USER0, HV_CLIENT_ARG));
    }
}
