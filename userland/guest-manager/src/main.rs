//! guest-manager: runs the guest of `userland/guests/hello` (`data/guest.bin`
//! in the boot filesystem) on magnetar's hypervisor through `mx::hypervisor`.
//!
//! Guest-physical layout (RAM is a 4 MiB physmem VMO from GPA 0):
//!
//! | GPA | what |
//! |---|---|
//! | 0x1000, 0x2000, 0x3000 | PML4, PDPT, PD: 2 MiB pages identity-mapping the first GiB |
//! | 0x4000 | the guest's IDT (it fills it) |
//! | below 0x9000 | the stack |
//! | 0x10000 | the guest image, entry at its start |
//! | 0x10000000 | an MMIO device page (trapped, above RAM): ID at +0 (read-only), scratch at +4, IRQ request at +8 |
//!
//! I/O ports: a 16550 UART at 0x3f8-0x3ff (THR output, LSR always ready)
//! and a power port at 0x604 (an OUT ends the guest with that exit code).
//! Both traps are synchronous (no port): exits come back from
//! `vcpu_resume`. Each line the guest prints appears as `guest: ...`.
//!
//! Needs the root resource (`+resource`: it makes a HYPERVISOR resource from
//! it, as Magenta's sysinfo did) and the boot filesystem (`+bootfs`).
//! Without hardware virtualization it says so and exits 0.

#![no_std]
#![no_main]

extern crate alloc;

use alloc::string::String;
use alloc::vec::Vec;

use mx::hypervisor::{self, Exit, Guest, Kind, TrapKind, Vcpu};
use mx::{Resource, Status, Vmo};
use mx_abi::{PA_RESOURCE, PA_VMO_BOOTFS};

const RAM_SIZE: u64 = 4 << 20;
const PML4: u64 = 0x1000;
const ENTRY: u64 = 0x10000;
const STACK_TOP: u64 = 0x9000;

const UART_BASE: u16 = 0x3f8;
const UART_LSR: u16 = UART_BASE + 5;
const LSR_THRE_TEMT: u32 = 0x60;
const POWER_PORT: u16 = 0x604;

const MMIO_BASE: u64 = 0x1000_0000;
const MMIO_ID: u64 = 0;
const MMIO_SCRATCH: u64 = 4;
const MMIO_IRQ: u64 = 8;
const DEVICE_ID: u64 = 0x4d41_474e;

/// Exits the guest may take before the manager gives up on it.
const MAX_EXITS: u32 = 100_000;

mxrt::entry!(main);

fn main() -> i32 {
    match run() {
        Ok(code) => code,
        Err(why) => {
            mxrt::println!("guest-manager: {why}");
            1
        }
    }
}

fn status(what: &'static str) -> impl Fn(Status) -> String {
    move |s| alloc::format!("{what}: {s:?}")
}

fn run() -> Result<i32, String> {
    let root = mxrt::take_handle(PA_RESOURCE, 0).ok_or("no root resource (grant +resource)")?;
    let root = Resource::from_handle(root);
    let bootfs = mxrt::take_handle(PA_VMO_BOOTFS, 0).ok_or("no boot filesystem (grant +bootfs)")?;
    let bootfs = mx::bootfs::Bootfs::open(Vmo::from_handle(bootfs)).map_err(status("bootfs"))?;
    let image = bootfs.read("data/guest.bin").map_err(status("data/guest.bin"))?;

    let resource = hypervisor::hypervisor_resource(&root).map_err(status("hypervisor resource"))?;
    let ram = Vmo::create(RAM_SIZE).map_err(status("guest RAM"))?;
    load(&ram, &image)?;
    let guest = match Guest::create(&resource, &ram) {
        Ok(guest) => guest,
        Err(Status::NotSupported) => {
            mxrt::println!("guest-manager: no hardware virtualization (SVM with nested paging); no guest run");
            return Ok(0);
        }
        Err(s) => return Err(alloc::format!("guest_create: {s:?}")),
    };
    guest.set_trap(TrapKind::Io, u64::from(UART_BASE), 8, None, 0).map_err(status("UART trap"))?;
    guest.set_trap(TrapKind::Io, u64::from(POWER_PORT), 1, None, 0).map_err(status("power trap"))?;
    guest.set_trap(TrapKind::Mem, MMIO_BASE, 0x1000, None, 0).map_err(status("MMIO trap"))?;
    let apic = Vmo::create(0x1000).map_err(status("APIC VMO"))?;
    let vcpu = Vcpu::create(&guest, ENTRY, PML4, &apic).map_err(status("vcpu_create"))?;
    let mut state = vcpu.read_state().map_err(status("read_state"))?;
    state.rsp = STACK_TOP;
    vcpu.write_state(&state).map_err(status("write_state"))?;

    let mut machine = Machine { vcpu: &vcpu, console: Vec::new(), scratch: 0 };
    for _ in 0..MAX_EXITS {
        let exit = vcpu.resume().map_err(|e| alloc::format!("vcpu_resume: {e}"))?;
        if let Some(code) = machine.handle(exit)? {
            machine.flush();
            mxrt::println!("guest-manager: guest powered off with {code}");
            return Ok(code);
        }
    }
    Err(alloc::format!("the guest did not power off after {MAX_EXITS} exits"))
}

/// Identity page tables and the image.
fn load(ram: &Vmo, image: &[u8]) -> Result<(), String> {
    let words = |at: u64, words: &[u64]| -> Result<(), String> {
        let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
        ram.write_all(&bytes, at).map_err(status("page tables"))
    };
    words(PML4, &[0x2003])?;
    words(0x2000, &[0x3003])?;
    let pd: Vec<u64> = (0..512u64).map(|i| (i << 21) | 0x83).collect();
    words(0x3000, &pd)?;
    if image.len() as u64 > RAM_SIZE - ENTRY {
        return Err(String::from("the guest image does not fit"));
    }
    ram.write_all(image, ENTRY).map_err(status("guest image"))
}

/// The emulated devices.
struct Machine<'a> {
    vcpu: &'a Vcpu,
    /// The UART's current output line.
    console: Vec<u8>,
    scratch: u32,
}

impl Machine<'_> {
    /// One exit: `Some(code)` when the guest powered off.
    fn handle(&mut self, exit: Exit) -> Result<Option<i32>, String> {
        match exit {
            Exit::Io { port: POWER_PORT, input: false, data, .. } => return Ok(Some(data as i32)),
            Exit::Io { port, input: false, data, .. } if port == UART_BASE => {
                match data as u8 {
                    b'\n' => self.flush(),
                    b'\r' => {}
                    byte => self.console.push(byte),
                }
                if self.console.len() >= 200 {
                    self.flush();
                }
            }
            Exit::Io { port, size, input: true, .. } => {
                // LSR: transmitter empty; every other register reads 0.
                let value = if port == UART_LSR { LSR_THRE_TEMT } else { 0 };
                self.vcpu.write_io(size, value).map_err(status("write_io"))?;
            }
            Exit::Io { .. } => {}
            Exit::Mem { addr, instruction, .. } => {
                let offset = addr.wrapping_sub(MMIO_BASE);
                let mut state = self.vcpu.read_state().map_err(status("read_state"))?;
                if let Some(value) = instruction.store_value(&state) {
                    match offset {
                        MMIO_SCRATCH => self.scratch = value as u32,
                        MMIO_IRQ => self.vcpu.interrupt(value as u32).map_err(status("vcpu_interrupt"))?,
                        _ => {}
                    }
                    if let Kind::Stos { .. } = instruction.kind {
                        instruction.complete(&mut state, 0);
                        self.vcpu.write_state(&state).map_err(status("write_state"))?;
                    }
                } else {
                    let value = match offset {
                        MMIO_ID => DEVICE_ID,
                        MMIO_SCRATCH => u64::from(self.scratch),
                        _ => 0,
                    };
                    instruction.complete(&mut state, value);
                    self.vcpu.write_state(&state).map_err(status("write_state"))?;
                }
            }
            // Only IO and MEM traps are set: nothing else comes back.
            other => return Err(alloc::format!("unexpected exit {other:x?}")),
        }
        Ok(None)
    }

    fn flush(&mut self) {
        if !self.console.is_empty() {
            mxrt::println!("guest: {}", String::from_utf8_lossy(&self.console));
            self.console.clear();
        }
    }
}
