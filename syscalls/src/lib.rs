//! The Magenta syscall ABI (`mx_` names, September 2017), declared once and
//! shared by the kernel and userspace.
//!
//! - [`table::SYSCALLS`]: every syscall — number, arguments (values, handles
//!   with their required type and rights, user pointers and their lengths),
//!   attributes, docs and errors in check order.
//! - [`Status`], [`Rights`], [`Signals`], [`ObjType`], [`InfoTopic`] and the
//!   other constants; each user-supplied enumeration converts from its raw
//!   integer with `TryFrom`.
//! - `#[repr(C)]` structs ([`PortPacket`], [`VcpuState`], ...) whose sizes and
//!   offsets are asserted at compile time, with safe byte encodings ([`wire`]).
//! - [`dispatch`] (kernel) and [`user`] (userspace): generated from the table
//!   by `abigen`, which also writes the C headers in `sysroot/include/magenta/`
//!   and the reference in `syscalls/generated/syscalls.md`.
//!
//! Refresh generated files with `cargo run -p abigen -- --write`.

#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

#[macro_use]
mod macros;

pub mod meta;
pub mod wire;

pub mod exception;
pub mod hypervisor;
pub mod log;
pub mod object;
pub mod policy;
pub mod port;
pub mod processargs;
pub mod resource;
pub mod rights;
pub mod signals;
pub mod status;
pub mod types;
pub mod vdso;

pub mod headers;
pub mod table;
pub mod user_ptr;

pub use exception::*;
pub use hypervisor::*;
pub use log::*;
pub use object::*;
pub use policy::*;
pub use port::*;
pub use processargs::*;
pub use resource::*;
pub use rights::Rights;
pub use signals::Signals;
pub use status::{MxResult, Status};
pub use table::{SYSCALLS, SYS_COUNT};
pub use types::*;
pub use user_ptr::{HandleArg, HandleOut, Opaque, UserIn, UserInOut, UserOut};

/// Kernel side: [`dispatch::dispatch`] decodes a syscall number and its raw
/// argument registers into typed values and calls the matching
/// [`dispatch::SyscallHandler`] method. Generated from [`table::SYSCALLS`].
#[cfg(feature = "generated")]
#[allow(clippy::too_many_arguments)]
pub mod dispatch {
    include!("../generated/dispatch.rs");
}

/// Userspace side: `extern "C"` declarations of every public `mx_*` function
/// of the vDSO, with C type names. Generated from [`table::SYSCALLS`].
#[cfg(feature = "generated")]
#[allow(clippy::too_many_arguments)]
pub mod user {
    include!("../generated/user.rs");
}

#[cfg(all(test, feature = "generated"))]
mod dispatch_tests;
