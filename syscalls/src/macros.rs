//! Declaration macros. Each one defines the Rust item *and* its `meta`
//! description in one place, so nothing about the ABI is written twice.
//!
//! - [`c_enum!`]: a `#[repr(int)]` enum with `TryFrom<int>` (user input is read
//!   as an integer, then converted; never transmuted) and a [`ConstGroup`].
//! - [`c_flags!`]: a `bitflags` type and a [`ConstGroup`] of its flags.
//! - [`c_combos!`]: named combinations of flags (default rights, masks).
//! - [`c_consts!`]: plain integer constants.
//! - [`c_typedefs!`]: scalar type aliases with their C spelling.
//! - [`c_struct!`]: a `#[repr(C)]` struct with compile-time size and offset
//!   assertions, a [`Wire`](crate::wire::Wire) encoding and a [`StructDecl`].
//!
//! [`ConstGroup`]: crate::meta::ConstGroup
//! [`StructDecl`]: crate::meta::StructDecl

/// Joins doc-comment lines into one string.
macro_rules! doc_str {
    ($($doc:literal)*) => { concat!($($doc, "\n"),*) };
}

macro_rules! c_enum {
    (
        $(#[doc = $doc:literal])*
        pub enum $name:ident : $repr:ident, $style:expr;
        {
            $( $(#[doc = $vdoc:literal])* $variant:ident = $value:expr => $cname:literal, )*
        }
    ) => {
        $(#[doc = $doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr($repr)]
        pub enum $name {
            $( $(#[doc = $vdoc])* $variant = $value, )*
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [Self] = &[$(Self::$variant),*];

            /// The C spelling of this group, for abigen.
            pub const C: $crate::meta::ConstGroup = $crate::meta::ConstGroup {
                doc: doc_str!($($doc)*),
                style: $style,
                base: None,
                items: &[$($crate::meta::ConstDecl {
                    c_name: $cname,
                    rust_name: stringify!($variant),
                    value: Self::$variant as i128,
                    doc: doc_str!($($vdoc)*),
                    parts: &[],
                },)*],
            };

            /// The C name, e.g. `MX_ERR_BAD_HANDLE`.
            pub const fn c_name(self) -> &'static str {
                match self { $(Self::$variant => $cname,)* }
            }

            /// The raw value.
            pub const fn into_raw(self) -> $repr {
                self as $repr
            }
        }

        impl TryFrom<$repr> for $name {
            type Error = $repr;
            /// Converts a raw value; unknown values come back as the error.
            fn try_from(raw: $repr) -> Result<Self, $repr> {
                $(if raw == Self::$variant as $repr {
                    return Ok(Self::$variant);
                })*
                Err(raw)
            }
        }

        impl From<$name> for $repr {
            fn from(v: $name) -> $repr {
                v as $repr
            }
        }
    };
}

macro_rules! c_flags {
    (
        $(#[doc = $doc:literal])*
        pub struct $name:ident : $repr:ty, $style:expr;
        {
            $( $(#[doc = $fdoc:literal])* const $flag:ident = $value:expr => $cname:literal; )*
        }
    ) => {
        bitflags::bitflags! {
            $(#[doc = $doc])*
            #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
            pub struct $name: $repr {
                $( $(#[doc = $fdoc])* const $flag = $value; )*
            }
        }

        impl $name {
            /// The C spelling of the flags, for abigen.
            pub const C: $crate::meta::ConstGroup = $crate::meta::ConstGroup {
                doc: doc_str!($($doc)*),
                style: $style,
                base: None,
                items: &[$($crate::meta::ConstDecl {
                    c_name: $cname,
                    rust_name: stringify!($flag),
                    value: Self::$flag.bits() as i128,
                    doc: doc_str!($($fdoc)*),
                    parts: &[],
                },)*],
            };
        }
    };
}

macro_rules! c_combos {
    (
        $(#[doc = $doc:literal])*
        impl $ty:ident { pub const $group:ident: ConstGroup = $style:expr; }
        {
            $( $(#[doc = $cdoc:literal])* const $name:ident = $($part:ident)|+ => $cname:literal; )*
        }
    ) => {
        impl $ty {
            $(
                $(#[doc = $cdoc])*
                pub const $name: Self = Self::empty()$(.union(Self::$part))+;
            )*

            $(#[doc = $doc])*
            pub const $group: $crate::meta::ConstGroup = $crate::meta::ConstGroup {
                doc: doc_str!($($doc)*),
                style: $style,
                base: Some(&Self::C),
                items: &[$($crate::meta::ConstDecl {
                    c_name: $cname,
                    rust_name: stringify!($name),
                    value: Self::$name.bits() as i128,
                    doc: doc_str!($($cdoc)*),
                    parts: &[$(stringify!($part)),+],
                },)*],
            };
        }
    };
}

macro_rules! c_consts {
    (
        $(#[doc = $doc:literal])*
        pub const $group:ident: ConstGroup = $style:expr;
        {
            $( $(#[doc = $cdoc:literal])* pub const $name:ident : $ty:ty = $value:expr => $cname:literal; )*
        }
    ) => {
        $( $(#[doc = $cdoc])* pub const $name: $ty = $value; )*

        $(#[doc = $doc])*
        pub const $group: $crate::meta::ConstGroup = $crate::meta::ConstGroup {
            doc: doc_str!($($doc)*),
            style: $style,
            base: None,
            items: &[$($crate::meta::ConstDecl {
                c_name: $cname,
                rust_name: stringify!($name),
                value: $name as i128,
                doc: doc_str!($($cdoc)*),
                parts: &[],
            },)*],
        };
    };
}

macro_rules! c_typedefs {
    ( $( $(#[doc = $doc:literal])* pub type $name:ident = $ty:ty => $cdef:literal; )* ) => {
        $(
            $(#[doc = $doc])*
            #[doc = concat!("\n\nC: `typedef ", $cdef, " ", stringify!($name), ";`")]
            #[allow(non_camel_case_types)]
            pub type $name = $ty;
        )*

        /// The C spelling of these typedefs, for abigen.
        pub mod typedef {
            $(
                #[allow(non_upper_case_globals)]
                #[doc = concat!("`", stringify!($name), "`")]
                pub const $name: $crate::meta::TypedefDecl = $crate::meta::TypedefDecl {
                    c_name: stringify!($name),
                    c_def: $cdef,
                    rust_type: stringify!($ty),
                    doc: doc_str!($($doc)*),
                };
            )*
        }
    };
}

macro_rules! c_struct {
    (
        $(#[doc = $doc:literal])*
        pub struct $name:ident as $cname:ident, size $size:literal;
        { $($body:tt)* }
    ) => {
        c_struct!(@impl false, [$($doc)*], $name, $cname, $size, { $($body)* });
    };
    (
        $(#[doc = $doc:literal])*
        pub union $name:ident as $cname:ident, size $size:literal;
        { $($body:tt)* }
    ) => {
        c_struct!(@impl true, [$($doc)*], $name, $cname, $size, { $($body)* });
    };
    (@impl $union:expr, [$($doc:literal)*], $name:ident, $cname:ident, $size:literal, {
        $( $(#[doc = $fdoc:literal])* @$off:literal pub $field:ident : $fty:ty as $($c:literal)|+; )*
    }) => {
        $(#[doc = $doc])*
        #[doc = concat!("\n\nC: `", stringify!($cname), "`, ", stringify!($size), " bytes.")]
        #[repr(C)]
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub struct $name {
            $(
                $(#[doc = $fdoc])*
                #[doc = concat!("\n\nAt offset ", stringify!($off), ".")]
                pub $field: $fty,
            )*
        }

        #[doc = concat!("The C name of [`", stringify!($name), "`].")]
        #[allow(non_camel_case_types)]
        pub type $cname = $name;

        // The layout the contract computed, checked by the compiler.
        const _: () = {
            assert!(core::mem::size_of::<$name>() == $size);
            $( assert!(core::mem::offset_of!($name, $field) == $off); )*
        };

        impl $name {
            /// The C spelling of this struct, for abigen.
            pub const C: $crate::meta::StructDecl = $crate::meta::StructDecl {
                c_name: stringify!($cname),
                rust_name: stringify!($name),
                doc: doc_str!($($doc)*),
                size: $size,
                align: core::mem::align_of::<$name>(),
                is_union: $union,
                fields: &[$($crate::meta::FieldDecl {
                    rust_name: stringify!($field),
                    offset: $off,
                    c: &[$($c),+],
                    doc: doc_str!($($fdoc)*),
                },)*],
            };

            /// Decodes the C byte layout (little-endian, padding ignored).
            pub fn from_bytes(bytes: &[u8; $size]) -> Self {
                <Self as $crate::wire::Wire>::read(bytes).unwrap_or_default()
            }

            /// Encodes the C byte layout; padding bytes are zero.
            pub fn to_bytes(&self) -> [u8; $size] {
                let mut out = [0u8; $size];
                let _complete = <Self as $crate::wire::Wire>::write(self, &mut out);
                debug_assert!(_complete.is_some());
                out
            }
        }

        impl $crate::wire::Wire for $name {
            const SIZE: usize = $size;
            fn read(bytes: &[u8]) -> Option<Self> {
                if bytes.len() < $size {
                    return None;
                }
                Some(Self { $( $field: $crate::wire::Wire::read(bytes.get($off..)?)?, )* })
            }
            fn write(&self, out: &mut [u8]) -> Option<()> {
                if out.len() < $size {
                    return None;
                }
                $( $crate::wire::Wire::write(&self.$field, out.get_mut($off..)?)?; )*
                Some(())
            }
        }
    };
}

// ---------------------------------------------------------------------------
// The syscall table DSL
// ---------------------------------------------------------------------------

/// Declares the syscall table. Each entry reads like a sysgen line:
///
/// ```text
/// /// Summary line.
/// /// More detail.
/// syscall 6 object_wait_one [blocking] "W" (
///     handle: handle(any; READ),          // handle-in: types (or `any`); rights
///     waitfor: mx_signals_t,              // value
///     observed: out(mx_signals_t) optional, // out-pointer, may be NULL
/// ) -> mx_status_t {
///     BadHandle, AccessDenied("no READ right"), ...  // errors in check order
/// }
/// ```
///
/// The number is the kernel syscall number, or `vdso` for vDSO-only calls.
/// Pointer kinds: `in(T)`, `out(T)`, `inout(T)` for one element,
/// `in(T[len])` for as many as argument `len` says (`void` = bytes),
/// `in(T[?])` when another argument defines it; `handle_out` /
/// `handle_out[len]` receive new handles. Flags after an argument:
/// `optional`, `release`.
macro_rules! syscalls {
    (
        $(
            $(#[doc = $doc:literal])*
            syscall $num:tt $name:ident $([$($attr:ident)*])? $tag:literal ($($args:tt)*) -> $ret:ident
            { $($errors:tt)* }
        )*
    ) => {
        /// Every syscall of the contract (§3), in sysgen order.
        pub const SYSCALLS: &[$crate::meta::SyscallDecl] = &[$(
            $crate::meta::SyscallDecl {
                name: stringify!($name),
                num: syscall_num!($num),
                attrs: syscall_attrs!($num)$($(.$attr())*)?,
                tag: $tag,
                args: syscall_args!(@[] $($args)* ,),
                ret: stringify!($ret),
                doc: doc_str!($($doc)*),
                errors: syscall_errors!($($errors)*),
            },
        )*];
    };
}

macro_rules! syscall_num {
    (vdso) => {
        None
    };
    ($n:literal) => {
        Some($n)
    };
}

macro_rules! syscall_attrs {
    (vdso) => {
        $crate::meta::Attrs::new().vdso()
    };
    ($n:literal) => {
        $crate::meta::Attrs::new()
    };
}

macro_rules! syscall_errors {
    ($($status:ident $(($when:literal))?),* $(,)?) => {
        &[$($crate::meta::ErrorDecl { status: $crate::status::Status::$status, when: concat!("" $(, $when)?) }),*]
    };
}

macro_rules! syscall_len {
    () => {
        $crate::meta::Len::One
    };
    ([?]) => {
        $crate::meta::Len::Unspecified
    };
    ([$len:ident]) => {
        $crate::meta::Len::Arg(stringify!($len))
    };
}

macro_rules! syscall_args {
    (@[$($done:expr,)*] $(,)?) => {
        &[$($done),*]
    };
    (@[$($done:expr,)*] $n:ident : handle(any; $($r:ident)|+) $($flag:ident)*, $($rest:tt)*) => {
        syscall_args!(@[$($done,)* $crate::meta::ArgDecl::handle(
            stringify!($n), &[], $crate::rights::Rights::empty()$(.union($crate::rights::Rights::$r))+
        )$(.$flag())*,] $($rest)*)
    };
    (@[$($done:expr,)*] $n:ident : handle($($t:ident)|+; $($r:ident)|+) $($flag:ident)*, $($rest:tt)*) => {
        syscall_args!(@[$($done,)* $crate::meta::ArgDecl::handle(
            stringify!($n), &[$($crate::object::ObjType::$t),+],
            $crate::rights::Rights::empty()$(.union($crate::rights::Rights::$r))+
        )$(.$flag())*,] $($rest)*)
    };
    (@[$($done:expr,)*] $n:ident : handle_out $([$($len:tt)+])? $($flag:ident)*, $($rest:tt)*) => {
        syscall_args!(@[$($done,)* $crate::meta::ArgDecl::handle_out(
            stringify!($n), syscall_len!($([$($len)+])?)
        )$(.$flag())*,] $($rest)*)
    };
    (@[$($done:expr,)*] $n:ident : in($t:ident $([$($len:tt)+])?) $($flag:ident)*, $($rest:tt)*) => {
        syscall_args!(@[$($done,)* $crate::meta::ArgDecl::input(
            stringify!($n), stringify!($t), syscall_len!($([$($len)+])?)
        )$(.$flag())*,] $($rest)*)
    };
    (@[$($done:expr,)*] $n:ident : out($t:ident $([$($len:tt)+])?) $($flag:ident)*, $($rest:tt)*) => {
        syscall_args!(@[$($done,)* $crate::meta::ArgDecl::output(
            stringify!($n), stringify!($t), syscall_len!($([$($len)+])?)
        )$(.$flag())*,] $($rest)*)
    };
    (@[$($done:expr,)*] $n:ident : inout($t:ident $([$($len:tt)+])?) $($flag:ident)*, $($rest:tt)*) => {
        syscall_args!(@[$($done,)* $crate::meta::ArgDecl::inout(
            stringify!($n), stringify!($t), syscall_len!($([$($len)+])?)
        )$(.$flag())*,] $($rest)*)
    };
    (@[$($done:expr,)*] $n:ident : $t:ident, $($rest:tt)*) => {
        syscall_args!(@[$($done,)* $crate::meta::ArgDecl::value(stringify!($n), stringify!($t)),] $($rest)*)
    };
}
