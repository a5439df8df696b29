//! abigen: generates everything derived from the `mx-abi` crate.
//!
//! | output | from |
//! |---|---|
//! | `sysroot/include/magenta/**.h` | `mx_abi::headers::HEADERS` (constants, structs) and `SYSCALLS` (prototypes) |
//! | `syscalls/generated/abi_check.c` | the same; a C layout and value check |
//! | `syscalls/generated/dispatch.rs` | `SYSCALLS`: kernel decoding and `SyscallHandler` |
//! | `syscalls/generated/user.rs` | `SYSCALLS`: `extern "C"` vDSO declarations |
//! | `syscalls/generated/syscalls.md` | `SYSCALLS`: the syscall reference |
//! | `syscalls/generated/vdso.S` | `SYSCALLS`: the vDSO (kernel entry, retry loops, vDSO-only calls) |
//! | `syscalls/generated/libmagenta.S` | `SYSCALLS`: C stubs jumping through the vDSO table |
//! | `syscalls/generated/vdso_calls.rs` | `SYSCALLS`: the Rust vDSO table and calls (`mx` crate) |
//!
//! `cargo run -p abigen -- --write` refreshes them; `cargo test -p abigen`
//! fails when a checked-in file is stale.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use mx_abi::headers::{HEADERS, OPAQUE};
use mx_abi::meta::{ArgDecl, ArgKind, HeaderItem, StructDecl, SyscallDecl, TypedefDecl};
use mx_abi::SYSCALLS;

pub mod c;
pub mod doc;
pub mod rust;
pub mod vdso;

/// The command that rewrites every generated file.
pub const REFRESH: &str = "cargo run -p abigen -- --write";

/// One generated file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// Path relative to the workspace root.
    pub path: String,
    /// Its full contents.
    pub contents: String,
}

/// Every generated file, in memory.
pub fn generate() -> Vec<Output> {
    let mut out: Vec<Output> = HEADERS
        .iter()
        .map(|h| Output { path: format!("sysroot/include/{}", h.path), contents: c::header(h) })
        .collect();
    out.push(Output { path: "syscalls/generated/abi_check.c".into(), contents: c::abi_check() });
    out.push(Output { path: "syscalls/generated/dispatch.rs".into(), contents: rust::dispatch() });
    out.push(Output { path: "syscalls/generated/user.rs".into(), contents: rust::user() });
    out.push(Output { path: "syscalls/generated/syscalls.md".into(), contents: doc::reference() });
    out.push(Output { path: "syscalls/generated/vdso.S".into(), contents: vdso::vdso_s() });
    out.push(Output { path: "syscalls/generated/libmagenta.S".into(), contents: vdso::libmagenta_s() });
    out.push(Output { path: "syscalls/generated/vdso_calls.rs".into(), contents: vdso::vdso_calls_rs() });
    out
}

/// The workspace root (two levels above this crate).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The outputs whose file under `root` is missing or different.
pub fn stale(root: &Path) -> Vec<String> {
    generate()
        .into_iter()
        .filter(|o| std::fs::read_to_string(root.join(&o.path)).ok().as_deref() != Some(o.contents.as_str()))
        .map(|o| o.path)
        .collect()
}

/// Writes every output under `root`; returns the paths that changed.
pub fn write_all(root: &Path) -> std::io::Result<Vec<String>> {
    let mut changed = Vec::new();
    for o in generate() {
        let path = root.join(&o.path);
        if std::fs::read_to_string(&path).ok().as_deref() == Some(o.contents.as_str()) {
            continue;
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(&path, &o.contents)?;
        changed.push(o.path);
    }
    Ok(changed)
}

// ---------------------------------------------------------------------------
// Shared helpers
// ---------------------------------------------------------------------------

/// The paragraphs of a doc string, each joined into one line.
pub(crate) fn paragraphs(doc: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for line in doc.lines().map(str::trim) {
        if line.is_empty() {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
        } else {
            if !cur.is_empty() {
                cur.push(' ');
            }
            cur.push_str(line);
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// The first sentence of a doc string.
pub(crate) fn summary(doc: &str) -> String {
    let first = paragraphs(doc).into_iter().next().unwrap_or_default();
    match first.find(". ") {
        Some(i) => first[..=i].to_string(),
        None => first,
    }
}

/// Word-wraps `text` to `width` columns.
pub(crate) fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = vec![String::new()];
    for word in text.split_whitespace() {
        let cur = lines.last_mut().expect("never empty");
        if !cur.is_empty() && cur.len() + 1 + word.len() > width {
            lines.push(word.to_string());
        } else {
            if !cur.is_empty() {
                cur.push(' ');
            }
            cur.push_str(word);
        }
    }
    lines
}

/// The doc lines, trimmed, without leading or trailing blank lines.
pub(crate) fn doc_lines(doc: &str) -> Vec<&str> {
    let lines: Vec<&str> = doc.lines().map(str::trim).collect();
    let start = lines.iter().position(|l| !l.is_empty()).unwrap_or(lines.len());
    let end = lines.iter().rposition(|l| !l.is_empty()).map_or(start, |e| e + 1);
    lines[start..end].to_vec()
}

/// Prefixes each doc line (`// `, `/// `), indented. C comments (`//`) lose
/// rustdoc link syntax: "[`crate::Status`]" becomes "`Status`".
pub(crate) fn comment(out: &mut String, doc: &str, indent: &str, marker: &str) {
    for line in doc_lines(doc) {
        let line = if marker == "//" {
            line.replace("[`", "`").replace("`]", "`").replace("crate::", "")
        } else {
            line.into()
        };
        if line.is_empty() {
            let _ = writeln!(out, "{indent}{marker}");
        } else {
            let _ = writeln!(out, "{indent}{marker} {line}");
        }
    }
}

/// Every struct declared in a header.
pub(crate) fn structs() -> impl Iterator<Item = &'static StructDecl> {
    HEADERS.iter().flat_map(|h| h.items).filter_map(|i| match i {
        HeaderItem::Struct(s) => Some(*s),
        _ => None,
    })
}

/// Every scalar typedef declared in a header.
pub(crate) fn typedefs() -> impl Iterator<Item = &'static TypedefDecl> {
    HEADERS.iter().flat_map(|h| h.items).filter_map(|i| match i {
        HeaderItem::Typedef(t) => Some(*t),
        _ => None,
    })
}

/// The struct whose C name is `c_name`.
pub(crate) fn struct_named(c_name: &str) -> Option<&'static StructDecl> {
    structs().find(|s| s.c_name == c_name)
}

/// What a C type used in the syscall table is.
#[derive(Debug, Clone, Copy)]
pub(crate) enum CType {
    /// A C standard type (`uint32_t`, `size_t`, `bool`, `int`, `char`, `void`).
    Std(&'static str),
    /// An `mx_*_t` scalar typedef, with its Rust type.
    Typedef(&'static str),
    /// A struct of this crate.
    Struct(&'static StructDecl),
    /// A forward-declared C type not modelled in Rust.
    Opaque,
}

/// Classifies a C type name; panics on a name the ABI does not define, so a
/// typo in the table fails generation.
pub(crate) fn classify(c_type: &str) -> CType {
    const STD: &[(&str, &str)] = &[
        ("uint8_t", "u8"),
        ("uint16_t", "u16"),
        ("uint32_t", "u32"),
        ("uint64_t", "u64"),
        ("int32_t", "i32"),
        ("int64_t", "i64"),
        ("int", "i32"),
        ("size_t", "usize"),
        ("uintptr_t", "usize"),
        ("bool", "bool"),
        ("char", "u8"),
        ("void", "u8"),
    ];
    if let Some((_, r)) = STD.iter().find(|(c, _)| *c == c_type) {
        return CType::Std(r);
    }
    match c_type {
        "mx_handle_t" => return CType::Typedef("u32"),
        "mx_futex_t" => return CType::Typedef("i32"),
        _ => {}
    }
    if let Some(t) = typedefs().find(|t| t.c_name == c_type) {
        return CType::Typedef(t.rust_type);
    }
    if let Some(s) = struct_named(c_type) {
        return CType::Struct(s);
    }
    if OPAQUE.iter().any(|o| o.c_name == c_type) {
        return CType::Opaque;
    }
    panic!("C type `{c_type}` used by the syscall table is not declared in mx-abi");
}

/// The C declaration of one argument, e.g. `const void* bytes`.
pub(crate) fn c_arg(a: &ArgDecl) -> String {
    match a.kind {
        ArgKind::Value | ArgKind::Handle(_) => format!("{} {}", a.c_type, a.name),
        ArgKind::In(_) => format!("const {}* {}", a.c_type, a.name),
        ArgKind::Out(_) | ArgKind::InOut(_) | ArgKind::HandleOut(_) => format!("{}* {}", a.c_type, a.name),
    }
}

/// The C prototype `ret prefix+name(args)` (no `extern`, no attributes).
pub fn c_signature(s: &SyscallDecl, prefix: &str) -> String {
    let args: Vec<String> = s.args.iter().map(c_arg).collect();
    let args = if args.is_empty() { "void".to_string() } else { args.join(", ") };
    format!("{} {prefix}{}({args})", s.ret, s.name)
}

/// The public syscalls, in table order.
pub(crate) fn public() -> impl Iterator<Item = &'static SyscallDecl> {
    SYSCALLS.iter().filter(|s| s.is_public())
}

/// Struct types named by public prototypes that must be forward-declared:
/// those not defined in `types.h`, and the opaque ones.
pub(crate) fn forward_declared() -> BTreeSet<&'static str> {
    let in_types_h: BTreeSet<&str> = HEADERS
        .iter()
        .filter(|h| h.path == "magenta/types.h")
        .flat_map(|h| h.items)
        .filter_map(|i| match i {
            HeaderItem::Struct(s) => Some(s.c_name),
            _ => None,
        })
        .collect();
    public()
        .flat_map(|s| s.args)
        .filter(|a| a.is_pointer())
        .filter_map(|a| match classify(a.c_type) {
            CType::Struct(s) if !in_types_h.contains(s.c_name) => Some(s.c_name),
            CType::Opaque => Some(a.c_type),
            _ => None,
        })
        .chain(OPAQUE.iter().map(|o| o.c_name))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_are_first_sentences() {
        assert_eq!(
            summary(" Closes a handle; when it was\n the last. More."),
            "Closes a handle; when it was the last."
        );
        assert_eq!(paragraphs("a\nb\n\nc"), vec!["a b", "c"]);
    }

    #[test]
    fn every_table_type_is_declared() {
        for s in SYSCALLS {
            for a in s.args {
                classify(a.c_type);
            }
        }
    }
}
