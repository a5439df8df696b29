// Link as a magnetar userspace program: static, at the address in sysroot/user.ld.
// On the host (the library's tests) the binary is an empty placeholder.
fn main() {
    if std::env::var("TARGET").as_deref() != Ok("x86_64-unknown-none") {
        return;
    }
    let script = std::env::var("DEP_MXRT_LDSCRIPT").expect("mxrt gives the linker script");
    println!("cargo:rustc-link-arg-bins=-T{script}");
    println!("cargo:rustc-link-arg-bins=-zmax-page-size=0x1000");
    println!("cargo:rustc-link-arg-bins=--no-pie");
}
