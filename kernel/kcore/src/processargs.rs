//! The bootstrap message (`processargs.h`, contract §2.6): what a new process
//! reads first from the channel whose handle it gets in `rdi`.
//!
//! Layout: an `mx_proc_args_t` header, then at `handle_info_off` one `u32`
//! per handle of the message (`PA_HND(type, arg)`, in the order the handles
//! were sent), then `args_num` NUL-terminated strings at `args_off` and
//! `environ_num` at `environ_off`. [`Message::parse`] checks every offset;
//! [`Builder`] writes the same layout.
//!
//! The builder is generic over what it carries as a handle: the kernel
//! builds the first process's message with raw handle values (`u32`), and
//! `mx::processargs::Builder` is this builder over owned `mx::Handle`s.

use alloc::string::String;
use alloc::vec::Vec;

use mx_abi::wire::Wire;
use mx_abi::{pa_hnd, ProcArgs, PROCARGS_PROTOCOL, PROCARGS_VERSION};

/// Why a bootstrap message was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgsError {
    /// Shorter than the header.
    Short,
    /// Not `MX_PROCARGS_PROTOCOL` / `MX_PROCARGS_VERSION`.
    BadProtocol,
    /// The handle-info array or a string table lies outside the message.
    OutOfBounds,
    /// A string is not NUL-terminated or not UTF-8.
    BadString,
}

/// A parsed bootstrap message, borrowing its bytes.
#[derive(Debug, Clone, Copy)]
pub struct Message<'a> {
    bytes: &'a [u8],
    /// The header.
    pub header: ProcArgs,
    num_handles: usize,
}

impl<'a> Message<'a> {
    /// Checks `bytes`, which arrived with `num_handles` handles.
    pub fn parse(bytes: &'a [u8], num_handles: usize) -> Result<Self, ArgsError> {
        let header = ProcArgs::read(bytes).ok_or(ArgsError::Short)?;
        if header.protocol != PROCARGS_PROTOCOL || header.version != PROCARGS_VERSION {
            return Err(ArgsError::BadProtocol);
        }
        let info_end = (header.handle_info_off as usize)
            .checked_add(num_handles.checked_mul(4).ok_or(ArgsError::OutOfBounds)?)
            .ok_or(ArgsError::OutOfBounds)?;
        if num_handles > 0 && info_end > bytes.len() {
            return Err(ArgsError::OutOfBounds);
        }
        let msg = Message { bytes, header, num_handles };
        // Walk both string tables once so the iterators cannot fail later.
        for s in
            msg.strings(header.args_off, header.args_num).chain(msg.strings(header.environ_off, header.environ_num))
        {
            s?;
        }
        Ok(msg)
    }

    /// The handle-info word of handle `i` (`PA_HND(type, arg)`).
    pub fn handle_info(&self, i: usize) -> Option<u32> {
        if i >= self.num_handles {
            return None;
        }
        let off = self.header.handle_info_off as usize + 4 * i;
        u32::read(self.bytes.get(off..)?)
    }

    /// The index of the first handle whose info is `info`.
    pub fn find_handle(&self, info: u32) -> Option<usize> {
        (0..self.num_handles).find(|&i| self.handle_info(i) == Some(info))
    }

    fn strings(&self, off: u32, num: u32) -> impl Iterator<Item = Result<&'a str, ArgsError>> + 'a {
        let bytes = self.bytes;
        let mut at = off as usize;
        (0..num).map(move |_| {
            let rest = bytes.get(at..).ok_or(ArgsError::OutOfBounds)?;
            let len = rest.iter().position(|&b| b == 0).ok_or(ArgsError::BadString)?;
            at += len + 1;
            core::str::from_utf8(&rest[..len]).map_err(|_| ArgsError::BadString)
        })
    }

    /// The argument strings (`argv`).
    pub fn args(&self) -> impl Iterator<Item = &'a str> + 'a {
        self.strings(self.header.args_off, self.header.args_num).map_while(Result::ok)
    }

    /// The environment strings.
    pub fn environ(&self) -> impl Iterator<Item = &'a str> + 'a {
        self.strings(self.header.environ_off, self.header.environ_num).map_while(Result::ok)
    }
}

/// Builds a bootstrap message and its handle list. `H` is whatever stands
/// for a handle: a raw value (`u32`, the default) or an owned handle type.
#[derive(Debug)]
pub struct Builder<H = u32> {
    handles: Vec<(u32, H)>,
    args: Vec<String>,
    environ: Vec<String>,
}

impl<H> Default for Builder<H> {
    fn default() -> Self {
        Builder { handles: Vec::new(), args: Vec::new(), environ: Vec::new() }
    }
}

impl<H> Builder<H> {
    /// An empty message.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a handle as `PA_HND(ty, arg)`.
    pub fn handle(&mut self, ty: u32, arg: u32, handle: H) -> &mut Self {
        self.handles.push((pa_hnd(ty, arg), handle));
        self
    }

    /// Adds an argument string (NULs inside are dropped).
    pub fn arg(&mut self, s: &str) -> &mut Self {
        self.args.push(s.replace('\0', ""));
        self
    }

    /// Adds an environment string.
    pub fn env(&mut self, s: &str) -> &mut Self {
        self.environ.push(s.replace('\0', ""));
        self
    }

    /// The message bytes and the handles to send with them, in order.
    pub fn build(self) -> (Vec<u8>, Vec<H>) {
        let info_off = ProcArgs::SIZE;
        let args_off = info_off + 4 * self.handles.len();
        let args_len: usize = self.args.iter().map(|s| s.len() + 1).sum();
        let environ_off = args_off + args_len;
        let header = ProcArgs {
            protocol: PROCARGS_PROTOCOL,
            version: PROCARGS_VERSION,
            handle_info_off: info_off as u32,
            args_off: args_off as u32,
            args_num: self.args.len() as u32,
            environ_off: environ_off as u32,
            environ_num: self.environ.len() as u32,
            names_off: 0,
            names_num: 0,
        };
        let mut bytes = Vec::from(header.to_bytes());
        let mut handles = Vec::with_capacity(self.handles.len());
        for (info, h) in self.handles {
            bytes.extend_from_slice(&info.to_le_bytes());
            handles.push(h);
        }
        for s in self.args.iter().chain(&self.environ) {
            bytes.extend_from_slice(s.as_bytes());
            bytes.push(0);
        }
        (bytes, handles)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mx_abi::{PA_PROC_SELF, PA_VMAR_ROOT, PA_VMO_BOOTFS};

    #[test]
    fn round_trip() {
        let mut b = Builder::new();
        b.handle(PA_PROC_SELF, 0, 0x1234_u32).handle(PA_VMO_BOOTFS, 2, 0x5678);
        b.arg("bin/hello").arg("-v").env("init.rc=etc/other.rc");
        let (bytes, handles) = b.build();
        assert_eq!(handles, [0x1234, 0x5678]);
        let m = Message::parse(&bytes, 2).unwrap();
        assert_eq!(m.handle_info(0), Some(PA_PROC_SELF));
        assert_eq!(m.handle_info(1), Some(pa_hnd(PA_VMO_BOOTFS, 2)));
        assert_eq!(m.handle_info(2), None);
        assert_eq!(m.find_handle(pa_hnd(PA_VMO_BOOTFS, 2)), Some(1));
        assert_eq!(m.find_handle(PA_VMAR_ROOT), None);
        assert_eq!(m.args().collect::<Vec<_>>(), ["bin/hello", "-v"]);
        assert_eq!(m.environ().collect::<Vec<_>>(), ["init.rc=etc/other.rc"]);
    }

    #[test]
    fn rejects_bad_messages() {
        let (bytes, _) = Builder::<u32>::new().build();
        assert_eq!(Message::parse(&bytes[..20], 0).err(), Some(ArgsError::Short));
        assert_eq!(Message::parse(&bytes, 1).err(), Some(ArgsError::OutOfBounds));
        let mut bad = bytes.clone();
        bad[0] ^= 1;
        assert_eq!(Message::parse(&bad, 0).err(), Some(ArgsError::BadProtocol));
        let mut b = Builder::<u32>::new();
        b.arg("x");
        let (mut bytes, _) = b.build();
        bytes.pop();
        assert_eq!(Message::parse(&bytes, 0).err(), Some(ArgsError::BadString));
    }
}
