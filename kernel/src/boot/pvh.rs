//! QEMU's PVH direct boot (`qemu -kernel kernel.elf -initrd bootfs`).
//!
//! QEMU finds the Xen `PHYS32_ENTRY` ELF note, copies the kernel's segments to
//! their physical addresses and enters `pvh_entry32` in 32-bit protected mode
//! with paging off and `ebx` pointing at an `hvm_start_info`. The stub below
//! builds just enough page tables to reach the higher half (identity map of
//! the first 4 GiB, the kernel's 1 GiB window at -2 GiB), enters long mode and
//! calls [`pvh_start`], which copies the start info into a [`BootInfo`].

use super::{c_str_bytes, BootInfo, Loader};
use kcore::memmap::RegionKind;

/// Where the linker script puts the kernel: virtual = physical + this.
pub const KERNEL_VIRT_BASE: u64 = 0xffff_ffff_8000_0000;
const BOOT_STACK_SIZE: usize = 64 * 1024;

#[repr(C, align(4096))]
struct BootPageTables {
    pml4: [u64; 512],
    pdpt_low: [u64; 512],
    pdpt_high: [u64; 512],
    pd: [[u64; 512]; 4],
}

#[repr(C, align(16))]
struct BootStack([u8; BOOT_STACK_SIZE]);

#[no_mangle]
static mut PVH_PAGE_TABLES: BootPageTables =
    BootPageTables { pml4: [0; 512], pdpt_low: [0; 512], pdpt_high: [0; 512], pd: [[0; 512]; 4] };

#[no_mangle]
static mut PVH_BOOT_STACK: BootStack = BootStack([0; BOOT_STACK_SIZE]);

core::arch::global_asm!(
    r#"
    .section .note.pvh, "a", @note
    .balign 4
    .long 4                     // name size ("Xen\0")
    .long 8                     // descriptor size
    .long 18                    // XEN_ELFNOTE_PHYS32_ENTRY
    .asciz "Xen"
    .balign 4
    .quad pvh_entry32 - {kvb}

    .section .text.pvh, "ax"
    .code32
    .global pvh_entry32
pvh_entry32:
    cli
    cld
    mov edi, ebx                // hvm_start_info, kept for pvh_start

    // 2048 PD entries: identity map of 0..4 GiB in 2 MiB pages.
    mov edx, offset PVH_PAGE_TABLES - {kvb} + 3 * 4096
    xor ecx, ecx
1:  mov eax, ecx
    shl eax, 21
    or eax, 0x83                // present | writable | 2 MiB page
    mov [edx + ecx * 8], eax
    mov eax, ecx
    shr eax, 11                 // bits 32+ of ecx * 2 MiB
    mov [edx + ecx * 8 + 4], eax
    inc ecx
    cmp ecx, 2048
    jb 1b

    mov ebx, offset PVH_PAGE_TABLES - {kvb}
    // pdpt_low[0..4] -> the four PDs
    lea eax, [edx + 3]
    mov [ebx + 4096], eax
    add eax, 4096
    mov [ebx + 4096 + 8], eax
    add eax, 4096
    mov [ebx + 4096 + 16], eax
    add eax, 4096
    mov [ebx + 4096 + 24], eax
    // pdpt_high[510] -> first PD: -2 GiB maps physical 0..1 GiB
    lea eax, [edx + 3]
    mov [ebx + 2 * 4096 + 510 * 8], eax
    // pml4[0] -> pdpt_low, pml4[511] -> pdpt_high
    lea eax, [ebx + 4096 + 3]
    mov [ebx], eax
    lea eax, [ebx + 2 * 4096 + 3]
    mov [ebx + 511 * 8], eax

    mov cr3, ebx
    mov eax, cr4
    or eax, 1 << 5              // PAE
    mov cr4, eax
    mov ecx, 0xc0000080         // EFER
    rdmsr
    or eax, 1 << 8              // LME
    wrmsr
    mov eax, cr0
    or eax, 0x80010001          // PG | WP | PE
    mov cr0, eax

    lgdt [pvh_gdt_pointer - {kvb}]
    jmp fword ptr [pvh_far_jump - {kvb}]

    .code64
pvh_entry64:
    mov ax, 0x10
    mov ds, ax
    mov es, ax
    mov ss, ax
    xor eax, eax
    mov fs, ax
    mov gs, ax
    movabs rsp, offset PVH_BOOT_STACK + {stack_size}
    xor ebp, ebp
    mov edi, edi                // zero-extend the start-info address
    movabs rax, offset {start}
    call rax
    ud2

    .section .rodata.pvh, "a"
    .balign 8
pvh_gdt:
    .quad 0
    .quad 0x00af9a000000ffff    // 64-bit code
    .quad 0x00cf92000000ffff    // data
pvh_gdt_pointer:
    .word pvh_gdt_pointer - pvh_gdt - 1
    .long pvh_gdt - {kvb}
pvh_far_jump:
    .long pvh_entry64 - {kvb}
    .word 0x08
    "#,
    kvb = const KERNEL_VIRT_BASE,
    stack_size = const BOOT_STACK_SIZE,
    start = sym pvh_start,
);

const HVM_START_MAGIC: u32 = 0x336e_c578;

#[repr(C)]
struct HvmStartInfo {
    magic: u32,
    version: u32,
    flags: u32,
    nr_modules: u32,
    modlist_paddr: u64,
    cmdline_paddr: u64,
    rsdp_paddr: u64,
    memmap_paddr: u64,
    memmap_entries: u32,
    reserved: u32,
}

#[repr(C)]
struct HvmModlistEntry {
    paddr: u64,
    size: u64,
    cmdline_paddr: u64,
    reserved: u64,
}

#[repr(C)]
struct HvmMemmapEntry {
    addr: u64,
    size: u64,
    kind: u32,
    reserved: u32,
}

extern "C" {
    static __kernel_start: u8;
    static __kernel_end: u8;
}

/// Reads a loader structure through the boot identity map.
///
/// # Safety
/// `phys` must be below 4 GiB and hold a valid `T`.
unsafe fn phys_ref<'a, T>(phys: u64) -> &'a T {
    // SAFETY: the boot page tables identity-map the first 4 GiB.
    unsafe { &*(phys as *const T) }
}

extern "C" fn pvh_start(start_info_phys: u64) -> ! {
    let mut info = BootInfo::new(Loader::Pvh);
    info.loader_phys_offset = 0;
    let (kernel_start, kernel_end) =
        (core::ptr::addr_of!(__kernel_start) as u64, core::ptr::addr_of!(__kernel_end) as u64);
    info.kernel_phys_base = kernel_start - KERNEL_VIRT_BASE;
    // SAFETY: QEMU passes a start info below 4 GiB in ebx.
    let start: &HvmStartInfo = unsafe { phys_ref(start_info_phys) };
    if start.magic != HVM_START_MAGIC {
        crate::early_fatal("pvh: bad hvm_start_info magic");
    }
    if start.version >= 1 && start.memmap_paddr != 0 {
        for i in 0..u64::from(start.memmap_entries) {
            // SAFETY: the table has `memmap_entries` entries, below 4 GiB.
            let entry: &HvmMemmapEntry =
                unsafe { phys_ref(start.memmap_paddr + i * core::mem::size_of::<HvmMemmapEntry>() as u64) };
            if info.memory_map.push(entry.addr, entry.size, RegionKind::from_e820(entry.kind)).is_err() {
                break;
            }
        }
    } else {
        crate::early_fatal("pvh: no memory map (hvm_start_info version 0)");
    }
    // What the e820 calls usable but is not: the kernel, the start info
    // itself, the module list and modules.
    let map = &mut info.memory_map;
    let _ = map.push(info.kernel_phys_base, kernel_end - kernel_start, RegionKind::KernelAndModules);
    let _ = map.push(start_info_phys & !0xfff, 0x1000, RegionKind::BootloaderReclaimable);
    if start.cmdline_paddr != 0 {
        // SAFETY: QEMU's command line is a NUL-terminated string below 4 GiB.
        let bytes = unsafe { c_str_bytes(start.cmdline_paddr as *const u8, 4096) };
        info.set_cmdline(bytes);
        let _ = info.memory_map.push(start.cmdline_paddr & !0xfff, 0x2000, RegionKind::BootloaderReclaimable);
    }
    for i in 0..u64::from(start.nr_modules) {
        // SAFETY: the module list has `nr_modules` entries, below 4 GiB.
        let module: &HvmModlistEntry =
            unsafe { phys_ref(start.modlist_paddr + i * core::mem::size_of::<HvmModlistEntry>() as u64) };
        info.add_module(module.paddr, module.size, b"bootfs");
        let _ = info.memory_map.push(module.paddr, module.size, RegionKind::KernelAndModules);
    }
    if start.nr_modules != 0 {
        let _ = info.memory_map.push(start.modlist_paddr & !0xfff, 0x1000, RegionKind::BootloaderReclaimable);
    }
    info.memory_map.normalize();
    info.reserve_low_memory();
    info.rsdp = (start.rsdp_paddr != 0).then_some(start.rsdp_paddr);
    crate::kernel_main(info)
}
