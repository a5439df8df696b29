//! The case runner: each case is a function returning `Ok(())` or a
//! message; one output line per case, then `syscalls: N passed, M failed`.

use alloc::string::String;

/// One documented behaviour, checked.
pub struct Case {
    pub name: &'static str,
    pub run: fn() -> Result<(), String>,
}

/// The result type of a case.
pub type Outcome = Result<(), String>;

/// Declares a module's cases: `cases![name_a, name_b]` makes
/// `pub const CASES: &[Case]` from functions of those names.
#[macro_export]
macro_rules! cases {
    ($($name:ident),* $(,)?) => {
        pub const CASES: &[$crate::harness::Case] = &[
            $($crate::harness::Case { name: concat!(module_path!(), "::", stringify!($name)), run: $name },)*
        ];
    };
}

/// Fails the case unless `$actual == $expected`.
#[macro_export]
macro_rules! expect_eq {
    ($actual:expr, $expected:expr $(,)?) => {{
        let (actual, expected) = (&$actual, &$expected);
        if actual != expected {
            return Err(alloc::format!(
                "{}:{}: `{}` is {:?}, expected {:?}",
                file!(),
                line!(),
                stringify!($actual),
                actual,
                expected
            ));
        }
    }};
}

/// Fails the case unless `$cond` holds (with an optional message).
#[macro_export]
macro_rules! expect {
    ($cond:expr) => {
        if !$cond {
            return Err(alloc::format!("{}:{}: {}", file!(), line!(), stringify!($cond)));
        }
    };
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(alloc::format!("{}:{}: {}: {}", file!(), line!(), stringify!($cond), alloc::format!($($msg)+)));
        }
    };
}

/// Unwraps an `mx::Result`, failing the case with the status.
#[macro_export]
macro_rules! ok {
    ($expr:expr) => {
        match $expr {
            Ok(value) => value,
            Err(status) => {
                return Err(alloc::format!("{}:{}: `{}` failed: {:?}", file!(), line!(), stringify!($expr), status))
            }
        }
    };
}

/// Fails unless a raw `mx_status_t` expression equals the expected status.
#[macro_export]
macro_rules! expect_status {
    ($raw:expr, $status:expr $(,)?) => {{
        let raw: i32 = $raw;
        let expected: i32 = $status as i32;
        if raw != expected {
            return Err(alloc::format!(
                "{}:{}: `{}` returned {} ({:?}), expected {:?}",
                file!(),
                line!(),
                stringify!($raw),
                raw,
                mx_abi::Status::try_from(raw),
                $status
            ));
        }
    }};
}

/// Runs every case (those whose name contains `filter`), prints one line
/// each and the summary; returns the number of failures.
pub fn run(groups: &[&[Case]], filter: &str) -> u32 {
    let (mut passed, mut failed) = (0u32, 0u32);
    for case in groups.iter().flat_map(|g| g.iter()).filter(|c| c.name.contains(filter)) {
        match (case.run)() {
            Ok(()) => {
                passed += 1;
                mxrt::println!("ok   {}", case.name);
            }
            Err(why) => {
                failed += 1;
                mxrt::println!("FAIL {}: {}", case.name, why);
            }
        }
    }
    mxrt::println!("syscalls: {passed} passed, {failed} failed");
    failed
}
