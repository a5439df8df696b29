//! The C sysroot: a program including <magenta/syscalls.h> links statically
//! against crt1.o, libc.a and libmagenta.a with no undefined symbols, and no
//! `syscall` instruction ends up in it (every call goes through the vDSO).

use object::{Object, ObjectSegment, ObjectSymbol};
use userland_tests::*;

#[test]
fn c_programs_link_statically_without_syscalls() {
    let Some(cc) = cc() else {
        skip("no C compiler (gcc); the C sysroot was not built");
        return;
    };
    let dir = scratch("csysroot");
    let lib = dir.join("lib");
    build_sysroot(&lib).unwrap();
    let probe = dir.join("probe.c");
    std::fs::write(
        &probe,
        r#"
#include <magenta/syscalls.h>
#include <magenta/processargs.h>
#include <mxrt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char** argv) {
    mx_handle_t a, b;
    if (mx_channel_create(0, &a, &b) != MX_OK) return 1;
    mx_channel_call_args_t args = {0};
    uint32_t nb, nh;
    mx_status_t rs;
    mx_channel_call(a, 0, mx_deadline_after(MX_MSEC(10)), &args, &nb, &nh, &rs);
    uint32_t bytes = 0, handles = 0;
    mx_channel_read(b, 0, NULL, NULL, 0, 0, &bytes, &handles);
    char buf[32];
    snprintf(buf, sizeof buf, "%s %d %x", argc ? argv[0] : "-", -5, 255u);
    char* p = realloc(calloc(4, 8), 100);
    free(p);
    printf("%s %lu %p\n", buf, (unsigned long)strlen(buf), (void*)p);
    return strcmp(buf, "x") == 0 ? 2 : (int)mxrt_take_handle(PA_HND(PA_USER0, 0));
}
"#,
    )
    .unwrap();
    for (name, src) in [("probe.elf", probe), ("hello-c.elf", root().join("userland/hello-c/hello.c"))] {
        let out = dir.join(name);
        link_c(&cc, &lib, &[src], &out).unwrap();
        let bytes = std::fs::read(&out).unwrap();
        let file = object::File::parse(&*bytes).unwrap();
        assert_eq!(file.kind(), object::ObjectKind::Executable, "{name} is a static executable");
        let undefined: Vec<_> =
            file.symbols().filter(|s| s.is_undefined() && !s.name().unwrap_or("").is_empty()).collect();
        assert!(undefined.is_empty(), "{name} has undefined symbols: {undefined:?}");
        assert!(file.dynamic_symbols().next().is_none(), "{name} has no dynamic symbols");
        let start = file.symbols().find(|s| s.name() == Ok("_start")).unwrap();
        assert_eq!(file.entry(), start.address());
        assert!(file.segments().all(|s| s.address() >= 0x100_0000), "{name} is linked at 16 MiB or above");
        assert_eq!(count_syscalls(&out).unwrap(), 0, "{name} contains a syscall instruction");
        // It plans like any program the loader takes.
        let plan = mx::elf::plan(&bytes).unwrap();
        assert_eq!(plan.entry, file.entry());
    }
}
