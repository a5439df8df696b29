//! Golden tests: the checked-in generated files match the table, and the C
//! headers compile with the layouts the Rust crate asserts.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Fails when a checked-in generated file differs from what abigen produces.
#[test]
fn generated_files_are_up_to_date() {
    let stale = abigen::stale(&abigen::workspace_root());
    assert!(
        stale.is_empty(),
        "these generated files are stale:\n  {}\nrefresh them with `{}` and commit the result",
        stale.join("\n  "),
        abigen::REFRESH
    );
}

/// A C compiler: `$CC`, else `cc`, `gcc` or `clang`, whichever runs.
fn compiler(env: &str, candidates: &[&str]) -> Option<String> {
    std::env::var(env)
        .ok()
        .into_iter()
        .chain(candidates.iter().map(|c| c.to_string()))
        .find(|c| Command::new(c).arg("--version").output().is_ok_and(|o| o.status.success()))
}

/// Writes the in-memory headers and abi_check.c to a scratch sysroot.
fn scratch_sysroot(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    for o in abigen::generate() {
        let rel = o.path.strip_prefix("sysroot/").unwrap_or(&o.path);
        let path = dir.join(rel);
        std::fs::create_dir_all(path.parent().expect("a file path")).expect("create the scratch sysroot");
        std::fs::write(path, o.contents).expect("write a scratch header");
    }
    dir
}

fn compile(cc: &str, args: &[&str], dir: &Path, file: &str) {
    let out = Command::new(cc)
        .args(args)
        .arg("-fsyntax-only")
        .arg("-I")
        .arg(dir.join("include"))
        .arg(dir.join(file))
        .output()
        .expect("run the compiler");
    assert!(
        out.status.success(),
        "`{cc} {}` rejected the generated headers:\n{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every header compiles as C99 with `-Wall -Werror` (and as pedantic C11),
/// and the sizes, offsets and constant values match the Rust declarations.
#[test]
fn c_headers_compile_with_rust_layouts() {
    let Some(cc) = compiler("CC", &["cc", "gcc", "clang"]) else {
        skip("no C compiler found (set CC); the C header check did not run");
        return;
    };
    let dir = scratch_sysroot("abigen-c");
    compile(&cc, &["-std=c99", "-Wall", "-Werror"], &dir, "syscalls/generated/abi_check.c");
    compile(&cc, &["-std=c11", "-Wall", "-Wextra", "-pedantic", "-Werror"], &dir, "syscalls/generated/abi_check.c");
}

/// Every header is also usable from C++.
#[test]
fn c_headers_compile_as_cpp() {
    let Some(cxx) = compiler("CXX", &["c++", "g++", "clang++"]) else {
        skip("no C++ compiler found (set CXX); the C++ header check did not run");
        return;
    };
    let dir = scratch_sysroot("abigen-cpp");
    let mut src = String::new();
    for h in mx_abi::headers::HEADERS {
        src.push_str(&format!("#include <{}>\n", h.path));
    }
    src.push_str("static_assert(sizeof(mx_port_packet_t) == 48, \"packet\");\n");
    std::fs::write(dir.join("check.cc"), src).unwrap();
    compile(&cxx, &["-std=c++11", "-Wall", "-Werror"], &dir, "check.cc");
}

/// Says the test was skipped where `make test`'s summary sees it: straight to
/// the process's stderr, since libtest swallows the output of a passing test.
fn skip(why: &str) {
    use std::io::Write;
    let _ = std::io::stderr().write_all(format!("skipped: {why}\n").as_bytes());
}
