//! The Rust programs (init, hello) as built for x86_64-unknown-none: static
//! executables at the user base, no `syscall` instruction, and the ELF
//! loader's plan matches their program headers. They also go through a bootfs
//! image and come back out intact.

use object::{Object, ObjectSegment, SegmentFlags};
use userland_tests::*;

#[test]
fn loader_plans_built_programs() {
    let out = build_rust(&["hello", "init"]).unwrap();
    let mut files = Vec::new();
    for name in ["hello", "init"] {
        let path = out.join(name);
        let bytes = std::fs::read(&path).unwrap();
        let file = object::File::parse(&*bytes).unwrap();
        assert_eq!(file.kind(), object::ObjectKind::Executable, "{name}: static, not PIE");

        let headers_len = mx::elf::headers_len(&bytes[..64]).unwrap();
        let plan = mx::elf::plan(&bytes[..headers_len]).unwrap();
        assert_eq!(plan.entry, file.entry());
        let loads: Vec<_> = file.segments().filter(|s| s.size() > 0).collect();
        assert_eq!(plan.segments().len(), loads.len(), "{name}");
        for (seg, load) in plan.segments().iter().zip(&loads) {
            assert_eq!((seg.vaddr, seg.memsz), (load.address(), load.size()));
            assert_eq!((seg.offset, seg.filesz), load.file_range());
            let SegmentFlags::Elf { p_flags, .. } = load.flags() else { panic!() };
            assert_eq!(seg.flags, p_flags.0);
        }
        // W^X, page-aligned, at or above the user base, entry in an executable mapping.
        for m in plan.mappings() {
            assert_eq!(m.start % 4096, 0);
            assert_eq!(m.end % 4096, 0);
            assert!(m.start >= 0x100_0000);
            let p = m.perms;
            assert!(!(p.contains(mx_abi::VmFlags::PERM_WRITE) && p.contains(mx_abi::VmFlags::PERM_EXECUTE)), "{name}");
        }
        let exec = plan.mappings().iter().find(|m| m.start <= plan.entry && plan.entry < m.end).unwrap();
        assert!(exec.perms.contains(mx_abi::VmFlags::PERM_EXECUTE));
        assert_eq!(count_syscalls(&path).unwrap(), 0, "{name} contains a syscall instruction");
        files.push((format!("bin/{name}"), bytes));
    }

    // Through bootfs and back.
    files.push(("etc/init.rc".into(), b"bin/hello\n".to_vec()));
    let image = tools::bootfs::build(&files).unwrap();
    let dir = mx::bootfs::Directory::parse(&image).unwrap();
    for (name, bytes) in &files {
        let e = dir.find(name).unwrap();
        assert_eq!(e.offset % 4096, 0);
        assert_eq!(&image[e.offset as usize..(e.offset + e.size) as usize], &bytes[..], "{name}");
    }
}
