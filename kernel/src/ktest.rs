//! In-kernel tests: code that can only be tested inside the kernel (page
//! tables, the scheduler, objects wired to real CPUs) registers a test with
//! [`ktest!`]; the linker collects them in the `.ktest` section, and
//! `test=ktest` on the command line runs them all (`ktest=NAME` runs those
//! whose name contains NAME), one line each, then a closing
//! `ktest: N passed, M failed` line and a QEMU exit with the verdict.

use crate::arch::x86::qemu;

/// One registered test.
#[repr(C)]
pub struct KTest {
    pub name: &'static str,
    pub run: fn() -> Result<(), alloc::string::String>,
}

/// Registers a kernel test: `ktest!(name_of_test, || { ...; Ok(()) });`
/// The closure returns `Result<(), String>`; `kassert!` helps.
#[macro_export]
macro_rules! ktest {
    ($name:ident, $body:expr) => {
        const _: () = {
            #[used]
            #[link_section = ".ktest"]
            static TEST: $crate::ktest::KTest = $crate::ktest::KTest {
                name: concat!(module_path!(), "::", stringify!($name)),
                run: {
                    fn run() -> Result<(), alloc::string::String> {
                        let body: fn() -> Result<(), alloc::string::String> = $body;
                        body()
                    }
                    run
                },
            };
        };
    };
}

/// Fails the enclosing ktest with the condition's text and location.
#[macro_export]
macro_rules! kassert {
    ($cond:expr) => {
        if !$cond {
            return Err(alloc::format!("{}:{}: assertion failed: {}", file!(), line!(), stringify!($cond)));
        }
    };
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(alloc::format!("{}:{}: {}", file!(), line!(), alloc::format!($($msg)+)));
        }
    };
}

extern "C" {
    // Only addresses are taken; the bytes are read as `KTest`s in `all`.
    static __ktest_start: u8;
    static __ktest_end: u8;
}

fn all() -> &'static [KTest] {
    let start = (&raw const __ktest_start).cast::<KTest>();
    let end = (&raw const __ktest_end).cast::<KTest>();
    let count = (end as usize - start as usize) / core::mem::size_of::<KTest>();
    // SAFETY: the linker script places only `KTest` statics (8-aligned, as
    // the section is) between the two symbols, and they live for 'static.
    unsafe { core::slice::from_raw_parts(start, count) }
}

/// Runs the tests whose names contain `filter` (all for ""), logs each
/// result and a summary, and ends QEMU with the verdict.
pub fn run_and_exit(filter: &str) -> ! {
    let (mut passed, mut failed) = (0u32, 0u32);
    for test in all().iter().filter(|t| t.name.contains(filter)) {
        match (test.run)() {
            Ok(()) => {
                passed += 1;
                log::info!("ktest: ok   {}", test.name);
            }
            Err(why) => {
                failed += 1;
                log::error!("ktest: FAIL {}: {why}", test.name);
            }
        }
    }
    log::info!("ktest: {passed} passed, {failed} failed");
    qemu::exit(if failed == 0 && passed > 0 { qemu::ExitCode::Success } else { qemu::ExitCode::Failure });
    crate::arch::x86::cpu::halt_forever()
}

crate::ktest!(ktest_runs, || Ok(()));

crate::ktest!(heap_allocates_and_frees, || {
    let before = crate::mm::heap::in_use();
    let v: alloc::vec::Vec<u64> = (0..1000).collect();
    kassert!(v.iter().sum::<u64>() == 499_500);
    let big = alloc::vec![0u8; 64 * 1024];
    kassert!(crate::mm::heap::in_use() >= before + 64 * 1024);
    drop((v, big));
    kassert!(crate::mm::heap::in_use() == before, "heap {} != {before}", crate::mm::heap::in_use());
    Ok(())
});

crate::ktest!(frames_round_trip, || {
    let before = crate::mm::frame::stats().free_frames;
    let a = crate::mm::frame::alloc_zeroed_frame().ok_or("no frame")?;
    let b = crate::mm::frame::alloc_contiguous(5, 0).ok_or("no run")?;
    kassert!(a % crate::mm::PAGE_SIZE == 0 && b % crate::mm::PAGE_SIZE == 0);
    kassert!(crate::mm::frame::stats().free_frames == before - 6);
    crate::mm::frame::free_frame(a);
    crate::mm::frame::free_contiguous(b, 5);
    kassert!(crate::mm::frame::stats().free_frames == before);
    Ok(())
});
