// Formatted output of magnetar's small libc (sysroot/src/stdio.c). stdout is
// line-buffered onto the process log: one debuglog record per line.
#pragma once

#include <stdarg.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define EOF (-1)

int printf(const char* restrict fmt, ...) __attribute__((format(printf, 1, 2)));
int vprintf(const char* restrict fmt, va_list ap);
int snprintf(char* restrict buf, size_t size, const char* restrict fmt, ...) __attribute__((format(printf, 3, 4)));
int vsnprintf(char* restrict buf, size_t size, const char* restrict fmt, va_list ap);
int puts(const char* s);
int putchar(int c);
int fflush(void* stream);

#ifdef __cplusplus
}
#endif
