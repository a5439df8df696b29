//! The debuglog: a system-wide ring of records. Every write also goes to
//! the serial console; each readable log object is a reader with its own
//! position, which receives every record oldest first and skips ahead when
//! writers lap it.

#![forbid(unsafe_code)]

use super::{KernelObject, ObjectBase};
use crate::sync::IrqSpinlock;
use alloc::collections::VecDeque;
use alloc::sync::{Arc, Weak};
use alloc::vec::Vec;
use mx_abi::log::{LOG_DATA_MAX, LOG_FLAG_READABLE};
use mx_abi::{ObjType, Signals, Status};

/// Records kept for readers.
const RING_RECORDS: usize = 1024;

pub struct Record {
    pub seq: u64,
    pub flags: u16,
    pub timestamp: u64,
    pub pid: u64,
    pub tid: u64,
    pub data: Vec<u8>,
}

struct Ring {
    records: VecDeque<Record>,
    next_seq: u64,
    readers: Vec<Weak<Log>>,
}

static RING: IrqSpinlock<Ring> = IrqSpinlock::new(Ring { records: VecDeque::new(), next_seq: 0, readers: Vec::new() });

pub struct Log {
    base: ObjectBase,
    flags: u32,
    /// The next record this reader returns (readers only).
    next: IrqSpinlock<u64>,
}

impl Log {
    /// A log handle's object; readable ones join the readers.
    pub fn new(flags: u32) -> Result<Arc<Log>, Status> {
        let readable = flags & LOG_FLAG_READABLE != 0;
        let start = RING.lock().records.front().map_or(0, |r| r.seq);
        let log = Arc::new(Log {
            base: ObjectBase::new(ObjType::Log, Signals::LOG_WRITABLE),
            flags,
            next: IrqSpinlock::new(start),
        });
        if readable {
            let mut ring = RING.lock();
            ring.readers.try_reserve(1).map_err(|_| Status::NoMemory)?;
            ring.readers.retain(|r| r.strong_count() > 0);
            ring.readers.push(Arc::downgrade(&log));
            let pending = ring.next_seq > start;
            drop(ring);
            if pending {
                log.base.signals.update(Signals::NONE, Signals::LOG_READABLE);
            }
        }
        Ok(log)
    }

    pub fn is_readable(&self) -> bool {
        self.flags & LOG_FLAG_READABLE != 0
    }

    /// Appends a record (`data` at most 224 bytes) and prints it.
    pub fn write(&self, options: u32, data: &[u8], pid: u64, tid: u64) -> Result<(), Status> {
        if crate::panic::panicking() {
            return Err(Status::BadState);
        }
        let data = &data[..data.len().min(LOG_DATA_MAX)];
        let text = core::str::from_utf8(data).unwrap_or("<binary>");
        ::log::info!("log: {}", text.trim_end_matches('\n'));
        let mut copy = Vec::new();
        copy.try_reserve_exact(data.len()).map_err(|_| Status::NoMemory)?;
        copy.extend_from_slice(data);
        let flags = ((self.flags | options) & 0xffff) as u16;
        let mut ring = RING.lock();
        if ring.records.len() == RING_RECORDS {
            ring.records.pop_front();
        }
        ring.records.try_reserve(1).map_err(|_| Status::NoMemory)?;
        let seq = ring.next_seq;
        ring.next_seq += 1;
        ring.records.push_back(Record { seq, flags, timestamp: crate::time::now_ns(), pid, tid, data: copy });
        let readers: Vec<Arc<Log>> = ring.readers.iter().filter_map(Weak::upgrade).collect();
        drop(ring);
        for reader in readers {
            reader.base.signals.update(Signals::NONE, Signals::LOG_READABLE);
        }
        Ok(())
    }

    /// The next record for this reader: BAD_STATE if not readable,
    /// SHOULD_WAIT (and READABLE cleared) if there is none.
    pub fn read(&self) -> Result<(u16, u64, u64, u64, Vec<u8>), Status> {
        if !self.is_readable() {
            return Err(Status::BadState);
        }
        let mut next = self.next.lock();
        let ring = RING.lock();
        let oldest = ring.records.front().map_or(ring.next_seq, |r| r.seq);
        let want = (*next).max(oldest);
        let Some(record) = ring.records.get((want - oldest) as usize) else {
            drop(ring);
            drop(next);
            self.base.signals.update(Signals::LOG_READABLE, Signals::NONE);
            return Err(Status::ShouldWait);
        };
        let mut data = Vec::new();
        data.try_reserve_exact(record.data.len()).map_err(|_| Status::NoMemory)?;
        data.extend_from_slice(&record.data);
        let result = (record.flags, record.timestamp, record.pid, record.tid, data);
        *next = want + 1;
        Ok(result)
    }
}

impl KernelObject for Log {
    fn base(&self) -> &ObjectBase {
        &self.base
    }
    fn obj_type(&self) -> ObjType {
        ObjType::Log
    }
}
