//! Typed syscall arguments for the kernel side of the dispatch: user pointers
//! that cannot be dereferenced, and handle values with the requirements their
//! lookup must check.
//!
//! These hold numbers only. The kernel's user-copy code (which may use
//! `unsafe`) reads and writes through them with fault recovery; a NULL or bad
//! pointer then fails with `MX_ERR_INVALID_ARGS` at the point in the check
//! order where the copy happens.

use core::fmt;
use core::marker::PhantomData;

use crate::meta::HandleSpec;
use crate::types::mx_handle_t;

macro_rules! user_ptr {
    ($(#[doc = $doc:literal])* $name:ident) => {
        $(#[doc = $doc])*
        pub struct $name<T> {
            addr: usize,
            _pointee: PhantomData<fn() -> T>,
        }

        impl<T> $name<T> {
            /// Wraps a raw user address.
            pub const fn new(addr: usize) -> Self {
                Self { addr, _pointee: PhantomData }
            }
            /// Wraps an optional user address: `None` for NULL.
            pub const fn non_null(addr: usize) -> Option<Self> {
                match addr {
                    0 => None,
                    _ => Some(Self::new(addr)),
                }
            }
            /// The user address.
            pub const fn addr(self) -> usize {
                self.addr
            }
            /// True for NULL.
            pub const fn is_null(self) -> bool {
                self.addr == 0
            }
            /// The address of element `index`, if it does not overflow.
            pub const fn element(self, index: usize) -> Option<usize> {
                match index.checked_mul(core::mem::size_of::<T>()) {
                    Some(off) => self.addr.checked_add(off),
                    None => None,
                }
            }
        }

        impl<T> Clone for $name<T> {
            fn clone(&self) -> Self {
                *self
            }
        }
        impl<T> Copy for $name<T> {}
        impl<T> PartialEq for $name<T> {
            fn eq(&self, other: &Self) -> bool {
                self.addr == other.addr
            }
        }
        impl<T> Eq for $name<T> {}
        impl<T> fmt::Debug for $name<T> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:#x})", stringify!($name), self.addr)
            }
        }
    };
}

user_ptr! {
    /// A user pointer the kernel only reads (`const T*`).
    UserIn
}
user_ptr! {
    /// A user pointer the kernel only writes (`T*`, OUT).
    UserOut
}
user_ptr! {
    /// A user pointer the kernel reads and writes back (`T*`, INOUT).
    UserInOut
}

/// A pointer receiving new handle values (`mx_handle_t*`). Install the handle
/// only after the copy-out succeeded, so a failed copy cannot leak it.
pub type HandleOut = UserOut<mx_handle_t>;

/// A handle argument and what its lookup must check: the value names a handle
/// of the caller (else `BAD_HANDLE`), the handle has `spec.rights` (else
/// `ACCESS_DENIED`), the object is one of `spec.types` (else `WRONG_TYPE`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HandleArg {
    /// The raw value user mode passed.
    pub raw: mx_handle_t,
    /// The requirements declared in the syscall table.
    pub spec: HandleSpec,
}

impl HandleArg {
    /// Wraps a raw argument register.
    pub const fn new(raw: u64, spec: HandleSpec) -> Self {
        Self { raw: raw as u32, spec }
    }
    /// For optional handles: `None` for `MX_HANDLE_INVALID`.
    pub const fn optional(raw: u64, spec: HandleSpec) -> Option<Self> {
        match raw as u32 {
            0 => None,
            _ => Some(Self::new(raw, spec)),
        }
    }
}

/// The pointee of pointers to C types this crate does not model (PCI).
#[derive(Debug)]
pub enum Opaque {}
