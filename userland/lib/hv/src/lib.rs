//! `hv`: the Hyper-V partition personality of magnetar, shared by the
//! server (`userland/hyperv-server`) and its clients.
//!
//! - [`abi`]: every TLFS 2.0A type, constant, status and byte layout the
//!   personality uses (`shared/specs/hyperv-reference.md`), as plain
//!   little-endian encoders with byte-exact sizes.
//! - [`proto`]: the client wire protocol of `userland/hyperv-server/README.md`
//!   (Hello, Request, Reply).
//! - [`client`]: the typed Rust client of a root partition ([`client::Root`]).
//!
//! `abi` and `proto` are plain code tested on the host (`cargo test -p hv`).

#![cfg_attr(not(test), no_std)]

extern crate alloc;

pub mod abi;
pub mod client;
pub mod proto;

pub use abi::HvStatus;
