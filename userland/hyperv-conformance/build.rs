// Link as a magnetar userspace program: static, at the address in sysroot/user.ld.
fn main() {
    let script = std::env::var("DEP_MXRT_LDSCRIPT").expect("mxrt gives the linker script");
    println!("cargo:rustc-link-arg-bins=-T{script}");
    println!("cargo:rustc-link-arg-bins=-zmax-page-size=0x1000");
    println!("cargo:rustc-link-arg-bins=--no-pie");
}
