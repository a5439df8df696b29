//! Several threads: wake-ups and kicks from another thread, several guests
//! and VCPUs at once, teardown with live VCPUs, and async trap delivery.

use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, Ordering};

use mx::hypervisor::{Exit, Vcpu};
use mx::{Port, Status};
use mx_abi::{Payload, TrapKind};

use crate::behaviour::async_delivery;
use crate::guests;
use crate::harness::{Failure, Outcome};
use crate::machine::*;
use crate::{cases, expect, expect_eq, ok};

/// These cases need a port trap to deliver through the port (async), which
/// the kernel does: anything else is a failure, not a reason to skip.
fn require_async() -> Result<(), Failure> {
    if async_delivery()? {
        Ok(())
    } else {
        Err(String::from("a port trap's OUT came back through vcpu_resume with its key: async delivery is broken")
            .into())
    }
}

struct Waker {
    vcpu: AtomicU32,
    vector: u32,
    status: AtomicI32,
}

fn hlt_woken_from_other_thread() -> Outcome {
    let m = machine(guests::irq())?;
    let v = m.vcpu()?;
    for port in [0x80, 0x84, 0x82] {
        expect_eq!(next(&v)?.io().map(|i| i.port), Some(port));
    }
    let w = Waker { vcpu: AtomicU32::new(v.raw()), vector: 0x40, status: AtomicI32::new(1) };
    // The helper interrupts once the guest has been halted a while.
    let t = spawn(
        |w: &Waker| {
            sleep(50_000_000);
            let s = unsafe { mx::sys::mx_vcpu_interrupt(w.vcpu.load(Ordering::SeqCst), w.vector) };
            w.status.store(s, Ordering::SeqCst);
        },
        &w,
    )?;
    expect_eq!(report(&v)?, 0x40);
    t.join()?;
    expect_eq!(w.status.load(Ordering::SeqCst), 0);
    expect_eq!(next(&v)?.io().map(|i| i.port), Some(0x83));
    Ok(())
}

fn interrupt_kicks_running_guest() -> Outcome {
    let m = machine(guests::kick())?;
    let v = m.vcpu()?;
    let w = Waker { vcpu: AtomicU32::new(v.raw()), vector: 0x40, status: AtomicI32::new(1) };
    let t = spawn(
        |w: &Waker| {
            sleep(30_000_000);
            let s = unsafe { mx::sys::mx_vcpu_interrupt(w.vcpu.load(Ordering::SeqCst), w.vector) };
            w.status.store(s, Ordering::SeqCst);
        },
        &w,
    )?;
    expect_eq!(report(&v)?, 0x40);
    t.join()?;
    Ok(())
}

struct Runner<'a> {
    machine: &'a Machine,
    outs: u32,
    result: AtomicI32,
    progress: AtomicU64,
}

fn run_counter(r: &Runner<'_>) {
    let result = (|| -> Result<(), i32> {
        let v = r.machine.vcpu().map_err(|_| -1)?;
        for i in 0..r.outs {
            match v.resume() {
                Ok(Exit::Io { port: 0x80, data, .. }) if data == i => {
                    r.progress.fetch_add(1, Ordering::Relaxed);
                }
                Ok(_) => return Err(-2),
                Err(e) => return Err(e.status() as i32),
            }
        }
        Ok(())
    })();
    r.result.store(result.err().unwrap_or(0), Ordering::SeqCst);
}

fn two_guests_four_vcpus_on_threads() -> Outcome {
    let a = machine(guests::count())?;
    let b = machine(guests::count())?;
    let runners: Vec<Runner<'_>> = [&a, &a, &b, &b]
        .iter()
        .map(|m| Runner { machine: m, outs: 2000, result: AtomicI32::new(1), progress: AtomicU64::new(0) })
        .collect();
    let threads: Vec<_> = runners.iter().map(|r| spawn(run_counter, r)).collect::<Result<_, _>>()?;
    for t in threads {
        t.join_within(60_000_000_000)?;
    }
    for (i, r) in runners.iter().enumerate() {
        expect!(r.result.load(Ordering::SeqCst) == 0, "VCPU {i}: status {}", r.result.load(Ordering::SeqCst));
        expect_eq!(r.progress.load(Ordering::SeqCst), 2000);
    }
    Ok(())
}

struct Made {
    machine_ram: Machine,
    vcpu: AtomicU32,
}

fn thread_exit_with_live_vcpu() -> Outcome {
    let before = counts()?;
    {
        let m = Made { machine_ram: machine(guests::probe())?, vcpu: AtomicU32::new(0) };
        let t = spawn(
            |m: &Made| {
                if let Ok(v) = m.machine_ram.vcpu() {
                    m.vcpu.store(v.into_handle().into_raw(), Ordering::SeqCst);
                }
            },
            &m,
        )?;
        t.join()?;
        let raw = m.vcpu.load(Ordering::SeqCst);
        expect!(raw != 0, "the helper made no VCPU");
        let v = Vcpu::from_handle(own(raw));
        expect_eq!(v.resume_packet().map(drop), Err(Status::BadState));
        expect_eq!(v.read_state().map(drop), Err(Status::BadState));
        expect_eq!(v.interrupt(0x40), Ok(()));
    }
    expect_eq!(counts()?, before);
    Ok(())
}

fn resume_forever(m: &Made) {
    if let Ok(v) = m.machine_ram.vcpu() {
        // Killing the thread runs no destructor: the case closes the handle.
        m.vcpu.store(v.raw(), Ordering::SeqCst);
        loop {
            if v.resume_packet().is_err() {
                break;
            }
        }
    }
}

/// Kills a helper running [`resume_forever`], waits for it, and closes the
/// VCPU handle it left (a killed thread closes nothing).
fn kill_and_close(t: Spawned<'_>, m: &Made) -> Result<(), Failure> {
    t.kill()?;
    t.join_within(2_000_000_000)?;
    drop(own(m.vcpu.load(Ordering::SeqCst)));
    Ok(())
}

fn kill_thread_running_guest() -> Outcome {
    let before = counts()?;
    {
        let m = Made { machine_ram: machine(guests::spin())?, vcpu: AtomicU32::new(0) };
        let t = spawn(resume_forever, &m)?;
        sleep(50_000_000);
        expect!(m.vcpu.load(Ordering::SeqCst) != 0, "the helper made no VCPU");
        kill_and_close(t, &m)?;
    }
    expect_eq!(counts()?, before);
    Ok(())
}

fn kill_thread_halted_guest() -> Outcome {
    let before = counts()?;
    {
        let m = Made { machine_ram: machine(guests::halt())?, vcpu: AtomicU32::new(0) };
        let t = spawn(resume_forever, &m)?;
        wait_blocked(&t)?;
        kill_and_close(t, &m)?;
    }
    expect_eq!(counts()?, before);
    Ok(())
}

/// The helper's run time so far (ns).
fn runtime(t: &Spawned<'_>) -> Result<u64, Failure> {
    let stats: mx_abi::object::InfoThreadStats = ok!(t.thread().handle().info(mx_abi::InfoTopic::ThreadStats));
    Ok(stats.total_runtime)
}

/// HLT with IF clear stays halted when an external interrupt arrives (the
/// guest cannot take it): the VCPU's thread stays blocked and uses no CPU.
/// It used to wake, re-enter the guest and exit on the HLT again, forever.
fn hlt_with_interrupts_off_ignores_interrupts() -> Outcome {
    let before = counts()?;
    {
        let m = Made { machine_ram: machine(guests::halt())?, vcpu: AtomicU32::new(0) };
        let t = spawn(resume_forever, &m)?;
        wait_blocked(&t)?;
        // SAFETY: no pointers.
        expect_eq!(unsafe { mx::sys::mx_vcpu_interrupt(m.vcpu.load(Ordering::SeqCst), 0x40) }, 0);
        sleep(20_000_000);
        let ran = runtime(&t)?;
        sleep(50_000_000);
        let info: mx_abi::object::InfoThread = ok!(t.thread().handle().info(mx_abi::InfoTopic::Thread));
        expect_eq!(info.state, mx_abi::object::ThreadState::Blocked as u32);
        let more = runtime(&t)? - ran;
        expect!(more < 2_000_000, "the halted VCPU's thread ran {more} ns in 50 ms");
        kill_and_close(t, &m)?;
    }
    expect_eq!(counts()?, before);
    Ok(())
}

/// A guest exiting in a tight loop on exits the kernel handles (CPUID),
/// with interrupts off and one pending, does not keep its CPU from threads
/// of the same priority: this thread still gets to run (at -smp 1 it
/// shares the helper's CPU) within a few time slices, each time.
fn busy_guest_shares_its_cpu() -> Outcome {
    let m = Made { machine_ram: machine(guests::cpuid_loop())?, vcpu: AtomicU32::new(0) };
    let t = spawn(resume_forever, &m)?;
    while m.vcpu.load(Ordering::SeqCst) == 0 {
        sleep(1_000_000);
    }
    // SAFETY: no pointers.
    expect_eq!(unsafe { mx::sys::mx_vcpu_interrupt(m.vcpu.load(Ordering::SeqCst), 0x40) }, 0);
    for _ in 0..20 {
        let start = mx::time_monotonic();
        sleep(1_000_000);
        let took = mx::time_monotonic() - start;
        expect!(took < 200_000_000, "a 1 ms sleep took {} ms beside the busy guest", took / 1_000_000);
    }
    expect!(runtime(&t)? > 0, "the busy guest never ran");
    kill_and_close(t, &m)?;
    Ok(())
}

fn guest_destroyed_with_port_trap() -> Outcome {
    let before = counts()?;
    {
        let port = ok!(Port::create());
        {
            let m = machine(guests::count_n())?;
            ok!(m.guest.set_trap(TrapKind::Io, 0x80, 1, Some(&port), 5));
            let v = m.vcpu()?;
            let mut s = ok!(v.read_state());
            s.r12 = 10;
            ok!(v.write_state(&s));
            // Sync (phase 1): ten exits with key 5; async: packets queue and
            // the 0x81 OUT comes back. Either way some trap work is pending
            // when the guest goes.
            let first = next(&v)?;
            expect_eq!(first.key(), if first.io().map(|i| i.port) == Some(0x80) { 5 } else { 0 });
        }
        // Whatever the port still holds must be well formed.
        while let Ok(p) = port.wait(after(10_000_000)) {
            expect!(matches!(p.payload(), Ok(Payload::GuestIo(_))), "packet {p:?}");
            expect_eq!(p.key, 5);
        }
    }
    expect_eq!(counts()?, before);
    Ok(())
}

// ------------------------------------------------------------ async

struct Producer<'a> {
    machine: &'a Machine,
    outs: u64,
    result: AtomicI32,
}

fn produce(p: &Producer<'_>) {
    let r = (|| -> Result<(), i32> {
        let v = p.machine.vcpu().map_err(|_| -1)?;
        let mut s = v.read_state().map_err(|s| s as i32)?;
        s.r12 = p.outs;
        v.write_state(&s).map_err(|s| s as i32)?;
        match v.resume() {
            Ok(Exit::Io { port: 0x81, data: 0xd0e, .. }) => Ok(()),
            Ok(_) => Err(-2),
            Err(e) => Err(e.status() as i32),
        }
    })();
    p.result.store(r.err().unwrap_or(0), Ordering::SeqCst);
}

fn async_10000_outs_in_order() -> Outcome {
    require_async()?;
    let m = machine(guests::count_n())?;
    let port = ok!(Port::create());
    ok!(m.guest.set_trap(TrapKind::Io, 0x80, 1, Some(&port), 0xfeed));
    let p = Producer { machine: &m, outs: 10_000, result: AtomicI32::new(1) };
    let t = spawn(produce, &p)?;
    for i in 0..10_000u32 {
        let packet = ok!(port.wait(after(10_000_000_000)));
        expect_eq!(packet.key, 0xfeed);
        match packet.payload() {
            Ok(Payload::GuestIo(io)) => {
                expect!(io.port == 0x80 && io.access_size == 4 && io.data == i, "packet {i}: {io:?}");
            }
            other => return Err(alloc::format!("packet {i}: {other:?}").into()),
        }
        if i % 1000 == 0 {
            sleep(5_000_000); // a slow consumer: the pool runs dry and the VCPU pauses
        }
    }
    t.join_within(30_000_000_000)?;
    expect_eq!(p.result.load(Ordering::SeqCst), 0);
    expect!(port.wait(after(1_000_000)).is_err());
    Ok(())
}

struct Consumer<'a> {
    port: &'a Port,
    count: AtomicU64,
    sum: AtomicU64,
    bad: AtomicU64,
}

fn consume(c: &Consumer<'_>) {
    while let Ok(p) = c.port.wait(after(500_000_000)) {
        match p.payload() {
            Ok(Payload::GuestIo(io)) if p.key == 9 => {
                c.sum.fetch_add(u64::from(io.data), Ordering::SeqCst);
                c.count.fetch_add(1, Ordering::SeqCst);
            }
            _ => {
                c.bad.fetch_add(1, Ordering::SeqCst);
            }
        }
    }
}

fn async_several_waiters_on_one_port() -> Outcome {
    require_async()?;
    let m = machine(guests::count_n())?;
    let port = ok!(Port::create());
    ok!(m.guest.set_trap(TrapKind::Io, 0x80, 1, Some(&port), 9));
    let c = Consumer { port: &port, count: AtomicU64::new(0), sum: AtomicU64::new(0), bad: AtomicU64::new(0) };
    let consumers: Vec<_> = (0..4).map(|_| spawn(consume, &c)).collect::<Result<_, _>>()?;
    let p = Producer { machine: &m, outs: 4000, result: AtomicI32::new(1) };
    let t = spawn(produce, &p)?;
    t.join_within(30_000_000_000)?;
    for t in consumers {
        t.join()?;
    }
    expect_eq!(p.result.load(Ordering::SeqCst), 0);
    expect_eq!(c.bad.load(Ordering::SeqCst), 0);
    expect_eq!(c.count.load(Ordering::SeqCst), 4000);
    expect_eq!(c.sum.load(Ordering::SeqCst), 3999 * 4000 / 2);
    Ok(())
}

fn async_mem_trap_through_port() -> Outcome {
    require_async()?;
    let m = machine(guests::mmio())?;
    let port = ok!(Port::create());
    ok!(m.guest.set_trap(TrapKind::Mem, MMIO, 0x1000, Some(&port), 0x33));
    let v = m.vcpu()?;
    // The first access is a load: the manager must still answer it; the
    // kernel delivers it through the port (decision 2) or through resume.
    let exit = next(&v);
    let packet = port.wait(after(1_000_000_000));
    expect!(exit.is_ok() || packet.is_ok(), "neither resume nor the port delivered the MEM trap");
    if let Ok(p) = packet {
        expect_eq!(p.key, 0x33);
    }
    Ok(())
}

cases![
    hlt_woken_from_other_thread,
    interrupt_kicks_running_guest,
    two_guests_four_vcpus_on_threads,
    thread_exit_with_live_vcpu,
    kill_thread_running_guest,
    kill_thread_halted_guest,
    hlt_with_interrupts_off_ignores_interrupts,
    busy_guest_shares_its_cpu,
    guest_destroyed_with_port_trap,
    async_10000_outs_in_order,
    async_several_waiters_on_one_port,
    async_mem_trap_through_port,
];
