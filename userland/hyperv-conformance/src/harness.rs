//! The case runner: each case gets the suite's context and returns `Ok(())`
//! or why it failed; there are no skips (every case must be able to run).

use alloc::string::String;

use crate::ctx::Ctx;

/// Why a case failed.
pub type Failure = String;

/// The result of a case.
pub type Outcome = Result<(), Failure>;

/// One documented behaviour, checked.
pub struct Case {
    pub name: &'static str,
    pub run: fn(&Ctx) -> Outcome,
}

/// `cases![a, b]` makes `pub const CASES: &[Case]`.
#[macro_export]
macro_rules! cases {
    ($($name:ident),* $(,)?) => {
        pub const CASES: &[$crate::harness::Case] = &[
            $($crate::harness::Case { name: concat!(module_path!(), "::", stringify!($name)), run: $name },)*
        ];
    };
}

/// Fails unless `$actual == $expected` (both `Debug`).
#[macro_export]
macro_rules! expect_eq {
    ($actual:expr, $expected:expr $(,)?) => {{
        let (actual, expected) = (&$actual, &$expected);
        if actual != expected {
            return Err(alloc::format!(
                "{}:{}: expected `{}` == {:x?}, got {:x?}",
                file!(),
                line!(),
                stringify!($actual),
                expected,
                actual
            ));
        }
    }};
}

/// Fails unless `$cond` holds.
#[macro_export]
macro_rules! expect {
    ($cond:expr) => {
        if !$cond {
            return Err(alloc::format!("{}:{}: expected {}", file!(), line!(), stringify!($cond)));
        }
    };
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(alloc::format!(
                "{}:{}: expected {}: {}", file!(), line!(), stringify!($cond), alloc::format!($($msg)+)));
        }
    };
}

/// Fails unless a hypercall's status (an `HvResult` or `HvStatus`) is the expected one.
#[macro_export]
macro_rules! expect_status {
    ($result:expr, $status:ident $(,)?) => {{
        let got: hv::abi::HvStatus = $crate::ctx::status_of($result);
        if got != hv::abi::HvStatus::$status {
            return Err(alloc::format!(
                "{}:{}: `{}`: expected HV_STATUS_{} got {:?}",
                file!(),
                line!(),
                stringify!($result),
                stringify!($status),
                got
            ));
        }
    }};
}

/// Unwraps a `Result<T, Failure>`-like helper result with context.
#[macro_export]
macro_rules! ok {
    ($expr:expr) => {
        match $expr {
            Ok(value) => value,
            Err(e) => return Err(alloc::format!("{}:{}: `{}` failed: {:?}", file!(), line!(), stringify!($expr), e)),
        }
    };
}

/// Runs the cases whose names contain `filter`; returns (passed, failed).
pub fn run(ctx: &Ctx, groups: &[&[Case]], filter: &str) -> (u32, u32) {
    let (mut passed, mut failed) = (0u32, 0u32);
    for case in groups.iter().flat_map(|g| g.iter()).filter(|c| c.name.contains(filter)) {
        let name = case.name.strip_prefix("hyperv_conformance::").unwrap_or(case.name);
        match (case.run)(ctx) {
            Ok(()) => {
                passed += 1;
                mxrt::println!("ok {name}");
            }
            Err(why) => {
                failed += 1;
                mxrt::println!("FAIL {name}: {why}");
            }
        }
        ctx.after_case();
    }
    (passed, failed)
}
