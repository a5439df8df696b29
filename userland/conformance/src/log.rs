//! The debug log: `mx_debuglog_create`, `mx_debuglog_write`,
//! `mx_debuglog_read`, legacy `mx_log_*` and `mx_debug_write` (§5.28).

use alloc::vec::Vec;
use core::ptr::null_mut;

use crate::harness::Outcome;
use crate::support::*;
use crate::util::*;
use crate::{cases, expect, expect_eq, expect_status, ok};
use mx::sys::*;
use mx::{Event, Handle, Resource, Status};
use mx_abi::log::LOG_FLAG_READABLE;

cases![
    create_write_only_rights_and_signals,
    create_readable_adds_read_right,
    create_needs_the_root_resource,
    create_bad_out_pointer_creates_nothing,
    write_then_read_returns_the_record,
    read_returns_records_oldest_first,
    read_when_empty_should_wait_and_clears_readable,
    every_reader_gets_every_record,
    reader_created_later_sees_retained_records,
    lapped_reader_skips_ahead,
    record_flags_are_create_flags_or_options,
    write_empty_record,
    write_longer_than_224_is_out_of_range_first,
    write_unknown_option_bits_is_invalid_args_before_lookup,
    write_lookup_errors,
    write_bad_buffer_is_invalid_args,
    read_nonzero_options_is_invalid_args_before_lookup,
    read_lookup_errors,
    read_bad_buffer_is_invalid_args,
    legacy_log_calls_need_no_resource,
    debug_write_returns_the_length,
    debug_write_truncates_to_256,
    debug_write_bad_buffer_is_invalid_args,
];

fn root() -> core::mem::ManuallyDrop<Resource> {
    core::mem::ManuallyDrop::new(Resource::from_handle(Handle::from_raw(root_resource())))
}

fn create_raw(resource: u32, options: u32, out: *mut u32) -> i32 {
    // SAFETY: a valid or deliberately bad out-pointer.
    unsafe { mx_debuglog_create(resource, options, out) }
}

fn create(options: u32) -> Result<Handle, alloc::string::String> {
    let mut raw = 0;
    expect_status!(create_raw(root_resource(), options, &mut raw), Status::Ok);
    Ok(own(raw))
}

fn write_raw(raw: u32, options: u32, buf: *const u8, len: usize) -> i32 {
    // SAFETY: a valid or deliberately bad buffer.
    unsafe { mx_debuglog_write(raw, options, buf.cast(), len) }
}

fn read_raw(raw: u32, options: u32, buf: *mut u8, len: usize) -> i32 {
    // SAFETY: a valid or deliberately bad buffer.
    unsafe { mx_debuglog_read(raw, options, buf.cast(), len) }
}

/// One record: (status or length, the bytes).
fn read_one(reader: &Handle) -> (i32, [u8; 256]) {
    let mut buf = [0u8; 256];
    let n = read_raw(reader.raw(), 0, buf.as_mut_ptr(), 256);
    (n, buf)
}

/// A new reader with every record already in the ring read.
fn drained_reader() -> Result<Handle, alloc::string::String> {
    let reader = ok!(create(LOG_FLAG_READABLE));
    for _ in 0..4096 {
        if read_one(&reader).0 < 0 {
            return Ok(reader);
        }
    }
    Err("the log never ran dry".into())
}

struct Record {
    datalen: u16,
    flags: u16,
    timestamp: u64,
    pid: u64,
    tid: u64,
    data: Vec<u8>,
}

fn parse(n: i32, buf: &[u8; 256]) -> Record {
    let u64_at = |at: usize| u64::from_le_bytes(buf[at..at + 8].try_into().unwrap_or_default());
    let datalen = u16::from_le_bytes([buf[4], buf[5]]);
    let end = (n.max(32) as usize).min(256);
    Record {
        datalen,
        flags: u16::from_le_bytes([buf[6], buf[7]]),
        timestamp: u64_at(8),
        pid: u64_at(16),
        tid: u64_at(24),
        data: buf[32..end].to_vec(),
    }
}

/// The koid of this process's only thread (the main one).
fn main_thread_koid() -> Result<u64, alloc::string::String> {
    let mut koids = [0u64; 4];
    let (mut actual, mut avail) = (0usize, 0usize);
    // SAFETY: the buffer and counts are valid.
    let status =
        unsafe { mx_object_get_info(process_self(), 4, koids.as_mut_ptr().cast(), 32, &mut actual, &mut avail) };
    expect_status!(status, Status::Ok);
    expect_eq!(avail, 1);
    Ok(koids[0])
}

fn create_write_only_rights_and_signals() -> Outcome {
    let log = ok!(create(0));
    let info = ok!(basic(log.raw()));
    expect_eq!((info.rights, info.obj_type, info.related_koid, info.props), (0x100b, 12, 0, 1));
    // Without READ the handle cannot be waited on.
    let mut observed = 0;
    // SAFETY: `observed` is valid.
    expect_status!(unsafe { mx_object_wait_one(log.raw(), WRITABLE, PAST, &mut observed) }, Status::AccessDenied);
    Ok(())
}

fn create_readable_adds_read_right() -> Outcome {
    let log = ok!(drained_reader());
    expect_eq!(rights(log.raw()), 0x100f);
    expect_eq!(signals(log.raw()), WRITABLE | LAST);
    Ok(())
}

fn create_needs_the_root_resource() -> Outcome {
    let child = ok!(root().create_child(mx_abi::ResourceKind::Mmio as u32, 0, 0xfff));
    let event = ok!(Event::create());
    let before = ok!(objects_and_handles());
    let mut raw = 0;
    expect_status!(create_raw(NOT_A_HANDLE, 0, &mut raw), Status::BadHandle);
    expect_status!(create_raw(event.raw(), 0, &mut raw), Status::WrongType);
    expect_status!(create_raw(child.raw(), 0, &mut raw), Status::AccessDenied);
    expect_eq!(raw, 0);
    expect_eq!(ok!(objects_and_handles()), before);
    Ok(())
}

fn create_bad_out_pointer_creates_nothing() -> Outcome {
    let before = ok!(objects_and_handles());
    for bad in [0usize, UNMAPPED_ADDR, KERNEL_ADDR] {
        expect_status!(create_raw(root_resource(), 0, bad as *mut u32), Status::InvalidArgs);
        expect_status!(create_raw(root_resource(), LOG_FLAG_READABLE, bad as *mut u32), Status::InvalidArgs);
    }
    expect_eq!(ok!(objects_and_handles()), before);
    Ok(())
}

fn write_then_read_returns_the_record() -> Outcome {
    let reader = ok!(drained_reader());
    let writer = ok!(create(0));
    let text = b"conformance: a debuglog record";
    let before = mx::time_monotonic();
    expect_status!(write_raw(writer.raw(), 0, text.as_ptr(), text.len()), Status::Ok);
    let after_ = mx::time_monotonic();
    expect_eq!(signals(reader.raw()), READABLE | WRITABLE | LAST);
    let (n, buf) = read_one(&reader);
    expect_eq!(n, 32 + text.len() as i32);
    let record = parse(n, &buf);
    expect_eq!(record.datalen as usize, text.len());
    expect_eq!(record.flags, 0);
    expect!(record.timestamp >= before && record.timestamp <= after_, "timestamp {}", record.timestamp);
    expect_eq!(record.pid, koid(process_self()));
    expect_eq!(record.tid, ok!(main_thread_koid()));
    expect_eq!(&record.data[..], &text[..]);
    Ok(())
}

fn read_returns_records_oldest_first() -> Outcome {
    let reader = ok!(drained_reader());
    for text in [&b"first"[..], b"second", b"third"] {
        expect_status!(write_raw(reader.raw(), 0, text.as_ptr(), text.len()), Status::Ok);
    }
    for text in [&b"first"[..], b"second", b"third"] {
        let (n, buf) = read_one(&reader);
        expect_eq!(&parse(n, &buf).data[..], text);
    }
    expect_status!(read_one(&reader).0, Status::ShouldWait);
    Ok(())
}

fn read_when_empty_should_wait_and_clears_readable() -> Outcome {
    let reader = ok!(drained_reader());
    expect_status!(write_raw(reader.raw(), 0, b"x".as_ptr(), 1), Status::Ok);
    expect_eq!(signals(reader.raw()) & READABLE, READABLE);
    expect_eq!(read_one(&reader).0, 33);
    expect_status!(read_one(&reader).0, Status::ShouldWait);
    expect_eq!(signals(reader.raw()), WRITABLE | LAST);
    Ok(())
}

fn every_reader_gets_every_record() -> Outcome {
    let (r1, r2) = (ok!(drained_reader()), ok!(drained_reader()));
    let writer = ok!(create(0));
    expect_status!(write_raw(writer.raw(), 0, b"for both".as_ptr(), 8), Status::Ok);
    for reader in [&r1, &r2] {
        let (n, buf) = read_one(reader);
        expect_eq!(&parse(n, &buf).data[..], &b"for both"[..]);
        expect_status!(read_one(reader).0, Status::ShouldWait);
    }
    Ok(())
}

fn reader_created_later_sees_retained_records() -> Outcome {
    let first = ok!(drained_reader());
    let marker = b"conformance: retained record marker";
    expect_status!(write_raw(first.raw(), 0, marker.as_ptr(), marker.len()), Status::Ok);
    let late = ok!(create(LOG_FLAG_READABLE));
    expect_eq!(signals(late.raw()) & READABLE, READABLE);
    let mut found = false;
    for _ in 0..4096 {
        let (n, buf) = read_one(&late);
        if n < 0 {
            break;
        }
        found |= parse(n, &buf).data == marker;
    }
    expect!(found, "a reader created after the write never saw the record");
    Ok(())
}

fn record_flags_are_create_flags_or_options() -> Outcome {
    let reader = ok!(drained_reader());
    let writer = ok!(create(mx_abi::log::LOG_INFO));
    expect_status!(write_raw(writer.raw(), mx_abi::log::LOG_LOCAL | 0x10, b"f".as_ptr(), 1), Status::Ok);
    let (n, buf) = read_one(&reader);
    expect_eq!(parse(n, &buf).flags, 0x1012);
    // The READABLE create flag is not a record flag.
    expect_status!(write_raw(reader.raw(), 0, b"g".as_ptr(), 1), Status::Ok);
    let (n, buf) = read_one(&reader);
    expect_eq!(parse(n, &buf).flags, 0);
    Ok(())
}

fn write_empty_record() -> Outcome {
    let reader = ok!(drained_reader());
    expect_status!(write_raw(reader.raw(), 0, null_mut::<u8>(), 0), Status::Ok);
    let (n, buf) = read_one(&reader);
    expect_eq!(n, 32);
    expect_eq!(parse(n, &buf).datalen, 0);
    Ok(())
}

fn write_longer_than_224_is_out_of_range_first() -> Outcome {
    let reader = ok!(drained_reader());
    let long = [b'x'; 300];
    expect_status!(write_raw(reader.raw(), 0, long.as_ptr(), 225), Status::OutOfRange);
    expect_status!(write_raw(NOT_A_HANDLE, 0x10000, KERNEL_ADDR as *const u8, 225), Status::OutOfRange);
    expect_status!(read_one(&reader).0, Status::ShouldWait);
    expect_status!(write_raw(reader.raw(), 0, long.as_ptr(), 224), Status::Ok);
    let (n, buf) = read_one(&reader);
    expect_eq!(n, 256);
    expect_eq!(parse(n, &buf).datalen, 224);
    Ok(())
}

fn write_unknown_option_bits_is_invalid_args_before_lookup() -> Outcome {
    let reader = ok!(drained_reader());
    expect_status!(write_raw(reader.raw(), 0x10000, b"x".as_ptr(), 1), Status::InvalidArgs);
    expect_status!(write_raw(reader.raw(), LOG_FLAG_READABLE, b"x".as_ptr(), 1), Status::InvalidArgs);
    expect_status!(write_raw(NOT_A_HANDLE, 0x10000, b"x".as_ptr(), 1), Status::InvalidArgs);
    expect_status!(read_one(&reader).0, Status::ShouldWait);
    Ok(())
}

fn write_lookup_errors() -> Outcome {
    let reader = ok!(drained_reader());
    let no_write = ok!(reader.duplicate(mx::Rights::READ));
    let event = ok!(Event::create());
    expect_status!(write_raw(NOT_A_HANDLE, 0, b"x".as_ptr(), 1), Status::BadHandle);
    expect_status!(write_raw(no_write.raw(), 0, b"x".as_ptr(), 1), Status::AccessDenied);
    expect_status!(write_raw(event.raw(), 0, b"x".as_ptr(), 1), Status::WrongType);
    expect_status!(read_one(&reader).0, Status::ShouldWait);
    Ok(())
}

fn write_bad_buffer_is_invalid_args() -> Outcome {
    let reader = ok!(drained_reader());
    for bad in [0usize, UNMAPPED_ADDR, KERNEL_ADDR] {
        expect_status!(write_raw(reader.raw(), 0, bad as *const u8, 5), Status::InvalidArgs);
    }
    expect_status!(read_one(&reader).0, Status::ShouldWait);
    Ok(())
}

fn read_nonzero_options_is_invalid_args_before_lookup() -> Outcome {
    let reader = ok!(drained_reader());
    expect_status!(write_raw(reader.raw(), 0, b"x".as_ptr(), 1), Status::Ok);
    let mut buf = [0u8; 256];
    expect_status!(read_raw(reader.raw(), 1, buf.as_mut_ptr(), 256), Status::InvalidArgs);
    expect_status!(read_raw(NOT_A_HANDLE, 1, buf.as_mut_ptr(), 256), Status::InvalidArgs);
    expect_eq!(read_one(&reader).0, 33);
    Ok(())
}

fn read_lookup_errors() -> Outcome {
    let writer = ok!(create(0));
    let event = ok!(Event::create());
    let mut buf = [0u8; 256];
    expect_status!(read_raw(NOT_A_HANDLE, 0, buf.as_mut_ptr(), 256), Status::BadHandle);
    expect_status!(read_raw(writer.raw(), 0, buf.as_mut_ptr(), 256), Status::AccessDenied);
    expect_status!(read_raw(event.raw(), 0, buf.as_mut_ptr(), 256), Status::WrongType);
    Ok(())
}

fn read_bad_buffer_is_invalid_args() -> Outcome {
    let reader = ok!(drained_reader());
    for bad in [0usize, UNMAPPED_ADDR, KERNEL_ADDR] {
        expect_status!(write_raw(reader.raw(), 0, b"x".as_ptr(), 1), Status::Ok);
        expect_status!(read_raw(reader.raw(), 0, bad as *mut u8, 256), Status::InvalidArgs);
    }
    Ok(())
}

fn legacy_log_calls_need_no_resource() -> Outcome {
    let mut raw = 0;
    // SAFETY: valid out-pointer.
    expect_status!(unsafe { mx_log_create(LOG_FLAG_READABLE, &mut raw) }, Status::Ok);
    let reader = own(raw);
    expect_eq!(rights(reader.raw()), 0x100f);
    for _ in 0..4096 {
        if read_one(&reader).0 < 0 {
            break;
        }
    }
    // Legacy argument order: (handle, len, buffer, options).
    // SAFETY: the buffer is valid for 6 bytes.
    expect_status!(unsafe { mx_log_write(reader.raw(), 6, b"legacy".as_ptr().cast(), 0) }, Status::Ok);
    let mut buf = [0u8; 256];
    // SAFETY: the buffer holds a whole record.
    let n = unsafe { mx_log_read(reader.raw(), 256, buf.as_mut_ptr().cast(), 0) };
    expect_eq!(n, 38);
    expect_eq!(&parse(n, &buf).data[..], &b"legacy"[..]);
    // SAFETY: as above.
    expect_status!(unsafe { mx_log_write(reader.raw(), 225, buf.as_ptr().cast(), 0) }, Status::OutOfRange);
    Ok(())
}

fn debug_write_returns_the_length() -> Outcome {
    let text = b"conformance: mx_debug_write\n";
    // SAFETY: the buffer is valid.
    expect_eq!(unsafe { mx_debug_write(text.as_ptr().cast(), text.len() as u32) }, text.len() as i32);
    // SAFETY: nothing is read for length 0.
    expect_eq!(unsafe { mx_debug_write(text.as_ptr().cast(), 0) }, 0);
    Ok(())
}

fn debug_write_truncates_to_256() -> Outcome {
    let mut text = [b'='; 300];
    text[..28].copy_from_slice(b"conformance: debug_write 256");
    text[255] = b'\n';
    // SAFETY: the buffer is valid for 300 bytes.
    expect_eq!(unsafe { mx_debug_write(text.as_ptr().cast(), 300) }, 256);
    Ok(())
}

fn debug_write_bad_buffer_is_invalid_args() -> Outcome {
    for bad in [0usize, UNMAPPED_ADDR, KERNEL_ADDR] {
        // SAFETY: the kernel must refuse the pointer.
        expect_status!(unsafe { mx_debug_write(bad as *const _, 5) }, Status::InvalidArgs);
    }
    Ok(())
}

fn lapped_reader_skips_ahead() -> Outcome {
    // Writers lap a reader that does not keep up: it skips to the oldest
    // record still kept, then reads on in order. (magnetar keeps 1024.)
    let reader = ok!(drained_reader());
    const N: u32 = 1100;
    for i in 0..N {
        let text = alloc::format!("lap {i:04}");
        expect_status!(write_raw(reader.raw(), 0, text.as_ptr(), text.len()), Status::Ok);
    }
    let mut seen = Vec::new();
    for _ in 0..=N {
        let (n, buf) = read_one(&reader);
        if n < 0 {
            expect_status!(n, Status::ShouldWait);
            break;
        }
        let data = parse(n, &buf).data;
        let text = core::str::from_utf8(&data).unwrap_or("");
        let Some(i) = text.strip_prefix("lap ").and_then(|d| d.parse::<u32>().ok()) else {
            return Err(alloc::format!("unexpected record {text:?}"));
        };
        seen.push(i);
    }
    expect!(!seen.is_empty() && seen[0] > 0, "the reader was not lapped: first record {:?}", seen.first());
    expect_eq!(*seen.last().unwrap_or(&0), N - 1);
    expect!(seen.windows(2).all(|w| w[1] == w[0] + 1), "records out of order or missing");
    Ok(())
}
