//! The legacy 8259 PIC pair, which the kernel never uses: it is moved off
//! the exception vectors (a spurious IRQ 7 or 15 would otherwise look like
//! a #DF or #PF) and then fully masked, leaving the APICs in charge.

use super::apic::PIC_VECTOR_BASE;
use super::port::outb;

const MASTER_COMMAND: u16 = 0x20;
const MASTER_DATA: u16 = 0x21;
const SLAVE_COMMAND: u16 = 0xa0;
const SLAVE_DATA: u16 = 0xa1;

/// Remaps both PICs to `PIC_VECTOR_BASE..+16` and masks every line.
pub fn disable() {
    // Port 0x80 (POST diagnostics) is the conventional "wait a moment".
    // SAFETY: writing 0x80 has no effect besides the delay.
    let io_wait = || unsafe { outb(0x80, 0) };
    // SAFETY: these ports belong to the 8259s, which nothing else drives;
    // the sequence is the standard ICW1..ICW4 initialisation followed by a
    // full mask.
    unsafe {
        outb(MASTER_COMMAND, 0x11); // ICW1: initialise, ICW4 follows
        io_wait();
        outb(SLAVE_COMMAND, 0x11);
        io_wait();
        outb(MASTER_DATA, PIC_VECTOR_BASE); // ICW2: vector offsets
        io_wait();
        outb(SLAVE_DATA, PIC_VECTOR_BASE + 8);
        io_wait();
        outb(MASTER_DATA, 0b100); // ICW3: slave on line 2
        io_wait();
        outb(SLAVE_DATA, 2);
        io_wait();
        outb(MASTER_DATA, 0x01); // ICW4: 8086 mode
        io_wait();
        outb(SLAVE_DATA, 0x01);
        io_wait();
        outb(MASTER_DATA, 0xff);
        outb(SLAVE_DATA, 0xff);
    }
    log::debug!("pic: 8259s remapped to {PIC_VECTOR_BASE:#x} and masked");
}
