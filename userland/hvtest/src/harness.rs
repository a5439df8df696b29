//! The case runner: each case returns `Ok(())`, a failure or a skip (with
//! its reason); skips are counted apart, never as passes.

use alloc::string::String;

/// Why a case did not pass.
#[derive(Debug)]
pub enum Failure {
    /// It ran and something was wrong.
    Fail(String),
    /// It could not run here (the reason is printed).
    Skip(String),
}

impl From<String> for Failure {
    fn from(s: String) -> Failure {
        Failure::Fail(s)
    }
}

impl From<&str> for Failure {
    fn from(s: &str) -> Failure {
        Failure::Fail(String::from(s))
    }
}

/// The result of a case.
pub type Outcome = Result<(), Failure>;

/// One documented behaviour, checked.
pub struct Case {
    pub name: &'static str,
    pub run: fn() -> Outcome,
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

/// Fails unless `$actual == $expected`.
#[macro_export]
macro_rules! expect_eq {
    ($actual:expr, $expected:expr $(,)?) => {{
        let (actual, expected) = (&$actual, &$expected);
        if actual != expected {
            return Err($crate::harness::Failure::Fail(alloc::format!(
                "{}:{}: `{}` is {:?}, expected {:?}",
                file!(),
                line!(),
                stringify!($actual),
                actual,
                expected
            )));
        }
    }};
}

/// Fails unless `$cond` holds.
#[macro_export]
macro_rules! expect {
    ($cond:expr) => {
        if !$cond {
            return Err($crate::harness::Failure::Fail(alloc::format!("{}:{}: {}", file!(), line!(), stringify!($cond))));
        }
    };
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err($crate::harness::Failure::Fail(alloc::format!(
                "{}:{}: {}: {}", file!(), line!(), stringify!($cond), alloc::format!($($msg)+))));
        }
    };
}

/// Unwraps a result whose error is `Debug`, failing the case.
#[macro_export]
macro_rules! ok {
    ($expr:expr) => {
        match $expr {
            Ok(value) => value,
            Err(e) => {
                return Err($crate::harness::Failure::Fail(alloc::format!(
                    "{}:{}: `{}` failed: {:?}",
                    file!(),
                    line!(),
                    stringify!($expr),
                    e
                )))
            }
        }
    };
}

/// Fails unless a raw status equals the expected one.
#[macro_export]
macro_rules! expect_status {
    ($raw:expr, $status:expr $(,)?) => {{
        let raw: i32 = $raw;
        let expected: i32 = $status as i32;
        if raw != expected {
            return Err($crate::harness::Failure::Fail(alloc::format!(
                "{}:{}: `{}` returned {} ({:?}), expected {:?}",
                file!(),
                line!(),
                stringify!($raw),
                raw,
                mx_abi::Status::try_from(raw),
                $status
            )));
        }
    }};
}

/// Runs the cases whose names contain `filter`; returns the failures.
pub fn run(groups: &[&[Case]], filter: &str) -> u32 {
    let (mut passed, mut failed, mut skipped) = (0u32, 0u32, 0u32);
    for case in groups.iter().flat_map(|g| g.iter()).filter(|c| c.name.contains(filter)) {
        match (case.run)() {
            Ok(()) => {
                passed += 1;
                mxrt::println!("ok   {}", case.name);
            }
            Err(Failure::Fail(why)) => {
                failed += 1;
                mxrt::println!("FAIL {}: {}", case.name, why);
            }
            Err(Failure::Skip(why)) => {
                skipped += 1;
                mxrt::println!("skip {}: {}", case.name, why);
            }
        }
    }
    if skipped > 0 {
        mxrt::println!("hypervisor: {passed} passed, {failed} failed, {skipped} skipped");
    } else {
        mxrt::println!("hypervisor: {passed} passed, {failed} failed");
    }
    failed
}
