//! Find a Limine binary release and build a hybrid BIOS+UEFI boot ISO with it.
//!
//! Limine is not vendored and never downloaded: it is found through `LIMINE_DIR`, then the
//! usual distribution paths. Without one, callers fall back to QEMU's PVH boot.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

/// Files the ISO needs from the Limine release.
pub const REQUIRED_FILES: [&str; 4] = ["limine-bios-cd.bin", "limine-uefi-cd.bin", "limine-bios.sys", "BOOTX64.EFI"];

/// Distribution paths searched when `LIMINE_DIR` is not set.
pub const SEARCH_PATHS: [&str; 2] = ["/usr/share/limine", "/usr/local/share/limine"];

/// Hint printed whenever Limine is missing.
pub const MISSING_HINT: &str = "no Limine install (set LIMINE_DIR)";

/// Find the Limine binary directory.
///
/// `Ok(None)` when none is installed. An explicitly set `LIMINE_DIR` that lacks the required
/// files is an error rather than a silent fallback.
pub fn find() -> Result<Option<PathBuf>> {
    if let Some(dir) = env::var_os("LIMINE_DIR").filter(|d| !d.is_empty()) {
        let dir = PathBuf::from(dir);
        let missing = missing_files(&dir);
        if !missing.is_empty() {
            bail!("LIMINE_DIR={} is not a Limine binary release: missing {}", dir.display(), missing.join(", "));
        }
        return Ok(Some(dir));
    }
    Ok(SEARCH_PATHS.iter().map(PathBuf::from).find(|dir| missing_files(dir).is_empty()))
}

fn missing_files(dir: &Path) -> Vec<&'static str> {
    REQUIRED_FILES.iter().copied().filter(|f| !dir.join(f).is_file()).collect()
}

/// The `limine` host executable (for `bios-install`), in the Limine directory or on `PATH`.
pub fn host_tool(limine_dir: &Path) -> Option<PathBuf> {
    let local = limine_dir.join("limine");
    if local.is_file() {
        return Some(local);
    }
    env::var_os("PATH")?.to_str()?.split(':').map(|p| Path::new(p).join("limine")).find(|p| p.is_file())
}

/// What goes on the ISO.
#[derive(Debug, Clone)]
pub struct IsoSpec<'a> {
    /// The (ksyms-patched) kernel ELF.
    pub kernel: &'a Path,
    /// Optional boot module (later: the boot filesystem image).
    pub module: Option<&'a Path>,
    /// Kernel command line.
    pub cmdline: &'a str,
    /// Where to write the ISO.
    pub output: &'a Path,
}

/// The generated `limine.conf` (Limine 8 syntax).
///
/// `serial: yes` puts Limine's own errors in the serial log, where the runner shows them. The
/// kernel is named twice: Limine 8.x reads `kernel_path`, later releases call it `path`; each
/// ignores the key it does not know.
pub fn config(cmdline: &str, with_module: bool) -> String {
    let mut conf = String::from("timeout: 0\nserial: yes\n\n/magnetar\n    protocol: limine\n");
    conf.push_str("    kernel_path: boot():/boot/kernel.elf\n");
    conf.push_str("    path: boot():/boot/kernel.elf\n");
    if !cmdline.is_empty() {
        conf.push_str(&format!("    cmdline: {cmdline}\n"));
    }
    if with_module {
        conf.push_str("    module_path: boot():/boot/bootfs\n");
    }
    conf
}

/// Build a hybrid BIOS+UEFI ISO with xorriso. Returns notes worth telling the user.
pub fn build_iso(limine_dir: &Path, spec: &IsoSpec<'_>) -> Result<Vec<String>> {
    let mut notes = Vec::new();
    let root = spec.output.with_extension("root");
    if root.exists() {
        fs::remove_dir_all(&root).with_context(|| format!("removing {}", root.display()))?;
    }
    let limine_sub = root.join("boot/limine");
    let efi_sub = root.join("EFI/BOOT");
    for dir in [&limine_sub, &efi_sub] {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    copy(spec.kernel, &root.join("boot/kernel.elf"))?;
    if let Some(module) = spec.module {
        copy(module, &root.join("boot/bootfs"))?;
    }
    for file in ["limine-bios-cd.bin", "limine-uefi-cd.bin", "limine-bios.sys"] {
        copy(&limine_dir.join(file), &limine_sub.join(file))?;
    }
    copy(&limine_dir.join("BOOTX64.EFI"), &efi_sub.join("BOOTX64.EFI"))?;
    let conf = limine_sub.join("limine.conf");
    fs::write(&conf, config(spec.cmdline, spec.module.is_some()))
        .with_context(|| format!("writing {}", conf.display()))?;

    let mut xorriso = Command::new("xorriso");
    xorriso
        .args(["-as", "mkisofs", "-R", "-r", "-J"])
        .args(["-b", "boot/limine/limine-bios-cd.bin"])
        .args(["-no-emul-boot", "-boot-load-size", "4", "-boot-info-table"])
        .args(["-hfsplus", "-apm-block-size", "2048"])
        .args(["--efi-boot", "boot/limine/limine-uefi-cd.bin"])
        .args(["-efi-boot-part", "--efi-boot-image", "--protective-msdos-label"])
        .arg(&root)
        .arg("-o")
        .arg(spec.output);
    run_quiet(&mut xorriso, "xorriso (install it: apt-get install -y xorriso)")?;

    match host_tool(limine_dir) {
        Some(tool) => {
            let mut install = Command::new(&tool);
            install.arg("bios-install").arg(spec.output);
            run_quiet(&mut install, &tool.display().to_string())?;
        }
        None => notes.push(
            "no `limine` host executable found: skipped `limine bios-install` (CD boot does not need it)".to_string(),
        ),
    }
    fs::remove_dir_all(&root).with_context(|| format!("removing {}", root.display()))?;
    Ok(notes)
}

fn copy(from: &Path, to: &Path) -> Result<()> {
    fs::copy(from, to).with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
    Ok(())
}

/// Run a command, showing its output only if it fails.
fn run_quiet(cmd: &mut Command, what: &str) -> Result<()> {
    let out = cmd.output().with_context(|| format!("running {what}"))?;
    if !out.status.success() {
        bail!(
            "{what} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_is_limine8_syntax() {
        let conf = config("test=boot loglevel=debug", true);
        assert_eq!(
            conf,
            "timeout: 0\nserial: yes\n\n/magnetar\n    protocol: limine\n    \
             kernel_path: boot():/boot/kernel.elf\n    path: boot():/boot/kernel.elf\n    \
             cmdline: test=boot loglevel=debug\n    module_path: boot():/boot/bootfs\n"
        );
    }

    #[test]
    fn config_without_module_or_cmdline() {
        let conf = config("", false);
        assert!(!conf.contains("module_path"));
        assert!(!conf.contains("cmdline"));
    }
}
