//! The built vDSO: every public mx_ symbol exported, one `syscall` per
//! return-address label, retry loops where the table says blocking, and the
//! constants block at the documented offset.

use object::{Object, ObjectSymbol, SymbolScope};
use userland_tests::*;

/// The vDSO, built once for all the tests of this file (they run in parallel).
fn vdso() -> Option<Vec<u8>> {
    static IMAGE: std::sync::OnceLock<Option<Vec<u8>>> = std::sync::OnceLock::new();
    let image = IMAGE.get_or_init(|| {
        cc()?;
        let so = build_vdso(&scratch("vdso")).expect("build the vDSO");
        Some(std::fs::read(so).expect("read the vDSO"))
    });
    if image.is_none() {
        println!("skipped: no C compiler (gcc); the vDSO was not built");
    }
    image.clone()
}

#[test]
fn exports_every_public_call() {
    let Some(bytes) = vdso() else { return };
    let file = object::File::parse(&*bytes).unwrap();
    let dynsyms: Vec<(String, bool, u64)> =
        file.dynamic_symbols().map(|s| (s.name().unwrap().to_string(), s.is_weak(), s.address())).collect();
    for s in mx_abi::SYSCALLS.iter().filter(|s| s.is_public()) {
        let strong = dynsyms.iter().find(|(n, ..)| *n == format!("_mx_{}", s.name));
        let weak = dynsyms.iter().find(|(n, ..)| *n == format!("mx_{}", s.name));
        let (Some(strong), Some(weak)) = (strong, weak) else { panic!("mx_{} is not exported", s.name) };
        assert!(!strong.1 && weak.1, "_mx_{0} must be global and mx_{0} weak", s.name);
        assert_eq!(strong.2, weak.2, "mx_{} is an alias", s.name);
    }
    // Nothing else leaks into the dynamic symbol table.
    assert_eq!(dynsyms.len(), 2 * mx_abi::SYSCALLS.iter().filter(|s| s.is_public()).count());
    assert!(file.section_by_name(".rela.dyn").is_none(), "the vDSO must need no relocation");
    assert!(file.section_by_name(".hash").is_some(), "runtimes look symbols up through DT_HASH");
}

#[test]
fn one_syscall_per_return_label() {
    let Some(bytes) = vdso() else { return };
    let layout = tools::vdso::layout(&bytes).unwrap();
    for (call, via, off) in &layout.labels {
        let off = *off as usize;
        assert_eq!(&bytes[off - 2..off], [0x0f, 0x05], "{call} via {via}: the label must follow a syscall");
    }
    let dir = scratch("vdso-dis");
    let so = dir.join("vdso.so");
    std::fs::write(&so, &bytes).unwrap();
    assert_eq!(count_syscalls(&so).unwrap(), layout.labels.len(), "every syscall has its return label");
    for s in mx_abi::SYSCALLS.iter().filter(|s| s.is_kernel()) {
        let n = s.num.unwrap() as usize;
        assert!(!layout.sysret[n].is_empty(), "{} has no call site", s.name);
        let direct = layout.labels.iter().any(|(c, v, _)| c == s.name && *v == format!("mx_{}", s.name));
        assert_eq!(direct, s.is_public(), "{}: a public call has its own entry, an internal one none", s.name);
    }
    // The vDSO-only calls that enter the kernel.
    let via = |c: &str, v: &str| layout.labels.iter().any(|(call, f, _)| call == c && f == v);
    assert!(via("channel_call_noretry", "mx_channel_call") && via("channel_call_finish", "mx_channel_call"));
    assert!(via("vmar_unmap", "mx_vmar_unmap_handle_close_thread_exit"));
    assert!(via("futex_wake", "mx_futex_wake_handle_close_thread_exit"));
}

#[test]
fn blocking_calls_retry() {
    let Some(bytes) = vdso() else { return };
    let vdso_s = std::fs::read_to_string(root().join("syscalls/generated/vdso.S")).unwrap();
    for s in mx_abi::SYSCALLS.iter().filter(|s| s.is_public() && s.is_kernel()) {
        let body = vdso_s.split(&format!("\n_mx_{}:\n", s.name)).nth(1).unwrap().split(".cfi_endproc").next().unwrap();
        assert_eq!(body.contains("cmp $MX_ERR_INTERNAL_INTR_RETRY"), s.attrs.blocking, "{}", s.name);
    }
    let layout = tools::vdso::layout(&bytes).unwrap();
    assert_eq!(layout.code_size % 4096, 0);
}

#[test]
fn constants_block_at_the_documented_offset() {
    let Some(bytes) = vdso() else { return };
    let layout = tools::vdso::layout(&bytes).unwrap();
    assert_eq!(layout.constants_offset, layout.code_size, "the constants page follows the code");
    assert_eq!(layout.constants_size, 4096);
    let off = layout.constants_offset as usize;
    let block = mx_abi::vdso::VdsoConstants::UNSET.to_bytes();
    assert_eq!(&bytes[off..off + block.len()], block, "the image ships VdsoConstants::UNSET");
    let file = object::File::parse(&*bytes).unwrap();
    let sym = file.symbols().find(|s| s.name() == Ok("vdso_constants")).unwrap();
    assert_eq!(sym.address(), layout.constants_offset);
    assert_ne!(sym.scope(), SymbolScope::Dynamic, "vdso_constants is not exported");
    // The generated kernel table names every number.
    let text = tools::vdso::render(&layout, "test");
    assert!(text.contains(&format!("pub const VDSO_CONSTANTS_OFFSET: usize = {:#x};", layout.constants_offset)));
    assert!(text.contains("// 113 guest_set_trap"));
}

#[test]
fn mx_resolves_every_symbol() {
    let Some(bytes) = vdso() else { return };
    let file = object::File::parse(&*bytes).unwrap();
    let mut offsets = [0u64; mx::sys::SYMBOLS.len()];
    mx::vdso::lookup_all(&bytes, &mut offsets).unwrap();
    for (name, off) in mx::sys::SYMBOLS.iter().zip(offsets) {
        let sym = file.dynamic_symbols().find(|s| s.name() == Ok(name)).unwrap();
        assert_eq!(sym.address(), off, "{name}");
    }
    // What the runtime reads of a mapped vDSO is the first segment.
    let len = mx::vdso::first_segment_len(&bytes).unwrap();
    mx::vdso::lookup_all(&bytes[..len], &mut offsets).unwrap();
    assert_eq!(mx::vdso::DynSyms::new(&bytes).unwrap().lookup("mx_nonexistent").unwrap(), None);
}
