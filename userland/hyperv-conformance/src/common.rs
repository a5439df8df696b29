//! The checks every hypercall makes before its own (reference §1.1-1.5,
//! decision 9): the call code, reserved bits of the input value, rep
//! fields, the fast flag, and where the input and output blocks lie.

use hv::abi::{self, call, Control, ProximityDomainInfo};

use crate::ctx::{Ctx, PAGE};
use crate::harness::Outcome;
use crate::{cases, expect, expect_eq, expect_status, mem};

cases![
    unknown_call_codes,
    reserved_bits_31_17,
    reserved_bits_47_44,
    reserved_bits_63_60,
    rep_count_on_simple_call,
    rep_start_on_simple_call,
    rep_start_not_below_count,
    rep_count_zero_on_rep_call,
    fast_flag_on_memory_only_calls,
    fast_flag_on_rep_call,
    misaligned_input,
    misaligned_output,
    input_straddles_page,
    output_straddles_page,
    rep_list_straddles_page,
    input_outside_root_memory,
    output_outside_root_memory,
    absent_input_address_ignored,
    reps_completed_is_absolute,
    failed_call_changes_nothing,
];

/// The input of `HvGetMemoryBalance` of our own pool: a simple call with
/// 16 bytes of input and 16 of output.
fn balance_input(ctx: &Ctx) -> [u8; 16] {
    abi::GetMemoryBalanceIn { partition_id: ctx.root_id, proximity_domain_info: ProximityDomainInfo::ANY }.to_bytes()
}

/// Issues GetMemoryBalance of our pool with `control` (its code already in).
fn balance_with_control(ctx: &Ctx, control: u64) -> abi::HvResult {
    ctx.call(control, &balance_input(ctx), 0).0
}

fn unknown_call_codes(ctx: &Ctx) -> Outcome {
    for code in [0x0000u16, 0x0001, 0x003f, 0x005e, 0x0099, 0x7fff, 0xffff] {
        let r = ctx.call(code as u64, &balance_input(ctx), 0).0;
        expect!(r.status == abi::HvStatus::INVALID_HYPERCALL_CODE, "code {code:#x}: {:?}", r.status);
    }
    Ok(())
}

fn reserved_bits(ctx: &Ctx, bits: core::ops::RangeInclusive<u32>) -> Outcome {
    for bit in bits {
        let control = Control::simple(call::GET_MEMORY_BALANCE).raw() | 1 << bit;
        let (r, out) = ctx.call(control, &balance_input(ctx), 16);
        expect!(r.status == abi::HvStatus::INVALID_HYPERCALL_INPUT, "bit {bit}: {:?}", r.status);
        expect!(out.iter().all(|&b| b == 0xa5), "bit {bit}: output written");
    }
    Ok(())
}

fn reserved_bits_31_17(ctx: &Ctx) -> Outcome {
    reserved_bits(ctx, 17..=31)
}

fn reserved_bits_47_44(ctx: &Ctx) -> Outcome {
    reserved_bits(ctx, 44..=47)
}

fn reserved_bits_63_60(ctx: &Ctx) -> Outcome {
    reserved_bits(ctx, 60..=63)
}

fn rep_count_on_simple_call(ctx: &Ctx) -> Outcome {
    for count in [1u64, 2, 0xfff] {
        let control = Control::simple(call::GET_MEMORY_BALANCE).raw() | count << Control::REP_COUNT_SHIFT;
        expect_status!(balance_with_control(ctx, control), INVALID_HYPERCALL_INPUT);
    }
    let control = Control::simple(call::GET_PARTITION_ID).raw() | 1 << Control::REP_COUNT_SHIFT;
    expect_status!(ctx.call(control, &[], 8).0, INVALID_HYPERCALL_INPUT);
    Ok(())
}

fn rep_start_on_simple_call(ctx: &Ctx) -> Outcome {
    let control = Control::simple(call::GET_MEMORY_BALANCE).raw() | 1 << Control::REP_START_SHIFT;
    expect_status!(balance_with_control(ctx, control), INVALID_HYPERCALL_INPUT);
    Ok(())
}

fn rep_start_not_below_count(ctx: &Ctx) -> Outcome {
    let before = ctx.balance(ctx.root_id).1;
    let pages = ctx.pages(3);
    let header = abi::DepositMemoryIn { partition_id: ctx.root_id }.to_bytes();
    for (count, start) in [(2u16, 2u16), (2, 3), (1, 0xfff)] {
        let (r, _) = ctx.rep(call::DEPOSIT_MEMORY, &header, &mem::qwords(&pages), count, start, 0);
        expect!(r.status == abi::HvStatus::INVALID_HYPERCALL_INPUT, "count {count} start {start}: {:?}", r.status);
        expect_eq!(r.reps_completed, 0);
    }
    expect_eq!(ctx.balance(ctx.root_id).1, before);
    ctx.recycle(&pages);
    Ok(())
}

fn rep_count_zero_on_rep_call(ctx: &Ctx) -> Outcome {
    let header = abi::DepositMemoryIn { partition_id: ctx.root_id }.to_bytes();
    let (r, _) = ctx.rep(call::DEPOSIT_MEMORY, &header, &[], 0, 0, 0);
    expect_status!(r, INVALID_HYPERCALL_INPUT);
    Ok(())
}

fn fast_flag_on_memory_only_calls(ctx: &Ctx) -> Outcome {
    // Calls with output or more than 16 bytes of input cannot be fast.
    for code in [
        call::CREATE_PARTITION,
        call::GET_PARTITION_PROPERTY,
        call::SET_PARTITION_PROPERTY,
        call::GET_PARTITION_ID,
        call::GET_MEMORY_BALANCE,
        call::INSTALL_INTERCEPT,
        call::CREATE_VP,
        call::CREATE_PORT,
        call::CONNECT_PORT,
        call::POST_MESSAGE,
    ] {
        let r = ctx.fast(code, ctx.root_id, 0);
        expect!(r.status == abi::HvStatus::INVALID_HYPERCALL_INPUT, "code {code:#x}: {:?}", r.status);
    }
    Ok(())
}

fn fast_flag_on_rep_call(ctx: &Ctx) -> Outcome {
    let control = Control::rep(call::DEPOSIT_MEMORY, 1, 0).raw() | Control::FAST;
    let page = ctx.pages(1)[0];
    let before = ctx.balance(ctx.root_id).1;
    let r = ctx.raw(control, ctx.root_id, page);
    expect_status!(r, INVALID_HYPERCALL_INPUT);
    expect_eq!(ctx.balance(ctx.root_id).1, before);
    ctx.recycle(&[page]);
    Ok(())
}

fn misaligned_input(ctx: &Ctx) -> Outcome {
    for offset in [1u64, 4, 7] {
        mem::write(ctx.input_page() + offset, &balance_input(ctx));
        let r = ctx.raw(Control::simple(call::GET_MEMORY_BALANCE).raw(), ctx.input_page() + offset, ctx.output_page());
        expect!(r.status == abi::HvStatus::INVALID_ALIGNMENT, "offset {offset}: {:?}", r.status);
    }
    Ok(())
}

fn misaligned_output(ctx: &Ctx) -> Outcome {
    mem::write(ctx.input_page(), &balance_input(ctx));
    mem::fill(ctx.output_page(), 64, 0xa5);
    let r = ctx.raw(Control::simple(call::GET_MEMORY_BALANCE).raw(), ctx.input_page(), ctx.output_page() + 4);
    expect_status!(r, INVALID_ALIGNMENT);
    expect!(mem::read(ctx.output_page(), 64).iter().all(|&b| b == 0xa5), "output written");
    Ok(())
}

fn input_straddles_page(ctx: &Ctx) -> Outcome {
    // 16 bytes of input 8 bytes before the end of the first scratch page.
    let at = ctx.input_page() + PAGE - 8;
    mem::write(at, &balance_input(ctx));
    let r = ctx.raw(Control::simple(call::GET_MEMORY_BALANCE).raw(), at, ctx.output_page());
    expect_status!(r, INVALID_ALIGNMENT);
    Ok(())
}

fn output_straddles_page(ctx: &Ctx) -> Outcome {
    mem::write(ctx.input_page(), &balance_input(ctx));
    let at = ctx.output_page() + PAGE - 8;
    mem::fill(at, 16, 0xa5);
    let r = ctx.raw(Control::simple(call::GET_MEMORY_BALANCE).raw(), ctx.input_page(), at);
    expect_status!(r, INVALID_ALIGNMENT);
    expect!(mem::read(at, 16).iter().all(|&b| b == 0xa5), "output written");
    Ok(())
}

fn rep_list_straddles_page(ctx: &Ctx) -> Outcome {
    let before = ctx.balance(ctx.root_id).1;
    let pages = ctx.pages(2);
    // Header at 4080, elements at 4088 and 4096: the list crosses the page.
    let at = ctx.input_page() + PAGE - 16;
    let mut input = abi::DepositMemoryIn { partition_id: ctx.root_id }.to_bytes().to_vec();
    input.extend_from_slice(&mem::qwords(&pages));
    mem::write(at, &input);
    let r = ctx.raw(Control::rep(call::DEPOSIT_MEMORY, 2, 0).raw(), at, ctx.output_page());
    expect_status!(r, INVALID_ALIGNMENT);
    expect_eq!(r.reps_completed, 0);
    expect_eq!(ctx.balance(ctx.root_id).1, before);
    ctx.recycle(&pages);
    Ok(())
}

fn input_outside_root_memory(ctx: &Ctx) -> Outcome {
    let local = [0u64; 4];
    let outside = [
        ctx.outside_page() * PAGE,
        (ctx.root.memory().0 as u64) - PAGE,
        local.as_ptr() as u64 & !7,
        0,
        0xffff_8000_0000_0000,
        !0xfffu64,
    ];
    for addr in outside {
        let r = ctx.raw(Control::simple(call::GET_MEMORY_BALANCE).raw(), addr, ctx.output_page());
        expect!(r.status == abi::HvStatus::INVALID_ALIGNMENT, "input at {addr:#x}: {:?}", r.status);
    }
    Ok(())
}

fn output_outside_root_memory(ctx: &Ctx) -> Outcome {
    mem::write(ctx.input_page(), &balance_input(ctx));
    let mut local = [0u64; 4];
    let outside = [ctx.outside_page() * PAGE, local.as_mut_ptr() as u64, 0, !0xfffu64];
    for addr in outside {
        let r = ctx.raw(Control::simple(call::GET_MEMORY_BALANCE).raw(), ctx.input_page(), addr);
        expect!(r.status == abi::HvStatus::INVALID_ALIGNMENT, "output at {addr:#x}: {:?}", r.status);
    }
    expect_eq!(local, [0u64; 4]);
    Ok(())
}

fn absent_input_address_ignored(ctx: &Ctx) -> Outcome {
    // HvGetPartitionId has no input: its input address means nothing.
    for input in [0u64, 3, u64::MAX] {
        mem::fill(ctx.output_page(), 8, 0xa5);
        let r = ctx.raw(Control::simple(call::GET_PARTITION_ID).raw(), input, ctx.output_page());
        expect_status!(r, SUCCESS);
        expect_eq!(mem::read_u64(ctx.output_page()), ctx.root_id);
    }
    Ok(())
}

fn reps_completed_is_absolute(ctx: &Ctx) -> Outcome {
    let (available, in_use) = ctx.balance(ctx.root_id).1;
    let pages = ctx.pages(5);
    let header = abi::DepositMemoryIn { partition_id: ctx.root_id }.to_bytes();
    // Start 2 of 5: elements 2, 3, 4 are deposited; reps completed is 5.
    let (r, _) = ctx.rep(call::DEPOSIT_MEMORY, &header, &mem::qwords(&pages), 5, 2, 0);
    expect_status!(r, SUCCESS);
    expect_eq!(r.reps_completed, 5);
    expect_eq!(ctx.balance(ctx.root_id).1, (available + 3, in_use));
    // Elements 0 and 1 were not touched: they can still be deposited.
    expect_status!(ctx.deposit(ctx.root_id, &pages[..2]), SUCCESS);
    expect_eq!(ctx.balance(ctx.root_id).1, (available + 5, in_use));
    Ok(())
}

fn failed_call_changes_nothing(ctx: &Ctx) -> Outcome {
    let before = ctx.balance(ctx.root_id).1;
    let (r, _) = ctx.call(Control::simple(call::CREATE_PARTITION).raw() | 1 << 20, &[0u8; 16], 8);
    expect_status!(r, INVALID_HYPERCALL_INPUT);
    expect_eq!(ctx.balance(ctx.root_id).1, before);
    expect_eq!(ctx.next_child(ctx.root_id, 0), (abi::HvResult::new(abi::HvStatus::SUCCESS, 0), 0));
    Ok(())
}
