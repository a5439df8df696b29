// Memory and process exit of magnetar's small libc (sysroot/src/stdlib.c).
#pragma once

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define EXIT_SUCCESS 0
#define EXIT_FAILURE 1

void* malloc(size_t size);
void free(void* p);
void* calloc(size_t n, size_t size);
void* realloc(void* p, size_t size);
_Noreturn void exit(int status);
_Noreturn void abort(void);

#ifdef __cplusplus
}
#endif
