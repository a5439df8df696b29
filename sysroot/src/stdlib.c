// malloc and exit. The heap: blocks up to 4 KiB from power-of-two classes
// (a free list each, refilled from 256 KiB chunks); larger ones get their own
// mapping. Every block has a 16-byte header holding its class or mapping
// length. Memory is a VMO mapped R+W in the root VMAR.
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <magenta/syscalls.h>

#include "internal.h"

#define PAGE 4096u
#define HEADER 16u
#define MIN_SHIFT 5   // 32-byte blocks (16 usable)
#define CLASSES 8     // 32 .. 4096
#define CHUNK (256u * 1024u)

static mx_handle_t heap_vmar;
static void* free_list[CLASSES];
static uintptr_t chunk_next, chunk_end;

void __libc_heap_init(mx_handle_t vmar) {
    heap_vmar = vmar;
}

static uintptr_t map(size_t len) {
    mx_handle_t vmo;
    uintptr_t addr = 0;
    if (heap_vmar == MX_HANDLE_INVALID || mx_vmo_create(len, 0, &vmo) != MX_OK) return 0;
    mx_status_t st = mx_vmar_map(heap_vmar, 0, vmo, 0, len, MX_VM_FLAG_PERM_READ | MX_VM_FLAG_PERM_WRITE, &addr);
    mx_handle_close(vmo);
    return st == MX_OK ? addr : 0;
}

void* malloc(size_t size) {
    if (size > SIZE_MAX - PAGE - HEADER) return NULL;
    size_t need = size + HEADER;
    if (need > (1u << (MIN_SHIFT + CLASSES - 1))) {
        size_t len = (need + PAGE - 1) & ~(size_t)(PAGE - 1);
        uintptr_t a = map(len);
        if (!a) return NULL;
        *(size_t*)a = len;
        return (void*)(a + HEADER);
    }
    unsigned c = 0;
    while ((1u << (MIN_SHIFT + c)) < need) c++;
    size_t bsize = (size_t)1 << (MIN_SHIFT + c);
    void* b = free_list[c];
    if (b) {
        free_list[c] = *(void**)b;
    } else {
        uintptr_t at = (chunk_next + bsize - 1) & ~(uintptr_t)(bsize - 1);
        if (!chunk_next || at + bsize > chunk_end) {
            uintptr_t chunk = map(CHUNK);
            if (!chunk) return NULL;
            chunk_next = chunk;
            chunk_end = chunk + CHUNK;
            at = chunk;
        }
        chunk_next = at + bsize;
        b = (void*)at;
    }
    *(size_t*)b = c;  // a class number: always < PAGE, unlike a mapping length
    return (char*)b + HEADER;
}

void free(void* p) {
    if (!p) return;
    char* b = (char*)p - HEADER;
    size_t tag = *(size_t*)b;
    if (tag >= PAGE) {
        mx_vmar_unmap(heap_vmar, (uintptr_t)b, tag);
        return;
    }
    *(void**)b = free_list[tag];
    free_list[tag] = b;
}

static size_t usable(void* p) {
    size_t tag = *(size_t*)((char*)p - HEADER);
    return (tag >= PAGE ? tag : (size_t)1 << (MIN_SHIFT + tag)) - HEADER;
}

void* calloc(size_t n, size_t size) {
    if (size && n > SIZE_MAX / size) return NULL;
    void* p = malloc(n * size);
    if (p) memset(p, 0, n * size);
    return p;
}

void* realloc(void* p, size_t size) {
    if (!p) return malloc(size);
    if (!size) {
        free(p);
        return NULL;
    }
    size_t have = usable(p);
    if (size <= have) return p;
    void* q = malloc(size);
    if (q) {
        memcpy(q, p, have);
        free(p);
    }
    return q;
}

_Noreturn void exit(int status) {
    __libc_stdout_flush();
    mx_process_exit(status);
}

_Noreturn void abort(void) {
    __libc_stdout_flush();
    mx_process_exit(-1);
}
