//! The 16550 UART on COM1: the kernel console.

use super::port::{inb, outb};

const COM1: u16 = 0x3f8;
const DATA: u16 = COM1;
const INTERRUPT_ENABLE: u16 = COM1 + 1;
const FIFO_CONTROL: u16 = COM1 + 2;
const LINE_CONTROL: u16 = COM1 + 3;
const MODEM_CONTROL: u16 = COM1 + 4;
const LINE_STATUS: u16 = COM1 + 5;
const LINE_STATUS_THR_EMPTY: u8 = 1 << 5;

/// Programs COM1 for 115200 8N1, FIFOs on, no interrupts (the console polls).
pub fn init() {
    // SAFETY: COM1 is the kernel's console and nothing else drives it.
    unsafe {
        outb(INTERRUPT_ENABLE, 0x00);
        outb(LINE_CONTROL, 0x80); // DLAB: the next two registers are the divisor
        outb(DATA, 0x01); // 115200 baud
        outb(INTERRUPT_ENABLE, 0x00);
        outb(LINE_CONTROL, 0x03); // 8 bits, no parity, one stop bit
        outb(FIFO_CONTROL, 0xc7); // enable and clear FIFOs, 14-byte threshold
        outb(MODEM_CONTROL, 0x03); // DTR | RTS
    }
}

/// Writes bytes, translating `\n` to `\r\n` for terminals.
///
/// Callers serialise whole lines themselves (see `log`); this function takes
/// no lock so the panic path can always print.
pub fn write_bytes(bytes: &[u8]) {
    for &byte in bytes {
        if byte == b'\n' {
            write_byte(b'\r');
        }
        write_byte(byte);
    }
}

fn write_byte(byte: u8) {
    // SAFETY: COM1 is the kernel's console; polling LSR then writing THR has
    // no effect beyond transmitting the byte.
    unsafe {
        while inb(LINE_STATUS) & LINE_STATUS_THR_EMPTY == 0 {
            core::hint::spin_loop();
        }
        outb(DATA, byte);
    }
}
