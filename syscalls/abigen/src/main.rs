//! `abigen [--write | --check]`: regenerates (or checks) every file derived
//! from the mx-abi crate. See the library docs for the list.

use std::process::ExitCode;

fn main() -> ExitCode {
    let root = abigen::workspace_root();
    match std::env::args().nth(1).as_deref() {
        Some("--write") => match abigen::write_all(&root) {
            Ok(changed) if changed.is_empty() => {
                println!("abigen: all generated files are up to date");
                ExitCode::SUCCESS
            }
            Ok(changed) => {
                for path in changed {
                    println!("abigen: wrote {path}");
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("abigen: {e}");
                ExitCode::FAILURE
            }
        },
        None | Some("--check") => {
            let stale = abigen::stale(&root);
            for path in &stale {
                eprintln!("abigen: stale: {path}");
            }
            if stale.is_empty() {
                println!("abigen: all generated files are up to date");
                ExitCode::SUCCESS
            } else {
                eprintln!("abigen: run `{}`", abigen::REFRESH);
                ExitCode::FAILURE
            }
        }
        Some(other) => {
            eprintln!("usage: abigen [--write | --check]   (unknown argument `{other}`)");
            ExitCode::from(2)
        }
    }
}
