//! Hostile input (issue §11): nothing user mode does may crash, hang or
//! leak the kernel. Raw `syscall` instructions outside the vDSO, the
//! vDSO's own `syscall` reached with another number, bad pointers of
//! every kind, forged and closed handles, wrong types, and children that
//! die of every kind of fault while the kernel keeps running.

use crate::child;
use crate::fixture::*;
use crate::harness::Outcome;
use crate::{cases, expect, expect_eq, expect_status, ok};
use mx::sys::*;
use mx::{Event, Status, Vmo};

cases![
    raw_syscall_outside_vdso_is_bad_syscall,
    raw_exit_calls_outside_vdso_do_nothing,
    vdso_site_with_its_own_number_works,
    vdso_site_with_other_number_is_bad_syscall,
    vdso_site_with_high_bits_is_bad_syscall,
    out_pointer_straddling_a_hole_writes_nothing,
    misaligned_pointers_work,
    non_canonical_pointers_invalid,
    huge_lengths_invalid,
    closed_handle_is_bad_handle,
    forged_handle_values_are_bad_handles,
    wrong_types_everywhere,
    child_ud2_dies,
    child_divide_by_zero_dies,
    child_jump_to_kernel_dies,
    child_jump_non_canonical_dies,
    child_write_read_only_dies,
    child_execute_no_exec_dies,
    child_stack_unmapped_dies,
    child_read_null_dies,
    child_privileged_instruction_dies,
    child_int3_dies,
    child_int80_dies,
    child_sysenter_dies,
    kernel_survives_fault_storm,
];

/// A `syscall` instruction here, outside the vDSO, with `number` and
/// arguments that would be harmful if the kernel ran the call.
fn raw_syscall(number: u64, a: [u64; 6]) -> i64 {
    let ret: i64;
    // SAFETY: the kernel must refuse the call; it clobbers rcx and r11 and
    // zeroes the argument registers, all declared here.
    unsafe {
        core::arch::asm!(
            "syscall",
            inlateout("rax") number as i64 => ret,
            inlateout("rdi") a[0] => _,
            inlateout("rsi") a[1] => _,
            inlateout("rdx") a[2] => _,
            inlateout("r10") a[3] => _,
            inlateout("r8") a[4] => _,
            inlateout("r9") a[5] => _,
            lateout("rcx") _,
            lateout("r11") _,
        );
    }
    ret
}

const BAD_SYSCALL: i64 = Status::BadSyscall as i32 as i64;

fn raw_syscall_outside_vdso_is_bad_syscall() -> Outcome {
    let event = ok!(Event::create());
    let h = u64::from(event.raw());
    for n in [0u64, 3, 4, 17, 54, 130, 131, 1000, u64::MAX, 1 << 32] {
        expect_eq!(raw_syscall(n, [h, 0, 0, 0, 0, 0]), BAD_SYSCALL);
    }
    // handle_close (#3) of a live handle did nothing.
    expect!(basic(event.raw()).is_ok(), "a raw syscall closed the handle");
    Ok(())
}

fn raw_exit_calls_outside_vdso_do_nothing() -> Outcome {
    // process_exit (#31), thread_exit (#25), task_kill (#41) of ourselves:
    // none may run.
    let me = ok!(Event::create());
    expect_eq!(raw_syscall(31, [7, 0, 0, 0, 0, 0]), BAD_SYSCALL);
    expect_eq!(raw_syscall(25, [0; 6]), BAD_SYSCALL);
    expect_eq!(raw_syscall(41, [u64::from(me.raw()), 0, 0, 0, 0, 0]), BAD_SYSCALL);
    Ok(())
}

/// The address of the `syscall` instruction of a plain vDSO stub (`mov
/// $n, %eax; syscall; ret`) for `mx_handle_close` (#3).
fn handle_close_site() -> Result<usize, alloc::string::String> {
    let index = SYMBOLS.iter().position(|s| *s == "_mx_handle_close").ok_or("no _mx_handle_close slot")?;
    let func = SLOTS[index].load(core::sync::atomic::Ordering::Relaxed);
    // SAFETY: the vDSO code is mapped readable at `func`.
    let bytes = unsafe { core::slice::from_raw_parts(func as *const u8, 8) };
    if bytes != [0xb8, 3, 0, 0, 0, 0x0f, 0x05, 0xc3] {
        return Err(alloc::format!("unexpected _mx_handle_close code {bytes:x?}"));
    }
    Ok(func + 5)
}

/// Calls the vDSO's `syscall; ret` at `site` with `rax = number`, `rdi = arg`.
fn call_site(site: usize, number: u64, arg: u64) -> i64 {
    let ret: i64;
    // SAFETY: `site` is `syscall; ret` in the vDSO; the call clobbers
    // what a C call may, plus the kernel's argument zeroing.
    unsafe {
        core::arch::asm!(
            "call {site}",
            site = in(reg) site,
            inlateout("rax") number as i64 => ret,
            inlateout("rdi") arg => _,
            clobber_abi("C"),
        );
    }
    ret
}

fn vdso_site_with_its_own_number_works() -> Outcome {
    let site = ok!(handle_close_site());
    expect_eq!(call_site(site, 3, 0), 0);
    let event = ok!(Event::create()).into_handle().into_raw();
    expect_eq!(call_site(site, 3, u64::from(event)), 0);
    expect_eq!(basic(event).err(), Some(Status::BadHandle));
    Ok(())
}

fn vdso_site_with_other_number_is_bad_syscall() -> Outcome {
    let site = ok!(handle_close_site());
    let event = ok!(Event::create());
    for n in [0u64, 4, 25, 31, 41, 54, 130, 131, 1000, u64::MAX] {
        expect_eq!(call_site(site, n, u64::from(event.raw())), BAD_SYSCALL);
    }
    expect!(basic(event.raw()).is_ok());
    Ok(())
}

fn vdso_site_with_high_bits_is_bad_syscall() -> Outcome {
    let site = ok!(handle_close_site());
    let event = ok!(Event::create());
    expect_eq!(call_site(site, 3 | (1 << 32), u64::from(event.raw())), BAD_SYSCALL);
    expect_eq!(call_site(site, 3 | (1 << 63), u64::from(event.raw())), BAD_SYSCALL);
    expect!(basic(event.raw()).is_ok());
    Ok(())
}

/// An out-pointer whose last bytes fall in a hole: INVALID_ARGS, and the
/// mapped part is not written.
fn out_pointer_straddling_a_hole_writes_nothing() -> Outcome {
    let (m, page) = ok!(page_then_hole());
    let v = ok!(Vmo::create(0x1234));
    let end = page + 4096 - 4;
    // SAFETY: the first 4 bytes are ours; the kernel must refuse the rest.
    unsafe { core::ptr::write_volatile(end as *mut u32, 0xaaaa_aaaa) };
    expect_status!(unsafe { mx_vmo_get_size(v.raw(), end as *mut u64) }, Status::InvalidArgs);
    let mut out = [0u32; 1];
    let _ = &mut out;
    expect_eq!(unsafe { core::ptr::read_volatile(end as *const u32) }, 0xaaaa_aaaa);
    let before = ok!(counts());
    expect_status!(unsafe { mx_vmo_create(4096, 0, (page + 4096 - 2) as *mut u32) }, Status::InvalidArgs);
    let mut addr = 0usize;
    let _ = &mut addr;
    expect_status!(
        unsafe { mx_vmar_map(ok!(root()).raw(), 0, v.raw(), 0, 4096, 3, (page + 4096 - 4) as *mut usize) },
        Status::InvalidArgs
    );
    let after = ok!(counts());
    expect_eq!((after.vmos, after.handles), (before.vmos, before.handles));
    let mut actual = 0;
    let mut buf = [0u8; 8];
    expect_status!(
        unsafe { mx_vmo_read(v.raw(), (page + 4096 - 4) as *mut _, 0, 8, &mut actual) },
        Status::InvalidArgs
    );
    expect_status!(
        unsafe { mx_vmo_read(v.raw(), buf.as_mut_ptr().cast(), 0, 8, (page + 4090) as *mut usize) },
        Status::InvalidArgs
    );
    drop(m);
    Ok(())
}

fn misaligned_pointers_work() -> Outcome {
    let v = ok!(Vmo::create(0x1234_5678));
    let mut buf = [0u8; 32];
    let p = buf.as_mut_ptr().wrapping_add(3);
    expect_status!(unsafe { mx_vmo_get_size(v.raw(), p.cast()) }, Status::Ok);
    expect_eq!(u64::from_le_bytes(buf[3..11].try_into().unwrap_or([0; 8])), 0x1234_5678);
    let mut h = [0u8; 16];
    expect_status!(unsafe { mx_vmo_create(4096, 0, h.as_mut_ptr().wrapping_add(1).cast()) }, Status::Ok);
    let raw = u32::from_le_bytes(h[1..5].try_into().unwrap_or([0; 4]));
    expect_eq!(ok!(basic(raw)).obj_type, 3);
    expect_status!(unsafe { mx_handle_close(raw) }, Status::Ok);
    Ok(())
}

fn non_canonical_pointers_invalid() -> Outcome {
    let v = ok!(Vmo::create(4096));
    let mut actual = 0;
    for bad in [0x8000_0000_0000_0000usize, 0x0000_8000_0000_0000, 0xffff_8000_0000_0000, usize::MAX - 7] {
        expect_status!(unsafe { mx_vmo_get_size(v.raw(), bad as *mut _) }, Status::InvalidArgs);
        expect_status!(unsafe { mx_vmo_read(v.raw(), bad as *mut _, 0, 8, &mut actual) }, Status::InvalidArgs);
        expect_status!(unsafe { mx_vmo_write(v.raw(), bad as *const _, 0, 8, &mut actual) }, Status::InvalidArgs);
        let mut out = 0;
        expect_status!(
            unsafe { mx_process_create(child::job(), bad as *const _, 1, 0, &mut out, &mut out) },
            Status::InvalidArgs
        );
    }
    Ok(())
}

fn huge_lengths_invalid() -> Outcome {
    let v = ok!(Vmo::create(1 << 30));
    let mut buf = [0u8; 64];
    let mut actual = 0;
    // A 64-byte buffer claimed to be huge: the kernel must not run past it.
    for len in [1usize << 30, usize::MAX, usize::MAX / 2] {
        expect_status!(
            unsafe { mx_vmo_read(v.raw(), buf.as_mut_ptr().cast(), 0, len, &mut actual) },
            Status::InvalidArgs
        );
        expect_status!(unsafe { mx_vmo_write(v.raw(), buf.as_ptr().cast(), 0, len, &mut actual) }, Status::InvalidArgs);
    }
    let before = ok!(counts());
    // A huge op_range commit of a small VMO commits what the VMO has.
    let small = ok!(Vmo::create(4096));
    expect_status!(unsafe { mx_vmo_op_range(small.raw(), 1, 0, u64::MAX, core::ptr::null_mut(), 0) }, Status::Ok);
    expect_eq!(ok!(counts()).committed_pages, before.committed_pages + 1);
    Ok(())
}

fn closed_handle_is_bad_handle() -> Outcome {
    let v = ok!(Vmo::create(4096)).into_handle().into_raw();
    expect_status!(unsafe { mx_handle_close(v) }, Status::Ok);
    let mut size = 0;
    let mut actual = 0;
    let mut buf = [0u8; 8];
    expect_status!(unsafe { mx_vmo_get_size(v, &mut size) }, Status::BadHandle);
    expect_status!(unsafe { mx_vmo_read(v, buf.as_mut_ptr().cast(), 0, 8, &mut actual) }, Status::BadHandle);
    expect_status!(unsafe { mx_vmo_set_size(v, 0) }, Status::BadHandle);
    let root = ok!(root());
    let mut addr = 0;
    expect_status!(unsafe { mx_vmar_map(root.raw(), 0, v, 0, 4096, 1, &mut addr) }, Status::BadHandle);
    Ok(())
}

fn forged_handle_values_are_bad_handles() -> Outcome {
    let root = ok!(root());
    for forged in [1u32, 3, 0x7fff_ffff, 0xffff_ffff, 0x8000_0001, 0x1234_5677, root.raw() ^ 2, root.raw() ^ 0x100] {
        if basic(forged).is_ok() {
            continue; // happens to be one of ours
        }
        let mut size = 0;
        let mut out = 0;
        expect_status!(unsafe { mx_vmo_get_size(forged, &mut size) }, Status::BadHandle);
        expect_status!(unsafe { mx_vmar_destroy(forged) }, Status::BadHandle);
        expect_status!(unsafe { mx_vmar_unmap(forged, 0x100_0000, 4096) }, Status::BadHandle);
        expect_status!(unsafe { mx_task_kill(forged) }, Status::BadHandle);
        expect_status!(unsafe { mx_thread_start(forged, 0, 0, 0, 0) }, Status::BadHandle);
        expect_status!(unsafe { mx_thread_create(forged, b"x".as_ptr().cast(), 1, 0, &mut out) }, Status::BadHandle);
        expect_status!(unsafe { mx_process_start(forged, forged, 0, 0, forged, 0) }, Status::BadHandle);
        expect_status!(unsafe { mx_handle_close(forged) }, Status::BadHandle);
    }
    Ok(())
}

fn wrong_types_everywhere() -> Outcome {
    let event = ok!(Event::create());
    let v = ok!(Vmo::create(4096));
    let root = ok!(root());
    let mut size = 0;
    let mut out = 0;
    expect_status!(unsafe { mx_vmo_get_size(root.raw(), &mut size) }, Status::WrongType);
    expect_status!(unsafe { mx_vmar_destroy(event.raw()) }, Status::WrongType);
    expect_status!(unsafe { mx_vmar_unmap(v.raw(), 0x100_0000, 4096) }, Status::WrongType);
    expect_status!(unsafe { mx_vmar_protect(v.raw(), 0x100_0000, 4096, 1) }, Status::WrongType);
    expect_status!(unsafe { mx_thread_create(v.raw(), b"x".as_ptr().cast(), 1, 0, &mut out) }, Status::WrongType);
    let mut addr = 0;
    expect_status!(unsafe { mx_vmar_map(root.raw(), 0, event.raw(), 0, 4096, 1, &mut addr) }, Status::WrongType);
    Ok(())
}

fn dies(role: &str) -> Outcome {
    let code = ok!(child::run(role));
    expect_eq!(code, -1);
    Ok(())
}

fn child_ud2_dies() -> Outcome {
    dies("fault:ud2")
}

fn child_divide_by_zero_dies() -> Outcome {
    dies("fault:div0")
}

fn child_jump_to_kernel_dies() -> Outcome {
    dies("fault:jump-kernel")
}

fn child_jump_non_canonical_dies() -> Outcome {
    dies("fault:jump-noncanonical")
}

fn child_write_read_only_dies() -> Outcome {
    dies("fault:write-ro")
}

fn child_execute_no_exec_dies() -> Outcome {
    dies("fault:exec-nx")
}

fn child_stack_unmapped_dies() -> Outcome {
    dies("fault:stack-unmapped")
}

fn child_read_null_dies() -> Outcome {
    dies("fault:read-null")
}

fn child_privileged_instruction_dies() -> Outcome {
    dies("fault:hlt")
}

fn child_int3_dies() -> Outcome {
    dies("fault:int3")
}

fn child_int80_dies() -> Outcome {
    dies("fault:int80")
}

fn child_sysenter_dies() -> Outcome {
    dies("fault:sysenter")
}

/// Several faulting children at once; the kernel and the suite go on.
fn kernel_survives_fault_storm() -> Outcome {
    let roles = ["fault:ud2", "fault:div0", "fault:jump-kernel", "fault:write-ro", "fault:stack-unmapped", "spin"];
    let mut children = alloc::vec::Vec::new();
    for role in roles {
        children.push(ok!(child::spawn(role, alloc::vec::Vec::new())));
    }
    if let Some(spinner) = children.last() {
        ok!(spinner.kill());
    }
    for c in &children {
        expect_eq!(ok!(child::wait_exit(c)), -1);
    }
    let v = ok!(Vmo::create(4096));
    ok!(v.write_all(b"still here", 0));
    Ok(())
}
