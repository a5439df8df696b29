//! Tests of the generated dispatch against the table, through the generated
//! recording handler `Probe`.

use crate::dispatch::{dispatch, Probe};
use crate::meta::ArgKind;
use crate::{HandleArg, Status, SYSCALLS};

fn call(num: u64, regs: [u64; 8]) -> (u64, String) {
    let mut probe = Probe::default();
    let rax = dispatch(&mut probe, num, &regs);
    assert!(probe.0.len() <= 1);
    (rax, probe.0.pop().unwrap_or_default())
}

fn status(s: Status) -> u64 {
    i64::from(s.into_raw()) as u64
}

#[test]
fn unknown_numbers_are_bad_syscall() {
    for num in [133, 200, u64::from(u32::MAX) + 20, u64::MAX] {
        assert_eq!(call(num, [0; 8]), (status(Status::BadSyscall), String::new()));
    }
}

/// Every numbered syscall reaches its own method, with each handle argument
/// carrying exactly the requirements the table declares.
#[test]
fn every_number_reaches_its_method_with_the_table_specs() {
    for s in SYSCALLS.iter().filter(|s| s.is_kernel() && !s.attrs.noreturn) {
        let (rax, record) = call(u64::from(s.num.unwrap_or_default()), [0x1001; 8]);
        assert!(record.starts_with(&format!("{} (", s.name)), "#{:?} called {record}", s.num);
        if s.ret == "mx_status_t" {
            assert_eq!(rax, status(Status::NotSupported), "{}", s.name);
        }
        for a in s.args {
            if let ArgKind::Handle(spec) = a.kind {
                let expect = format!("{:?}", HandleArg::new(0x1001, spec));
                assert!(record.contains(&expect), "{}: {} not in {record}", s.name, a.name);
            }
        }
    }
}

#[test]
fn arguments_are_decoded_in_order_and_truncated_to_their_c_type() {
    // mx_guest_set_trap(guest, kind, addr, len, port = MX_HANDLE_INVALID, key)
    let (rax, record) = call(113, [0x1003, 0xdead_beef_0000_0001, 0x3f8, 8, 0xffff_ffff_0000_0000, 7, 9, 9]);
    assert_eq!(rax, status(Status::NotSupported));
    assert!(record.contains("raw: 4099"), "{record}");
    assert!(record.ends_with(", 1, 1016, 8, None, 7)"), "{record}");
}

#[test]
fn optional_pointers_and_handles() {
    // mx_object_wait_one(handle, waitfor, deadline, observed)
    let (_, null) = call(6, [0x1001, 0x8, u64::MAX, 0, 0, 0, 0, 0]);
    assert!(null.ends_with(", Signals(SIGNALED), 18446744073709551615, None)"), "{null}");
    let (_, some) = call(6, [0x1001, 0x8, 5, 0x2000, 0, 0, 0, 0]);
    assert!(some.ends_with(", Some(UserOut(0x2000)))"), "{some}");
    // mx_handle_close(MX_HANDLE_INVALID)
    assert_eq!(call(3, [0; 8]).1, "handle_close (None,)");
}

#[test]
fn values_are_returned_unchanged() {
    // mx_time_get returns the time itself, not a status.
    assert_eq!(call(0, [1, 0, 0, 0, 0, 0, 0, 0]), (0, "time_get (1,)".into()));
}
