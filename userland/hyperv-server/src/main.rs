//! hyperv-server: the Hyper-V partition personality, an init service
//! (`bin/hyperv-server +resource +service=hyperv`). See `README.md` and
//! `server.rs`. On the host this binary is an empty placeholder so that
//! the workspace can build and test the crate's library there.

#![cfg_attr(target_os = "none", no_std)]
#![cfg_attr(target_os = "none", no_main)]

#[cfg(target_os = "none")]
extern crate alloc;

#[cfg(target_os = "none")]
mod server;

#[cfg(not(target_os = "none"))]
fn main() {}
