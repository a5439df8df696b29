//! `print!`/`println!`: lines to the process's log.
//!
//! Output is buffered per line; each line (without its `\n`) becomes one
//! `mx_debuglog_write` record, split at 224 bytes, the record limit. The log is
//! the handle chosen at startup (see [`crate::startup`]); without one, lines
//! go to `mx_debug_write` (the kernel console) with their newline.

use core::fmt::{self, Write};
use core::mem::ManuallyDrop;
use core::sync::atomic::{AtomicU32, Ordering};

use mx::{Handle, Log};
use mx_abi::HANDLE_INVALID;

use crate::Lock;

/// The most bytes one debuglog record holds.
pub const RECORD_MAX: usize = 224;

static LOG: AtomicU32 = AtomicU32::new(HANDLE_INVALID);

struct Line {
    buf: [u8; RECORD_MAX],
    len: usize,
}

static LINE: Lock<Line> = Lock::new(Line { buf: [0; RECORD_MAX], len: 0 });

pub(crate) fn init(log: Option<Log>) {
    if let Some(log) = log {
        LOG.store(log.into_handle().into_raw(), Ordering::Relaxed);
    }
}

/// A duplicate of the process's log handle, e.g. to pass to a child as
/// `PA_FDIO_LOGGER`.
pub fn duplicate() -> Option<Handle> {
    let raw = LOG.load(Ordering::Relaxed);
    if raw == HANDLE_INVALID {
        return None;
    }
    ManuallyDrop::new(Handle::from_raw(raw)).duplicate(mx::SAME_RIGHTS).ok()
}

fn emit(bytes: &[u8], newline: bool) {
    let raw = LOG.load(Ordering::Relaxed);
    if raw != HANDLE_INVALID {
        let log = ManuallyDrop::new(Log::from_handle(Handle::from_raw(raw)));
        if log.write(bytes).is_ok() {
            return;
        }
    }
    let _ = mx::debug_write(bytes);
    if newline {
        let _ = mx::debug_write(b"\n");
    }
}

impl Line {
    fn flush(&mut self, newline: bool) {
        if self.len > 0 || newline {
            emit(&self.buf[..self.len], newline);
        }
        self.len = 0;
    }
}

impl Write for Line {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for &b in s.as_bytes() {
            if b == b'\n' {
                self.flush(true);
                continue;
            }
            if self.len == RECORD_MAX {
                self.flush(false);
            }
            self.buf[self.len] = b;
            self.len += 1;
        }
        Ok(())
    }
}

/// Prints formatted text (the `print!` macros call this).
pub fn print(args: fmt::Arguments<'_>) {
    LINE.with(true, |line| {
        let _ = line.write_fmt(args);
    });
}

/// Writes out a partial line.
pub fn flush() {
    LINE.with(true, |line| line.flush(false));
}

/// Prints even when the line buffer is locked (a panic while printing).
pub fn emergency(args: fmt::Arguments<'_>) {
    if LINE
        .with(false, |line| {
            line.flush(false);
            let _ = line.write_fmt(args);
            line.flush(false);
        })
        .is_none()
    {
        let mut line = Line { buf: [0; RECORD_MAX], len: 0 };
        let _ = line.write_fmt(args);
        line.flush(false);
    }
}
