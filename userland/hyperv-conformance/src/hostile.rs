//! Hostile input: garbage input values and blocks, huge rep counts, bad ids
//! and pointers, an unknown protocol op, garbage hypercalls from a guest.
//! Every answer is a TLFS status, nothing changes, and the server keeps
//! serving (the connection never breaks: that would read as
//! `HV_STATUS_OPERATION_FAILED`).

use alloc::vec::Vec;

use hv::abi::{self, call, CallShape, Control, HvResult, HvStatus};

use crate::ctx::{Ctx, PAGE};
use crate::harness::Outcome;
use crate::script::{self, Op};
use crate::vm::{enable_hypercalls, Child, Vm};
use crate::{cases, expect, expect_eq, expect_status, mem};

cases![
    garbage_input_values,
    garbage_input_blocks,
    huge_rep_counts,
    bad_pointers_for_every_call,
    bad_ids_for_every_call,
    unknown_protocol_op,
    guest_garbage_hypercalls,
];

/// Every call code the server implements.
const CODES: [u16; 25] = [
    call::CREATE_PARTITION,
    call::INITIALIZE_PARTITION,
    call::FINALIZE_PARTITION,
    call::DELETE_PARTITION,
    call::GET_PARTITION_PROPERTY,
    call::SET_PARTITION_PROPERTY,
    call::GET_PARTITION_ID,
    call::GET_NEXT_CHILD_PARTITION,
    call::DEPOSIT_MEMORY,
    call::WITHDRAW_MEMORY,
    call::GET_MEMORY_BALANCE,
    call::MAP_GPA_PAGES,
    call::UNMAP_GPA_PAGES,
    call::INSTALL_INTERCEPT,
    call::CREATE_VP,
    call::DELETE_VP,
    call::GET_VP_REGISTERS,
    call::SET_VP_REGISTERS,
    call::CREATE_PORT,
    call::DELETE_PORT,
    call::CONNECT_PORT,
    call::GET_PORT_PROPERTY,
    call::DISCONNECT_PORT,
    call::POST_MESSAGE,
    call::SIGNAL_EVENT,
];

/// xorshift64*: a fixed sequence, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// A status the TLFS defines (and not the client's "connection broken").
fn is_tlfs_status(r: HvResult) -> bool {
    r.status.name().is_some() && r.status != HvStatus::OPERATION_FAILED
}

/// Our pool and children as they are.
fn snapshot(ctx: &Ctx) -> (HvResult, (u64, u64), u64) {
    let (r, balance) = ctx.balance(ctx.root_id);
    (r, balance, ctx.next_child(ctx.root_id, 0).1)
}

fn garbage_input_values(ctx: &Ctx) -> Outcome {
    // Our pool empty: no garbage can create anything.
    ctx.drain(ctx.root_id);
    let before = snapshot(ctx);
    let mut rng = Rng(0x5eed_0001);
    for i in 0..400 {
        let control = match i % 4 {
            0 => rng.next(),
            1 => CODES[rng.next() as usize % CODES.len()] as u64 | (rng.next() & !0xffff),
            2 => rng.next() & 0xffff,
            _ => CODES[rng.next() as usize % CODES.len()] as u64 | (rng.next() & Control::RESERVED),
        };
        let input: Vec<u8> = (0..PAGE / 8).flat_map(|_| rng.next().to_le_bytes()).collect();
        let r = ctx.call(control, &input, 0).0;
        expect!(is_tlfs_status(r), "control {control:#x}: {:?}", r.status);
        expect!(r.reps_completed as u64 <= (control >> 32) & 0xfff, "control {control:#x}: reps {}", r.reps_completed);
    }
    expect_eq!(snapshot(ctx), before);
    expect_eq!(ctx.partition_id().1, ctx.root_id);
    Ok(())
}

fn garbage_input_blocks(ctx: &Ctx) -> Outcome {
    // Well-formed input values of every call, random input bytes: random
    // ids are unknown, so every call fails and nothing changes.
    ctx.drain(ctx.root_id);
    let before = snapshot(ctx);
    let mut rng = Rng(0x5eed_0002);
    for i in 0..300 {
        let code = CODES[i % CODES.len()];
        let shape = CallShape::of(code).ok_or("a code the server implements")?;
        let control =
            if shape.rep { Control::rep(code, 1 + (rng.next() % 8) as u16, 0) } else { Control::simple(code) };
        let input: Vec<u8> = (0..PAGE / 8).flat_map(|_| rng.next().to_le_bytes()).collect();
        let r = ctx.call(control.raw(), &input, 0).0;
        expect!(is_tlfs_status(r), "code {code:#x}: {:?}", r.status);
        if code != call::GET_PARTITION_ID {
            expect!(r.status != HvStatus::SUCCESS, "code {code:#x} succeeded on garbage");
        }
    }
    expect_eq!(snapshot(ctx), before);
    Ok(())
}

fn huge_rep_counts(ctx: &Ctx) -> Outcome {
    let child = Child::active(ctx, 1 + crate::vm::VP_PAGES)?;
    expect_status!(ctx.create_vp(child.id, 0), SUCCESS);
    let before = child.balance()?;
    // Lists and outputs that cannot fit in their page.
    let header = abi::DepositMemoryIn { partition_id: child.id }.to_bytes();
    let (r, _) = ctx.rep(call::DEPOSIT_MEMORY, &header, &[], 0xfff, 0, 0);
    expect_status!(r, INVALID_ALIGNMENT);
    let header = abi::WithdrawMemoryIn { partition_id: child.id, proximity_domain_info: Default::default() }.to_bytes();
    let (r, _) = ctx.rep(call::WITHDRAW_MEMORY, &header, &[], 0xfff, 0, 0);
    expect_status!(r, INVALID_ALIGNMENT);
    let header = abi::VpRegistersIn { partition_id: child.id, vp_index: 0, padding: 0 }.to_bytes();
    let (r, _) = ctx.rep(call::GET_VP_REGISTERS, &header, &[], 0xfff, 0, 0);
    expect_status!(r, INVALID_ALIGNMENT);
    let (r, _) = ctx.rep(call::SET_VP_REGISTERS, &header, &[], 0xfff, 0, 0);
    expect_status!(r, INVALID_ALIGNMENT);
    // The largest list that fits (511 pages), all of them bogus.
    let bogus: Vec<u64> = (0..511).map(|i| ctx.outside_page() + i).collect();
    let r = ctx.deposit(child.id, &bogus);
    expect_status!(r, OPERATION_DENIED);
    expect_eq!(r.reps_completed, 0);
    // Unmap has no list: 4095 unmapped pages are unmapped silently.
    let r = ctx.unmap(child.id, 0x1000, 0xfff);
    expect_status!(r, SUCCESS);
    expect_eq!(r.reps_completed, 0xfff);
    expect_eq!(child.balance()?, before);
    Ok(())
}

fn bad_pointers_for_every_call(ctx: &Ctx) -> Outcome {
    let local = [0u64; 2];
    let bad = [0u64, 8, ctx.outside_page() * PAGE, local.as_ptr() as u64 & !7, 0xffff_ffff_8000_0000, !7u64];
    for code in CODES {
        let shape = CallShape::of(code).ok_or("a code the server implements")?;
        let control = if shape.rep { Control::rep(code, 1, 0) } else { Control::simple(code) };
        for &addr in &bad {
            if shape.input > 0 {
                let r = ctx.raw(control.raw(), addr, ctx.output_page());
                expect!(r.status == HvStatus::INVALID_ALIGNMENT, "code {code:#x} input {addr:#x}: {:?}", r.status);
            }
            if shape.output_len(1) > 0 {
                // A valid input (our own id where ids go) with a bad output.
                let mut input = [0u8; 256];
                input[..8].copy_from_slice(&ctx.root_id.to_le_bytes());
                mem::write(ctx.input_page(), &input);
                let r = ctx.raw(control.raw(), ctx.input_page(), addr);
                expect!(r.status == HvStatus::INVALID_ALIGNMENT, "code {code:#x} output {addr:#x}: {:?}", r.status);
            }
        }
    }
    expect_eq!(local, [0u64; 2]);
    expect_eq!(ctx.partition_id().1, ctx.root_id);
    Ok(())
}

fn bad_ids_for_every_call(ctx: &Ctx) -> Outcome {
    // Every call whose input starts with a partition id, with ids nobody has.
    let ids = [0u64, 0x7fff_ffff_ffff_fffe, 0x8000_0000_0000_0000, 0xdead_beef];
    let starts_with_id = CODES.iter().filter(|&&c| {
        !matches!(c, call::CREATE_PARTITION | call::GET_PARTITION_ID | call::POST_MESSAGE | call::SIGNAL_EVENT)
    });
    for &code in starts_with_id {
        let shape = CallShape::of(code).ok_or("a code the server implements")?;
        let control = if shape.rep { Control::rep(code, 1, 0) } else { Control::simple(code) };
        for id in ids {
            let mut input = [0u8; 256];
            input[..8].copy_from_slice(&id.to_le_bytes());
            let r = ctx.call(control.raw(), &input, 0).0;
            expect!(r.status == HvStatus::INVALID_PARTITION_ID, "code {code:#x} id {id:#x}: {:?}", r.status);
        }
    }
    Ok(())
}

fn unknown_protocol_op(ctx: &Ctx) -> Outcome {
    for op in [0u32, 3, 0x7fff_ffff, u32::MAX] {
        let raw = ctx.root.request(op, 0, 0, 0).map_err(|s| alloc::format!("op {op}: {s:?}"))?;
        let r = HvResult::from_raw(raw);
        expect!(r.status == HvStatus::INVALID_HYPERCALL_CODE, "op {op}: {:?}", r.status);
    }
    // End-of-message names a SINT 0-15.
    for sint in [16u64, 0xffff_ffff, u64::MAX] {
        let raw = ctx.root.request(hv::proto::OP_END_OF_MESSAGE, sint, 0, 0).map_err(|s| alloc::format!("{s:?}"))?;
        let r = HvResult::from_raw(raw);
        expect!(r.status == HvStatus::INVALID_PARAMETER, "EOM of SINT {sint:#x}: {:?}", r.status);
    }
    expect_eq!(ctx.partition_id().1, ctx.root_id);
    Ok(())
}

fn guest_garbage_hypercalls(ctx: &Ctx) -> Outcome {
    let vm = Vm::new(ctx, 0)?;
    let mut rng = Rng(0x5eed_0003);
    let garbage: Vec<u8> = (0..PAGE / 8).flat_map(|_| rng.next().to_le_bytes()).collect();
    vm.write(script::INPUT, &garbage);
    let mut ops = Vec::from(enable_hypercalls());
    for i in 0..40u64 {
        let control =
            if i % 2 == 0 { rng.next() } else { CODES[i as usize % CODES.len()] as u64 | (rng.next() & (0xfff << 32)) };
        let (input, output) = match i % 3 {
            0 => (script::INPUT, script::OUTPUT),
            1 => (rng.next(), rng.next()),
            _ => (rng.next() & 0xffff_fff8, script::OUTPUT),
        };
        ops.push(Op::Hypercall { control, input, output });
    }
    ops.push(Op::Cpuid { leaf: abi::cpuid::INTERFACE, subleaf: 0 });
    let before = vm.child.balance()?;
    vm.run(&ops)?;
    for i in 2..ops.len() - 1 {
        let r = HvResult::from_raw(vm.result(i, 0));
        expect!(is_tlfs_status(r), "op {i}: {:?}", r.status);
    }
    // The guest kept running to its last op.
    expect_eq!(vm.result(ops.len() - 1, 0) as u32, abi::cpuid::INTERFACE_SIGNATURE);
    expect_eq!(vm.child.balance()?, before);
    Ok(())
}
