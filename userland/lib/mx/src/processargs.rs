//! The bootstrap message (`processargs.h`, contract §2.6): what a new process
//! reads first from the channel whose handle it gets in `rdi`.
//!
//! The layout, the parser ([`Message`]) and the builder live in
//! `kcore::processargs`, shared with the kernel; here the [`Builder`] carries
//! owned [`Handle`]s, which the message's channel write then transfers.

use crate::Handle;

pub use kcore::processargs::{ArgsError, Message};

/// Builds a bootstrap message and the owned handles to send with it.
pub type Builder = kcore::processargs::Builder<Handle>;

#[cfg(test)]
mod tests {
    use super::*;
    use mx_abi::{pa_hnd, PA_PROC_SELF, PA_VMO_BOOTFS};

    #[test]
    fn builds_with_owned_handles() {
        let mut b = Builder::new();
        b.handle(PA_PROC_SELF, 0, Handle::INVALID).handle(PA_VMO_BOOTFS, 2, Handle::INVALID);
        b.arg("bin/hello");
        let (bytes, handles) = b.build();
        assert_eq!(handles, [Handle::INVALID, Handle::INVALID]);
        let m = Message::parse(&bytes, handles.len()).unwrap();
        assert_eq!(m.handle_info(1), Some(pa_hnd(PA_VMO_BOOTFS, 2)));
        assert_eq!(m.args().collect::<Vec<_>>(), ["bin/hello"]);
    }
}
