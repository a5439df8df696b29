//! The Hyper-V partition personality (see `README.md` beside this crate):
//! the partition manager as plain logic over a [`platform::Platform`], so
//! every hypercall, state rule, pool cost and SynIC rule is tested on the
//! host (`cargo test -p hyperv-server`). The program (`main.rs`) puts it on
//! magnetar: client channels, kernel guests, VP threads.
//!
//! | module | what |
//! |---|---|
//! | [`manager`] | partitions, hierarchy, states, privileges, pools, hypercall decoding and the common checks |
//! | `calls` | the partition, pool and GPA calls |
//! | `vps` | VPs, their registers, intercepts and guest exits (MSRs, CPUID, hypercalls) |
//! | `synic` | SynIC pages, ports, connections, message queues, event flags |

#![cfg_attr(not(test), no_std)]

extern crate alloc;

mod calls;
pub mod manager;
pub mod platform;
mod synic;
mod vps;

#[cfg(test)]
mod tests;

pub use manager::Manager;
