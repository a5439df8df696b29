//! Isolation (issue "Reliability", requirement 5): a guest can read nothing
//! but its own pages. The host fills other memory with a canary (another
//! guest's RAM and a VMO mapped into that guest at the same GPA as one of
//! the test guest's mappings, a plain VMO, and a VMO freed just before the
//! test guest's RAM is made), then a test guest with page tables for the
//! first 4 GiB (2 MiB pages) reads two qwords of many pages (the start and
//! one more): every page of its RAM, its mappings and a trap with a page
//! either side, every page of the 4 MiB past its RAM, and a page every
//! 512 KiB + 4 KiB up to 4 GiB (about 8 000 pages in all, a second or two
//! in TCG). It reports each qword with two 4-byte OUTs. The host walks the
//! same list: an own page must show its own content (physmem as written,
//! zero where nothing was written; a mapping's VMO, which takes priority
//! over physmem), a trapped page must exit with a GUEST_MEM packet, any
//! other page with OUT_OF_RANGE (the host moves RIP past the load with
//! MX_VCPU_SYSTEM and tells the guest with a marker in RAX); the canary
//! must never show, and the other memory must still hold it afterwards.

use alloc::format;
use alloc::vec::Vec;

use mx::hypervisor::{Guest, Vcpu};
use mx::{Resource, Status, Vmo};
use mx_abi::{Payload, TrapKind};

use crate::harness::{Failure, Outcome};
use crate::machine::*;
use crate::{cases, expect, expect_eq, ok};

core::arch::global_asm!(
    r#"
    .pushsection .rodata.hvtest_isolation, "a"
    # For each (page, other) pair of qwords at RSI until page == -1: load
    # the qword at page; unless the host answered with the marker (R15),
    # OUT it (low, high half) to 0x81, then the same for the qword at other.
    .globl hv_iso_scan, hv_iso_scan_end, hv_iso_load_first, hv_iso_load_other
hv_iso_scan:
1:      mov     (%rsi), %rdi
        cmp     $-1, %rdi
        je      4f
        mov     8(%rsi), %rbx
hv_iso_load_first:
        mov     (%rdi), %rax
        cmp     %r15, %rax
        je      3f
        out     %eax, $0x81
        shr     $32, %rax
        out     %eax, $0x81
hv_iso_load_other:
        mov     (%rbx), %rax
        out     %eax, $0x81
        shr     $32, %rax
        out     %eax, $0x81
3:      add     $16, %rsi
        jmp     1b
4:      mov     $0xd0e, %eax
        out     %eax, $0x80
5:      jmp     5b
hv_iso_scan_end:
    .popsection
"#,
    options(att_syntax)
);

extern "C" {
    static hv_iso_scan: u8;
    static hv_iso_scan_end: u8;
    static hv_iso_load_first: u8;
    static hv_iso_load_other: u8;
}

/// The scan snippet and where its two loads lie in it.
fn scan_code() -> (&'static [u8], u64, u64) {
    // SAFETY: the labels are in one section of this binary, in order.
    unsafe {
        let start = core::ptr::addr_of!(hv_iso_scan);
        let end = core::ptr::addr_of!(hv_iso_scan_end);
        let code = core::slice::from_raw_parts(start, end as usize - start as usize);
        let first = core::ptr::addr_of!(hv_iso_load_first) as u64 - start as u64;
        let other = core::ptr::addr_of!(hv_iso_load_other) as u64 - start as u64;
        (code, first, other)
    }
}

const PG: u64 = 0x1000;
const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;
/// The test guest's RAM; its layout (GDT at 0, PML4, PDPT, four PDs,
/// code, the probe list).
const RAM_SIZE: u64 = 2 * MIB;
const PDPT: u64 = 0x2000;
const PDS: u64 = 0x3000;
const SCAN_CODE: u64 = 0x10000;
const PROBES: u64 = 0x20000;
/// The test guest's mappings: 8 pages at 1 GiB, 2 pages just below 4 GiB,
/// 1 page over its RAM at 1 MiB; and a synchronous MEM trap at 2 GiB.
const MAP_LOW: u64 = GIB;
const MAP_HIGH: u64 = 4 * GIB - 2 * PG;
const MAP_OVER_RAM: u64 = MIB;
const TRAP: u64 = 2 * GIB;
/// What the other memory holds, and what the host puts in RAX for a load
/// that did not complete.
const CANARY: u64 = 0xca4a_12ca_ca4a_12ca;
const MARKER: u64 = 0x4d41_524b_4d41_524b;

/// What backs a guest-physical page of the test guest.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Backing {
    Ram,
    /// One of the test guest's mappings: (index into `own_maps`, offset).
    Mapped(usize, u64),
    Trap,
    Nothing,
}

struct OwnMap<'a> {
    gpa: u64,
    len: u64,
    vmo: &'a Vmo,
    offset: u64,
}

fn backing(gpa: u64, maps: &[OwnMap<'_>]) -> Backing {
    if (TRAP..TRAP + PG).contains(&gpa) {
        return Backing::Trap;
    }
    for (i, m) in maps.iter().enumerate() {
        if (m.gpa..m.gpa + m.len).contains(&gpa) {
            return Backing::Mapped(i, m.offset + gpa - m.gpa);
        }
    }
    if gpa < RAM_SIZE {
        Backing::Ram
    } else {
        Backing::Nothing
    }
}

fn fail(what: &str, s: Status) -> Failure {
    Failure::Fail(format!("{what}: {s:?}"))
}

fn read_qword(vmo: &Vmo, at: u64) -> Result<u64, Failure> {
    let mut b = [0u8; 8];
    vmo.read_exact(&mut b, at).map_err(|s| fail("vmo read", s))?;
    Ok(u64::from_le_bytes(b))
}

/// A VMO of `size` bytes filled with `pattern(offset)` qwords.
fn filled(size: u64, pattern: impl Fn(u64) -> u64) -> Result<Vmo, Failure> {
    let vmo = Vmo::create(size).map_err(|s| fail("vmo_create", s))?;
    let bytes: Vec<u8> = (0..size / 8).flat_map(|i| pattern(i * 8).to_le_bytes()).collect();
    vmo.write_all(&bytes, 0).map_err(|s| fail("vmo write", s))?;
    Ok(vmo)
}

/// The probe list: (page, another qword of it) pairs.
fn probes() -> Vec<(u64, u64)> {
    let mut pages: Vec<u64> = Vec::new();
    pages.extend((0..(RAM_SIZE + 4 * MIB) / PG).map(|i| i * PG));
    for (start, len) in [(MAP_LOW, 8 * PG), (MAP_HIGH, 2 * PG), (TRAP, PG)] {
        let from = start.saturating_sub(2 * PG);
        pages.extend((from..(start + len + 2 * PG).min(4 * GIB)).step_by(PG as usize));
    }
    pages.extend((RAM_SIZE + 4 * MIB..4 * GIB).step_by((MIB / 2 + PG) as usize));
    pages.sort_unstable();
    pages.dedup();
    // The other qword wanders through the page.
    pages.iter().enumerate().map(|(i, &p)| (p, p + 8 + (i as u64 * 8 * 37) % (PG - 8))).collect()
}

fn isolation_guest_sees_only_its_own_pages() -> Outcome {
    need_hv()?;
    let (code, first_load, other_load) = scan_code();
    let before = counts_and_pages()?;
    {
        let hyp = borrowed(hyp(), Resource::from_handle);
        // Freed just before the test guest's RAM is made: its pages must
        // come back zeroed.
        drop(filled(4 * MIB, |_| CANARY)?);
        // Another guest whose RAM and mapping hold the canary (the mapping
        // at the GPA of the test guest's own), and a plain VMO.
        let other_ram = filled(RAM_SIZE, |_| CANARY)?;
        let other = Guest::create(&hyp, &other_ram).map_err(|s| fail("guest_create (other)", s))?;
        let other_map = filled(8 * PG, |_| CANARY)?;
        ok!(other.map(MAP_LOW, &other_map, 0, 8 * PG));
        let plain = filled(16 * PG, |_| CANARY)?;

        let ram = Vmo::create(RAM_SIZE).map_err(|s| fail("vmo_create", s))?;
        let mut written: Vec<(u64, u64)> = Vec::new();
        let mut put = |at: u64, bytes: &[u8]| -> Result<(), Failure> {
            written.push((at, at + bytes.len() as u64));
            ram.write_all(bytes, at).map_err(|s| fail("vmo write", s))
        };
        let words = |w: &[u64]| -> Vec<u8> { w.iter().flat_map(|x| x.to_le_bytes()).collect() };
        put(0, &words(&[0, 0x00af_9a00_0000_ffff, 0x00cf_9200_0000_ffff]))?;
        put(PML4, &words(&[PDPT | 3]))?;
        put(PDPT, &words(&(0..4).map(|i| (PDS + i * PG) | 3).collect::<Vec<_>>()))?;
        put(PDS, &words(&(0..2048u64).map(|i| (i << 21) | 0x83).collect::<Vec<_>>()))?;
        put(SCAN_CODE, code)?;
        let list = probes();
        let mut table: Vec<u64> = list.iter().flat_map(|&(p, q)| [p, q]).collect();
        table.extend([u64::MAX, 0]);
        put(PROBES, &words(&table))?;
        expect!(PROBES + table.len() as u64 * 8 <= RAM_SIZE);

        let guest = Guest::create(&hyp, &ram).map_err(|s| fail("guest_create", s))?;
        let own_low = filled(8 * PG, |off| 0x1057_0000_0000_0000 | off)?;
        let own_high = filled(4 * PG, |off| 0x4157_0000_0000_0000 | off)?;
        let maps = [
            OwnMap { gpa: MAP_LOW, len: 8 * PG, vmo: &own_low, offset: 0 },
            OwnMap { gpa: MAP_HIGH, len: 2 * PG, vmo: &own_high, offset: 2 * PG },
            OwnMap { gpa: MAP_OVER_RAM, len: PG, vmo: &own_high, offset: 0 },
        ];
        for m in &maps {
            ok!(guest.map(m.gpa, m.vmo, m.offset, m.len));
        }
        ok!(guest.set_trap(TrapKind::Mem, TRAP, PG, None, 0));
        let apic = Vmo::create(PG).map_err(|s| fail("apic vmo", s))?;
        let vcpu = Vcpu::create(&guest, SCAN_CODE, PML4, &apic).map_err(|s| fail("vcpu_create", s))?;
        let mut state = ok!(vcpu.read_state());
        state.rsi = PROBES;
        state.r15 = MARKER;
        ok!(vcpu.write_state(&state));

        let never_written = |gpa: u64| !written.iter().any(|&(s, e)| gpa < e && s < gpa + 8);
        let mut own_pages = 0u64;
        let mut unbacked = 0u64;
        for &(page, other_qword) in &list {
            match backing(page, &maps) {
                Backing::Nothing => {
                    let got = vcpu.resume_packet().err();
                    expect!(got == Some(Status::OutOfRange), "page {page:#x}: vcpu_resume gave {got:?}");
                    let state = ok!(vcpu.read_state());
                    expect_eq!(state.rdi, page);
                    let mut system = ok!(vcpu.read_system());
                    expect!(system.rip == SCAN_CODE + first_load, "page {page:#x}: RIP {:#x}", system.rip);
                    system.rip += 3;
                    ok!(vcpu.write_system(&system));
                    let mut state = state;
                    state.rax = MARKER;
                    ok!(vcpu.write_state(&state));
                    unbacked += 1;
                }
                Backing::Trap => {
                    let packet = ok!(vcpu.resume_packet());
                    match packet.payload() {
                        Ok(Payload::GuestMem(mem)) if packet.key == 0 => expect_eq!(mem.addr, page),
                        other => {
                            return Err(Failure::Fail(format!("page {page:#x}: expected GUEST_MEM, got {other:?}")))
                        }
                    }
                    let mut state = ok!(vcpu.read_state());
                    state.rax = MARKER;
                    ok!(vcpu.write_state(&state));
                }
                own => {
                    for (at, load) in [(page, first_load), (other_qword, other_load)] {
                        let expected = match own {
                            Backing::Mapped(i, offset) => read_qword(maps[i].vmo, offset + at - page)?,
                            _ => {
                                let value = read_qword(&ram, at)?;
                                if never_written(at) {
                                    expect!(value == 0, "RAM the host never wrote holds {value:#x} at {at:#x}");
                                }
                                value
                            }
                        };
                        let low = read_out(&vcpu, at)?;
                        let high = read_out(&vcpu, at)?;
                        let seen = u64::from(low) | u64::from(high) << 32;
                        expect!(seen != CANARY, "the guest read the canary at {at:#x} ({own:?})");
                        expect!(
                            seen == expected,
                            "qword at {at:#x} ({own:?}, load at +{load:#x}): {seen:#x}, expected {expected:#x}"
                        );
                    }
                    own_pages += 1;
                }
            }
        }
        match ok!(vcpu.resume()) {
            mx::hypervisor::Exit::Io { port: 0x80, data: 0xd0e, .. } => {}
            other => return Err(Failure::Fail(format!("expected the end of the scan, got {other:x?}"))),
        }
        expect!(own_pages >= RAM_SIZE / PG + 8, "only {own_pages} own pages scanned");
        expect!(unbacked > 8000, "only {unbacked} unbacked pages scanned");
        // The others' memory was not touched either.
        for (vmo, size) in [(&other_ram, RAM_SIZE), (&other_map, 8 * PG), (&plain, 16 * PG)] {
            for at in (0..size).step_by(PG as usize) {
                expect_eq!(read_qword(vmo, at)?, CANARY);
            }
        }
        drop(plain);
    }
    expect_eq!(counts_and_pages()?, before);
    Ok(())
}

/// The next exit must be a 4-byte OUT to 0x81: its data.
fn read_out(vcpu: &Vcpu, at: u64) -> Result<u32, Failure> {
    let packet = vcpu.resume_packet().map_err(|s| Failure::Fail(format!("qword at {at:#x}: vcpu_resume: {s:?}")))?;
    match packet.payload() {
        Ok(Payload::GuestIo(io)) if io.port == 0x81 && io.access_size == 4 && io.input == 0 => Ok(io.data),
        other => Err(Failure::Fail(format!("qword at {at:#x}: expected OUT to 0x81, got {other:?}"))),
    }
}

cases![isolation_guest_sees_only_its_own_pages];
