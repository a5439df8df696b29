//! The kernel log: `log` crate records, formatted as
//! `[seconds.micros] cpuN LEVEL message`, written to the serial console.

use crate::arch::x86::{percpu, serial};
use crate::sync::IrqSpinlock;
use core::fmt::Write;
use log::{Level, LevelFilter, Log, Metadata, Record};

struct SerialLogger;

/// Serialises whole lines so CPUs do not interleave within one.
static CONSOLE: IrqSpinlock<()> = IrqSpinlock::new(());

/// A line is formatted into this before it is written, so the console lock
/// is held only for the write.
struct LineBuffer {
    bytes: [u8; 512],
    len: usize,
}

impl Write for LineBuffer {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let room = self.bytes.len() - self.len;
        let take = s.len().min(room);
        self.bytes[self.len..self.len + take].copy_from_slice(&s.as_bytes()[..take]);
        self.len += take;
        Ok(())
    }
}

impl Log for SerialLogger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let mut line = LineBuffer { bytes: [0; 512], len: 0 };
        let ns = crate::time::now_ns();
        let level = match record.level() {
            Level::Error => "ERROR",
            Level::Warn => "WARN ",
            Level::Info => "INFO ",
            Level::Debug => "DEBUG",
            Level::Trace => "TRACE",
        };
        let _ = write!(
            line,
            "[{:5}.{:06}] cpu{} {} {}",
            ns / 1_000_000_000,
            (ns / 1000) % 1_000_000,
            percpu::cpu_index(),
            level,
            record.args()
        );
        if line.len == line.bytes.len() {
            line.bytes[line.len - 3..].copy_from_slice(b"...");
        }
        let _guard = CONSOLE.lock();
        serial::write_bytes(&line.bytes[..line.len]);
        serial::write_bytes(b"\n");
    }

    fn flush(&self) {}
}

static LOGGER: SerialLogger = SerialLogger;

/// Starts the console and the logger at `level`.
pub fn init(level: LevelFilter) {
    serial::init();
    // Only the first call can fail (the logger is already set); ignore it.
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(level);
}

/// Parses `loglevel=` from the command line.
pub fn level_from_cmdline(value: Option<&str>) -> LevelFilter {
    match value {
        Some("error") => LevelFilter::Error,
        Some("warn") => LevelFilter::Warn,
        Some("debug") => LevelFilter::Debug,
        Some("trace") => LevelFilter::Trace,
        _ => LevelFilter::Info,
    }
}

/// Writes raw text to the console without taking the console lock: for the
/// panic path, which must print even if the lock holder died.
pub fn write_unlocked(args: core::fmt::Arguments) {
    struct Raw;
    impl Write for Raw {
        fn write_str(&mut self, s: &str) -> core::fmt::Result {
            serial::write_bytes(s.as_bytes());
            Ok(())
        }
    }
    let _ = Raw.write_fmt(args);
}
