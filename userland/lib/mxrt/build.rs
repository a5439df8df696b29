// Tells the build scripts of programs that depend on mxrt where the userspace
// linker script is (they read it as DEP_MXRT_LDSCRIPT; see mxrt::link docs).
fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let script = std::path::Path::new(&dir).join("../../../sysroot/user.ld");
    let script = script.canonicalize().unwrap_or(script);
    println!("cargo:ldscript={}", script.display());
    println!("cargo:rerun-if-changed=../../../sysroot/user.ld");
}
