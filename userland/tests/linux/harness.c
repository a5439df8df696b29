// Runs a magnetar program on Linux, for host tests of the userspace runtimes.
//
//   harness VDSO.so PROGRAM.elf [ARGV0 ARG...]   (the strings become its argv)
//
// Maps the program's PT_LOADs at their link addresses and the real vDSO at
// some base, then starts the program as the kernel would (rdi = bootstrap
// channel, rsi = vDSO base). A seccomp filter makes every `syscall` executed
// inside the vDSO's code trap (SIGSYS); the handler plays the kernel for the
// calls a program's startup and output need, with the vDSO's register
// convention (eax = number; rdi, rsi, rdx, r10, r8, r9, r12, r13). It checks
// that each trapping syscall returns to an instruction right after a
// `syscall` in the vDSO. A `syscall` anywhere else is a real Linux call and
// would not trap: the runtimes must not have any (the tests check that too).
// mx_debuglog_write prints "log: <record>" on stdout; mx_process_exit exits
// the harness with the code.
#define _GNU_SOURCE
#include <elf.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <ucontext.h>
#include <unistd.h>

enum { OBJ_FREE, OBJ_CHANNEL, OBJ_VMAR, OBJ_VMO, OBJ_LOG };
struct object { int type; int fd; };
#define MAX_HANDLES 64
static struct object table[MAX_HANDLES];
static uint8_t boot_msg[512];
static uint32_t boot_len, boot_handles[4], boot_nhandles;
static int boot_read;
static uintptr_t vdso_lo, vdso_hi;

static uint32_t new_handle(int type, int fd) {
    for (uint32_t i = 1; i < MAX_HANDLES; i++) {
        if (table[i].type == OBJ_FREE) {
            table[i] = (struct object){type, fd};
            return 2 * i + 1;
        }
    }
    return 0;
}

static struct object* get(uint64_t h) {
    uint64_t i = (h - 1) / 2;
    if (!(h & 1) || i == 0 || i >= MAX_HANDLES || table[i].type == OBJ_FREE) return NULL;
    return &table[i];
}

static void die(const char* what) {
    dprintf(2, "harness: %s\n", what);
    _exit(125);
}

static int64_t mx_call(uint32_t nr, uint64_t a[8]) {
    struct object* o;
    switch (nr) {
    case 0:  // time_get
        return 1000;
    case 3:  // handle_close
        if (!a[0]) return 0;
        if (!(o = get(a[0]))) return -11;
        if (o->fd >= 0) close(o->fd);
        o->type = OBJ_FREE;
        return 0;
    case 4: {  // handle_duplicate
        if (!(o = get(a[0]))) return -11;
        uint32_t h = new_handle(o->type, o->fd >= 0 ? dup(o->fd) : -1);
        *(uint32_t*)a[2] = h;
        return h ? 0 : -4;
    }
    case 6:  // object_wait_one: everything is ready
        if (a[3]) *(uint32_t*)a[3] = 0x5;
        return 0;
    case 18: {  // channel_read(handle, options, bytes, handles, nb, nh, *actual_bytes, *actual_handles)
        if (!(o = get(a[0])) || o->type != OBJ_CHANNEL) return -11;
        if (boot_read) return -24;  // PEER_CLOSED
        if (a[6]) *(uint32_t*)a[6] = boot_len;
        if (a[7]) *(uint32_t*)a[7] = boot_nhandles;
        if (a[4] < boot_len || a[5] < boot_nhandles) return -15;
        memcpy((void*)a[2], boot_msg, boot_len);
        memcpy((void*)a[3], boot_handles, 4 * boot_nhandles);
        boot_read = 1;
        return 0;
    }
    case 31:  // process_exit
        fflush(stdout);
        _exit((int)a[0]);
    case 54: {  // vmo_create(size, options, *out)
        int fd = memfd_create("vmo", 0);
        if (fd < 0 || ftruncate(fd, (off_t)a[0]) != 0) return -4;
        *(uint32_t*)a[2] = new_handle(OBJ_VMO, fd);
        return 0;
    }
    case 64: {  // vmar_map(vmar, offset, vmo, vmo_offset, len, flags, *addr)
        if (!get(a[0]) || !(o = get(a[2])) || o->type != OBJ_VMO) return -11;
        int prot = (a[5] & 1 ? PROT_READ : 0) | (a[5] & 2 ? PROT_WRITE : 0) | (a[5] & 4 ? PROT_EXEC : 0);
        void* p = mmap(NULL, a[4], prot, MAP_SHARED, o->fd, (off_t)a[3]);
        if (p == MAP_FAILED) return -4;
        *(uintptr_t*)a[6] = (uintptr_t)p;
        return 0;
    }
    case 65:  // vmar_unmap
        return munmap((void*)a[1], a[2]) == 0 ? 0 : -10;
    case 72:  // log_create(options, *out)
        *(uint32_t*)a[1] = new_handle(OBJ_LOG, -1);
        return 0;
    case 75:  // debuglog_create(resource, options, *out)
        *(uint32_t*)a[2] = new_handle(OBJ_LOG, -1);
        return 0;
    case 76:  // debuglog_write(handle, options, buffer, len)
        if (!(o = get(a[0])) || o->type != OBJ_LOG) return -11;
        if (a[3] > 224) return -14;
        printf("log: %.*s\n", (int)a[3], (const char*)a[2]);
        return 0;
    case 83:  // debug_write(buffer, len)
        printf("%.*s", (int)a[1], (const char*)a[0]);
        return (int64_t)a[1];
    default:
        return -2;  // NOT_SUPPORTED
    }
}

static void on_sigsys(int sig, siginfo_t* info, void* ctx) {
    (void)sig;
    greg_t* r = ((ucontext_t*)ctx)->uc_mcontext.gregs;
    uintptr_t rip = (uintptr_t)r[REG_RIP];
    if (rip < vdso_lo + 2 || rip > vdso_hi || memcmp((void*)(rip - 2), "\x0f\x05", 2) != 0)
        die("a trapped syscall does not return into the vDSO after a syscall instruction");
    uint64_t a[8] = {r[REG_RDI], r[REG_RSI], r[REG_RDX], r[REG_R10], r[REG_R8], r[REG_R9], r[REG_R12], r[REG_R13]};
    r[REG_RAX] = mx_call((uint32_t)info->si_syscall, a);
    // The kernel zeroes these on return (contract 2.2); so do we, to catch a vDSO relying on them.
    r[REG_RDI] = r[REG_RSI] = r[REG_R8] = r[REG_R9] = r[REG_R10] = r[REG_RDX] = 0;
}

static uint8_t* slurp(const char* path, size_t* len) {
    int fd = open(path, O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) die("cannot open an input file");
    uint8_t* p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) die("cannot map an input file");
    *len = (size_t)st.st_size;
    return p;
}

static int prot_of(uint32_t f) {
    return (f & PF_R ? PROT_READ : 0) | (f & PF_W ? PROT_WRITE : 0) | (f & PF_X ? PROT_EXEC : 0);
}

int main(int argc, char** argv) {
    if (argc < 3) die("usage: harness VDSO.so PROGRAM.elf [ARG...]");
    size_t vlen, plen;
    uint8_t* vdso = slurp(argv[1], &vlen);
    uint8_t* prog = slurp(argv[2], &plen);

    // The vDSO: reserve its span, map each PT_LOAD from the file with its permissions.
    Elf64_Ehdr* ve = (Elf64_Ehdr*)vdso;
    Elf64_Phdr* vp = (Elf64_Phdr*)(vdso + ve->e_phoff);
    size_t span = 0;
    for (int i = 0; i < ve->e_phnum; i++)
        if (vp[i].p_type == PT_LOAD && vp[i].p_vaddr + vp[i].p_memsz > span) span = vp[i].p_vaddr + vp[i].p_memsz;
    span = (span + 4095) & ~(size_t)4095;
    int vfd = open(argv[1], O_RDONLY);
    uint8_t* base = mmap(NULL, span, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (base == MAP_FAILED || vfd < 0) die("cannot reserve the vDSO");
    for (int i = 0; i < ve->e_phnum; i++) {
        if (vp[i].p_type != PT_LOAD) continue;
        size_t len = (vp[i].p_memsz + 4095) & ~(size_t)4095;
        if (mmap(base + vp[i].p_vaddr, len, prot_of(vp[i].p_flags), MAP_PRIVATE | MAP_FIXED, vfd,
                 (off_t)vp[i].p_offset) == MAP_FAILED)
            die("cannot map the vDSO");
        if (vp[i].p_flags & PF_X) vdso_lo = (uintptr_t)base + vp[i].p_vaddr, vdso_hi = vdso_lo + len;
    }
    if ((vdso_lo >> 32) != ((vdso_hi - 1) >> 32)) die("the vDSO straddles a 4 GiB boundary; run again");

    // The program: each PT_LOAD at its address, file bytes copied, then its permissions.
    Elf64_Ehdr* pe = (Elf64_Ehdr*)prog;
    Elf64_Phdr* pp = (Elf64_Phdr*)(prog + pe->e_phoff);
    for (int i = 0; i < pe->e_phnum; i++) {
        if (pp[i].p_type != PT_LOAD || !pp[i].p_memsz) continue;
        uintptr_t lo = pp[i].p_vaddr & ~(uintptr_t)4095;
        size_t len = ((pp[i].p_vaddr + pp[i].p_memsz + 4095) & ~(uintptr_t)4095) - lo;
        if (mmap((void*)lo, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0) ==
            MAP_FAILED)
            die("cannot map the program at its link address");
        memcpy((void*)pp[i].p_vaddr, prog + pp[i].p_offset, pp[i].p_filesz);
        mprotect((void*)lo, len, prot_of(pp[i].p_flags));
    }
    size_t stack_len = 256 * 1024;
    uint8_t* stack = mmap(NULL, stack_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (stack == MAP_FAILED) die("no stack");

    // The bootstrap message: processargs with the root VMAR and the arguments.
    uint32_t channel = new_handle(OBJ_CHANNEL, -1);
    boot_handles[0] = new_handle(OBJ_VMAR, -1);
    boot_nhandles = 1;
    uint32_t hdr[9] = {0x4150585d, 0x1000, 36, 40, (uint32_t)(argc - 3), 0, 0, 0, 0};
    memcpy(boot_msg + 36, &(uint32_t){0x4}, 4);  // PA_HND(PA_VMAR_ROOT, 0)
    boot_len = 40;
    for (int i = 3; i < argc; i++) {
        size_t n = strlen(argv[i]) + 1;
        if (boot_len + n > sizeof boot_msg) die("arguments too long");
        memcpy(boot_msg + boot_len, argv[i], n);
        boot_len += (uint32_t)n;
    }
    hdr[5] = boot_len;
    memcpy(boot_msg, hdr, sizeof hdr);

    // Trap syscalls from the vDSO's code; allow everything else.
    struct sigaction sa = {0};
    sa.sa_sigaction = on_sigsys;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGSYS, &sa, NULL);
    uint32_t hi = (uint32_t)(vdso_lo >> 32), lo = (uint32_t)vdso_lo, end = (uint32_t)(vdso_hi - 1);
    struct sock_filter filter[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, instruction_pointer) + 4),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, hi, 0, 4),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, instruction_pointer)),
        BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, lo, 0, 2),
        BPF_JUMP(BPF_JMP | BPF_JGT | BPF_K, end, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_TRAP),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog fprog = {sizeof filter / sizeof filter[0], filter};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &fprog) != 0) {
        printf("skipped: seccomp filters are not available here\n");
        return 124;
    }
    fflush(stdout);
    // Enter as the kernel would; a misaligned stack (sp = top - 8) like the loader's.
    uintptr_t sp = (uintptr_t)(stack + stack_len) - 8;
    __asm__ volatile("mov %0, %%rsp\n xor %%ebp, %%ebp\n jmp *%3"
                     :
                     : "r"(sp), "D"((uint64_t)channel), "S"((uint64_t)base), "r"(pe->e_entry)
                     : "memory");
    __builtin_unreachable();
}
