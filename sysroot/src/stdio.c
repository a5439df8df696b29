// printf and friends. stdout is line-buffered: each line (without its '\n')
// becomes one mx_debuglog_write record, split at 224 bytes; without a log it
// goes to mx_debug_write with its newline.
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <magenta/syscalls.h>

#include "internal.h"

#define RECORD_MAX 224

static char line[RECORD_MAX];
static size_t line_len;

static void emit(const char* s, size_t n, int newline) {
    if (__libc_log != MX_HANDLE_INVALID && mx_debuglog_write(__libc_log, 0, s, n) == MX_OK) return;
    mx_debug_write(s, (uint32_t)n);
    if (newline) mx_debug_write("\n", 1);
}

static void line_flush(int newline) {
    if (line_len || newline) emit(line, line_len, newline);
    line_len = 0;
}

void __libc_stdout_flush(void) {
    line_flush(0);
}

static void out(const char* s, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\n') {
            line_flush(1);
            continue;
        }
        if (line_len == RECORD_MAX) line_flush(0);
        line[line_len++] = s[i];
    }
}

int fflush(void* stream) {
    (void)stream;
    line_flush(0);
    return 0;
}

int putchar(int c) {
    char ch = (char)c;
    out(&ch, 1);
    return (unsigned char)c;
}

int puts(const char* s) {
    out(s, strlen(s));
    out("\n", 1);
    return 0;
}

// ---------------------------------------------------------------- formatting

struct sink {
    char* buf;
    size_t size;  // capacity including the NUL
    size_t len;   // characters produced (may exceed size)
};

static void put(struct sink* k, char c) {
    if (k->len + 1 < k->size) k->buf[k->len] = c;
    k->len++;
}

static void pad(struct sink* k, char c, int n) {
    while (n-- > 0) put(k, c);
}

// Writes `digits` (already converted, reversed) with sign, prefix and padding.
static void emit_number(struct sink* k, const char* rev, int ndigits, const char* prefix, int width, int prec,
                        int left, int zero) {
    int plen = (int)strlen(prefix);
    int zeros = prec > ndigits ? prec - ndigits : 0;
    int total = plen + zeros + ndigits;
    if (!left && !(zero && prec < 0)) pad(k, ' ', width - total);
    for (int i = 0; i < plen; i++) put(k, prefix[i]);
    if (!left && zero && prec < 0) pad(k, '0', width - total);
    pad(k, '0', zeros);
    while (ndigits--) put(k, rev[ndigits]);
    if (left) pad(k, ' ', width - total);
}

int vsnprintf(char* restrict buf, size_t size, const char* restrict fmt, va_list ap) {
    struct sink k = {buf, size, 0};
    for (const char* p = fmt; *p; p++) {
        if (*p != '%') {
            put(&k, *p);
            continue;
        }
        int left = 0, zero = 0, plus = 0, space = 0, alt = 0, width = 0, prec = -1;
        for (;; p++) {
            if (p[1] == '-') left = 1;
            else if (p[1] == '0') zero = 1;
            else if (p[1] == '+') plus = 1;
            else if (p[1] == ' ') space = 1;
            else if (p[1] == '#') alt = 1;
            else break;
        }
        p++;
        if (*p == '*') {
            width = va_arg(ap, int);
            if (width < 0) left = 1, width = -width;
            p++;
        } else {
            while (*p >= '0' && *p <= '9') width = width * 10 + (*p++ - '0');
        }
        if (*p == '.') {
            p++;
            prec = 0;
            if (*p == '*') {
                prec = va_arg(ap, int);
                p++;
            } else {
                while (*p >= '0' && *p <= '9') prec = prec * 10 + (*p++ - '0');
            }
        }
        int lng = 0;  // 0 int, 1 long, 2 long long / size_t / intmax_t / ptrdiff_t
        for (;; p++) {
            if (*p == 'l') lng++;
            else if (*p == 'z' || *p == 'j' || *p == 't') lng = 2;
            else if (*p != 'h') break;
        }
        if (!*p) break;
        char conv = *p;
        switch (conv) {
        case 'd':
        case 'i': {
            long long v = lng ? va_arg(ap, long long) : va_arg(ap, int);
            unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
            char rev[24];
            int n = 0;
            do rev[n++] = (char)('0' + u % 10); while (u /= 10);
            if (prec == 0 && v == 0) n = 0;
            emit_number(&k, rev, n, v < 0 ? "-" : plus ? "+" : space ? " " : "", width, prec, left, zero);
            break;
        }
        case 'u':
        case 'x':
        case 'X':
        case 'o':
        case 'p': {
            unsigned long long u;
            if (conv == 'p') u = (uintptr_t)va_arg(ap, void*);
            else u = lng ? va_arg(ap, unsigned long long) : va_arg(ap, unsigned);
            unsigned base = conv == 'u' ? 10 : conv == 'o' ? 8 : 16;
            const char* digits = conv == 'X' ? "0123456789ABCDEF" : "0123456789abcdef";
            char rev[24];
            int n = 0;
            int nonzero = u != 0;
            do rev[n++] = digits[u % base]; while (u /= base);
            if (prec == 0 && !nonzero) n = 0;
            const char* prefix = conv == 'p' ? "0x" : (alt && nonzero && base == 16) ? (conv == 'X' ? "0X" : "0x")
                                                    : (alt && base == 8) ? "0" : "";
            emit_number(&k, rev, n, prefix, width, prec, left, zero);
            break;
        }
        case 'c': {
            if (!left) pad(&k, ' ', width - 1);
            put(&k, (char)va_arg(ap, int));
            if (left) pad(&k, ' ', width - 1);
            break;
        }
        case 's': {
            const char* s = va_arg(ap, const char*);
            if (!s) s = "(null)";
            int n = 0;
            while (s[n] && (prec < 0 || n < prec)) n++;
            if (!left) pad(&k, ' ', width - n);
            for (int i = 0; i < n; i++) put(&k, s[i]);
            if (left) pad(&k, ' ', width - n);
            break;
        }
        case '%':
            put(&k, '%');
            break;
        default:  // unknown: print it as written
            put(&k, '%');
            put(&k, conv);
            break;
        }
    }
    if (size) buf[k.len < size ? k.len : size - 1] = '\0';
    return k.len > 0x7fffffff ? 0x7fffffff : (int)k.len;
}

int snprintf(char* restrict buf, size_t size, const char* restrict fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, size, fmt, ap);
    va_end(ap);
    return n;
}

int vprintf(const char* restrict fmt, va_list ap) {
    char small[256];
    va_list copy;
    va_copy(copy, ap);
    int n = vsnprintf(small, sizeof small, fmt, copy);
    va_end(copy);
    if (n < (int)sizeof small) {
        out(small, (size_t)n);
        return n;
    }
    // Too long for the stack buffer: format in pieces of the heap... or cut it.
    extern void* malloc(size_t);
    extern void free(void*);
    char* big = malloc((size_t)n + 1);
    if (!big) {
        out(small, sizeof small - 1);
        return n;
    }
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    out(big, (size_t)n);
    free(big);
    return n;
}

int printf(const char* restrict fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vprintf(fmt, ap);
    va_end(ap);
    return n;
}
