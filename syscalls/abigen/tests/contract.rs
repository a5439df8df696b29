//! Checks the table against the contract text itself: every prototype of
//! `specs/magenta-abi.md` §3, in order, with its number. The spec lives beside
//! the repository (`../shared/specs/`, or `$MAGNETAR_SPECS`); without it the
//! test says it was skipped.

use std::path::PathBuf;

fn spec() -> Option<String> {
    let dir = std::env::var_os("MAGNETAR_SPECS")
        .map(PathBuf::from)
        .unwrap_or_else(|| abigen::workspace_root().join("../shared/specs"));
    std::fs::read_to_string(dir.join("magenta-abi.md")).ok()
}

/// `| 113 | `proto;` | G |` rows of §3.
fn rows(spec: &str) -> Vec<(String, String)> {
    spec.lines()
        .filter_map(|l| {
            let mut cells = l.split('|').map(str::trim);
            let (_, num, proto) = (cells.next()?, cells.next()?, cells.next()?);
            let proto = proto.strip_prefix('`')?.split('`').next()?;
            (num == "vdso" || num.parse::<u32>().is_ok()).then(|| (num.to_string(), proto.to_string()))
        })
        .collect()
}

/// The calls magnetar adds after the contract's (README "Project choices").
const MAGNETAR_ADDITIONS: [&str; 2] = ["guest_map", "guest_unmap"];

#[test]
fn table_matches_contract_section_3() {
    let Some(spec) = spec() else {
        skip("specs/magenta-abi.md not found (set MAGNETAR_SPECS)");
        return;
    };
    let rows = rows(&spec);
    // The contract's calls come first; magnetar's additions follow them.
    let (contract, additions) = mx_abi::SYSCALLS.split_at(rows.len().min(mx_abi::SYSCALLS.len()));
    assert_eq!(rows.len(), contract.len(), "the contract lists more syscalls than the table");
    let names: Vec<&str> = additions.iter().map(|s| s.name).collect();
    assert_eq!(names, MAGNETAR_ADDITIONS, "calls beyond the contract");
    for (s, (num, proto)) in contract.iter().zip(&rows) {
        let prefix = if s.attrs.internal { "" } else { "mx_" };
        assert_eq!(format!("{};", abigen::c_signature(s, prefix)), *proto, "prototype of {}", s.name);
        let ours = s.num.map_or("vdso".to_string(), |n| n.to_string());
        assert_eq!(ours, *num, "number of {}", s.name);
    }
}

/// Says the test was skipped where `make test`'s summary sees it: straight to
/// the process's stderr, since libtest swallows the output of a passing test.
fn skip(why: &str) {
    use std::io::Write;
    let _ = std::io::stderr().write_all(format!("skipped: {why}\n").as_bytes());
}
