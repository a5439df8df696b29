//! The vocabulary the ABI is declared in.
//!
//! Everything here is plain `'static` data built by the macros in
//! in `macros.rs` and by the syscall table in [`crate::table`]. The kernel
//! reads it (handle requirements, syscall numbers); `abigen` reads all of it to
//! write the C headers, the Rust dispatch and bindings, and the reference docs.

use crate::object::ObjType;
use crate::rights::Rights;
use crate::status::Status;

// ---------------------------------------------------------------------------
// Constants, typedefs and structs (what the C headers are made of)
// ---------------------------------------------------------------------------

/// A named group of constants: one Rust enum, bitflags type or `const` block.
#[derive(Clone, Copy, Debug)]
pub struct ConstGroup {
    /// The group's doc comment (lines separated by `\n`).
    pub doc: &'static str,
    /// How the group is spelled in C.
    pub style: ConstStyle,
    /// For combinations ([`ConstDecl::parts`]): the group the parts are in.
    pub base: Option<&'static ConstGroup>,
    /// The constants, in declaration order.
    pub items: &'static [ConstDecl],
}

/// How a [`ConstGroup`] is written in C.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConstStyle {
    /// One `#define NAME value` per constant.
    Define {
        /// Notation of the value.
        fmt: Fmt,
        /// An optional cast, e.g. `mx_rights_t` gives `((mx_rights_t)1u << 3)`.
        cast: Option<&'static str>,
    },
    /// A C `enum`; `typedef: Some(name)` makes it `typedef enum {..} name;`.
    Enum {
        /// The typedef name, or `None` for an anonymous `enum { .. };`.
        typedef: Option<&'static str>,
    },
}

/// Notation of a `#define`d value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fmt {
    /// `(-10)`, `(32)`.
    Dec,
    /// `16u`.
    DecU,
    /// `0x1000u`.
    HexU,
    /// `(1u << 5)` for single bits, hex otherwise.
    Shift,
}

/// One constant.
#[derive(Clone, Copy, Debug)]
pub struct ConstDecl {
    /// The C name, e.g. `MX_RIGHT_READ`.
    pub c_name: &'static str,
    /// The Rust name, e.g. `READ`.
    pub rust_name: &'static str,
    /// The value (wide enough for every C integer type).
    pub value: i128,
    /// Doc comment.
    pub doc: &'static str,
    /// For combinations of flags: the Rust names of the flags OR-ed together.
    pub parts: &'static [&'static str],
}

/// A C `typedef` of a scalar type, mirrored by a Rust type alias.
#[derive(Clone, Copy, Debug)]
pub struct TypedefDecl {
    /// The C name, e.g. `mx_time_t`.
    pub c_name: &'static str,
    /// The C definition, e.g. `uint64_t`.
    pub c_def: &'static str,
    /// The Rust type the alias stands for, e.g. `u64`.
    pub rust_type: &'static str,
    /// Doc comment.
    pub doc: &'static str,
}

/// A `#[repr(C)]` struct and its C spelling.
#[derive(Clone, Copy, Debug)]
pub struct StructDecl {
    /// The C typedef name, e.g. `mx_port_packet_t`; the tag drops the `_t`.
    pub c_name: &'static str,
    /// The Rust type name.
    pub rust_name: &'static str,
    /// Doc comment.
    pub doc: &'static str,
    /// `size_of`, asserted at compile time against the contract.
    pub size: usize,
    /// `align_of`.
    pub align: usize,
    /// A C `union` (its one Rust field lists the union members as C decls).
    pub is_union: bool,
    /// Fields in order.
    pub fields: &'static [FieldDecl],
}

impl StructDecl {
    /// The C struct tag: `mx_port_packet_t` -> `mx_port_packet`.
    pub fn tag(&self) -> &'static str {
        self.c_name.strip_suffix("_t").unwrap_or(self.c_name)
    }
}

/// One field of a [`StructDecl`].
#[derive(Clone, Copy, Debug)]
pub struct FieldDecl {
    /// The Rust field name.
    pub rust_name: &'static str,
    /// Byte offset, asserted at compile time with `offset_of!`.
    pub offset: usize,
    /// The C declaration(s), e.g. `uint8_t inst_buf[15]`. More than one is an
    /// anonymous union of them (or, in a union type, its members).
    pub c: &'static [&'static str],
    /// Doc comment.
    pub doc: &'static str,
}

/// An opaque C type: named by some syscall prototypes, not modelled here.
#[derive(Clone, Copy, Debug)]
pub struct OpaqueDecl {
    /// The typedef name.
    pub c_name: &'static str,
    /// The struct tag (Magenta's, which is not always the name minus `_t`).
    pub tag: &'static str,
}

/// One C header under `sysroot/include/`.
#[derive(Clone, Copy, Debug)]
pub struct HeaderDecl {
    /// Path below `sysroot/include/`, e.g. `magenta/syscalls/port.h`.
    pub path: &'static str,
    /// What the header is for.
    pub doc: &'static str,
    /// Headers it includes (`<...>` paths).
    pub includes: &'static [&'static str],
    /// Its contents, in order.
    pub items: &'static [HeaderItem],
}

/// One piece of a [`HeaderDecl`].
#[derive(Clone, Copy, Debug)]
pub enum HeaderItem {
    /// A group of constants.
    Consts(&'static ConstGroup),
    /// A scalar typedef.
    Typedef(&'static TypedefDecl),
    /// A struct or union.
    Struct(&'static StructDecl),
    /// Literal C text: function-like macros and conditional typedefs, which
    /// have no data form. Their Rust counterparts are `const fn`s, checked
    /// against the C by the generated `abi_check.c`.
    Raw(&'static str),
    /// The typedefs of the struct types that syscall prototypes name but that
    /// `syscalls.h` does not define, generated from the table.
    ForwardDecls,
    /// The `extern` prototypes of every public syscall, generated from the table.
    Prototypes,
}

// ---------------------------------------------------------------------------
// Syscalls
// ---------------------------------------------------------------------------

/// One syscall, as declared in [`crate::table::SYSCALLS`].
#[derive(Clone, Copy, Debug)]
pub struct SyscallDecl {
    /// The name without the `mx_` prefix, e.g. `handle_close`.
    pub name: &'static str,
    /// The kernel syscall number; `None` for calls implemented only in the vDSO.
    pub num: Option<u32>,
    /// Attributes (blocking, vDSO-only, noreturn, ...).
    pub attrs: Attrs,
    /// The contract's scope tag (§3), e.g. `"W,Q"`, `"T*"`, `"–"`.
    pub tag: &'static str,
    /// The arguments, in C order.
    pub args: &'static [ArgDecl],
    /// The C return type: `mx_status_t`, `mx_time_t`, `uint64_t`, `uint32_t`
    /// or `void`.
    pub ret: &'static str,
    /// Doc comment: the first line is the summary.
    pub doc: &'static str,
    /// The documented failures, in the order the kernel checks them.
    pub errors: &'static [ErrorDecl],
}

impl SyscallDecl {
    /// True when the contract puts the call in scope: some tag letter without `*`.
    pub fn in_scope(&self) -> bool {
        self.tag
            .split(',')
            .map(|t| t.split_whitespace().next().unwrap_or(""))
            .any(|t| !t.is_empty() && t.chars().all(|c| c.is_ascii_uppercase()))
    }

    /// True when the kernel dispatches it (it has a number).
    pub fn is_kernel(&self) -> bool {
        self.num.is_some()
    }

    /// True when userspace may call it: everything but vDSO-private entries.
    pub fn is_public(&self) -> bool {
        !self.attrs.internal
    }

    /// The argument named `name`.
    pub fn arg(&self, name: &str) -> Option<&'static ArgDecl> {
        self.args.iter().find(|a| a.name == name)
    }
}

/// Syscall attributes (sysgen's, plus `positive`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Attrs {
    /// May block; the vDSO retries while the kernel returns
    /// `MX_ERR_INTERNAL_INTR_RETRY`.
    pub blocking: bool,
    /// Implemented in the vDSO only; has no kernel number.
    pub vdso: bool,
    /// Never returns.
    pub noreturn: bool,
    /// vDSO-private kernel entry; not declared to userspace.
    pub internal: bool,
    /// Result depends on nothing but the system (C `__CONST`).
    pub constant: bool,
    /// On success returns a non-negative count instead of `MX_OK`.
    pub positive: bool,
}

impl Attrs {
    /// No attributes.
    pub const fn new() -> Self {
        Self { blocking: false, vdso: false, noreturn: false, internal: false, constant: false, positive: false }
    }
    /// Sets `blocking`.
    pub const fn blocking(mut self) -> Self {
        self.blocking = true;
        self
    }
    /// Sets `vdso`.
    pub const fn vdso(mut self) -> Self {
        self.vdso = true;
        self
    }
    /// Sets `noreturn`.
    pub const fn noreturn(mut self) -> Self {
        self.noreturn = true;
        self
    }
    /// Sets `internal`.
    pub const fn internal(mut self) -> Self {
        self.internal = true;
        self
    }
    /// Sets `constant`.
    pub const fn constant(mut self) -> Self {
        self.constant = true;
        self
    }
    /// Sets `positive`.
    pub const fn positive(mut self) -> Self {
        self.positive = true;
        self
    }
}

/// One syscall argument.
#[derive(Clone, Copy, Debug)]
pub struct ArgDecl {
    /// The C argument name.
    pub name: &'static str,
    /// For values the C type; for pointers the pointee type (`void` for
    /// untyped buffers).
    pub c_type: &'static str,
    /// What the argument is.
    pub kind: ArgKind,
    /// A handle that may be `MX_HANDLE_INVALID`, or an out-pointer that may be
    /// NULL.
    pub optional: bool,
    /// A handle the call consumes (sysgen `handle_release`).
    pub release: bool,
}

/// What an argument is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArgKind {
    /// A scalar passed by value.
    Value,
    /// A handle the kernel looks up with these requirements.
    Handle(HandleSpec),
    /// A pointer the kernel writes new handle value(s) to.
    HandleOut(Len),
    /// A pointer the kernel reads from.
    In(Len),
    /// A pointer the kernel writes to.
    Out(Len),
    /// A pointer the kernel reads and writes back.
    InOut(Len),
}

/// How many elements a pointer argument addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Len {
    /// Exactly one.
    One,
    /// As many as the named argument says (elements, or bytes for `void`).
    Arg(&'static str),
    /// Depends on another argument in a way the call defines.
    Unspecified,
}

/// What a handle argument must be. The lookup checks, in order: the value
/// names a handle (`BAD_HANDLE`), the rights (`ACCESS_DENIED`), then the type
/// (`WRONG_TYPE`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HandleSpec {
    /// Accepted object types; empty means any type.
    pub types: &'static [ObjType],
    /// Rights the handle must have (more may be needed depending on other
    /// arguments; the syscall's doc says when).
    pub rights: Rights,
}

impl ArgDecl {
    const fn new(name: &'static str, c_type: &'static str, kind: ArgKind) -> Self {
        Self { name, c_type, kind, optional: false, release: false }
    }
    /// A scalar argument.
    pub const fn value(name: &'static str, c_type: &'static str) -> Self {
        Self::new(name, c_type, ArgKind::Value)
    }
    /// A handle argument.
    pub const fn handle(name: &'static str, types: &'static [ObjType], rights: Rights) -> Self {
        Self::new(name, "mx_handle_t", ArgKind::Handle(HandleSpec { types, rights }))
    }
    /// A pointer receiving new handles.
    pub const fn handle_out(name: &'static str, len: Len) -> Self {
        Self::new(name, "mx_handle_t", ArgKind::HandleOut(len))
    }
    /// An input pointer.
    pub const fn input(name: &'static str, c_type: &'static str, len: Len) -> Self {
        Self::new(name, c_type, ArgKind::In(len))
    }
    /// An output pointer.
    pub const fn output(name: &'static str, c_type: &'static str, len: Len) -> Self {
        Self::new(name, c_type, ArgKind::Out(len))
    }
    /// An in-out pointer.
    pub const fn inout(name: &'static str, c_type: &'static str, len: Len) -> Self {
        Self::new(name, c_type, ArgKind::InOut(len))
    }
    /// Marks the argument optional.
    pub const fn optional(mut self) -> Self {
        self.optional = true;
        self
    }
    /// Marks a handle argument as consumed by the call.
    pub const fn release(mut self) -> Self {
        self.release = true;
        self
    }

    /// True for every pointer kind.
    pub fn is_pointer(&self) -> bool {
        !matches!(self.kind, ArgKind::Value | ArgKind::Handle(_))
    }
}

/// One documented failure.
#[derive(Clone, Copy, Debug)]
pub struct ErrorDecl {
    /// The status returned.
    pub status: Status,
    /// When (empty if the status says it all).
    pub when: &'static str,
}
