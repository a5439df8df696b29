// hello-c: a trivial C program for magnetar. Prints through the log and exits 0.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <magenta/syscalls.h>

int main(int argc, char** argv) {
    printf("hello from C on magnetar (%d argument%s)\n", argc, argc == 1 ? "" : "s");
    for (int i = 0; i < argc; i++) printf("hello-c: argv[%d] = %s\n", i, argv[i]);
    char* copy = malloc(64);
    if (!copy) {
        puts("hello-c: malloc failed");
        return 1;
    }
    snprintf(copy, 64, "%u CPU(s), %#x", mx_system_get_num_cpus(), 0x2a);
    printf("hello-c: %s\n", copy);
    free(copy);
    return 0;
}
