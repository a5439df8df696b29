// Shared between the C runtime's files; not installed.
#pragma once

#include <magenta/types.h>

// crt1.c: the log stdout writes to (MX_HANDLE_INVALID: mx_debug_write).
extern mx_handle_t __libc_log;
// stdlib.c: starts the heap on the root VMAR.
void __libc_heap_init(mx_handle_t vmar);
// stdio.c: writes out a partial stdout line.
void __libc_stdout_flush(void);
