// c-guest: a guest manager written against the C headers alone.
//
// It builds a tiny 64-bit guest in a VMO (identity page tables and a few
// instructions), sets an IO trap on a UART data port and a MEM trap on a
// device page above guest RAM, and runs the VCPU: the guest prints "Hi"
// through the UART, stores to the device register, and powers off through
// another port. The manager prints the guest's console output prefixed
// with "c-guest: " and exits 0 when everything arrived as expected.
//
// It needs the root resource (the +resource grant in init.rc, which
// `make run PROGRAM=` gives) to make a hypervisor resource.
#include <stdio.h>
#include <string.h>

#include <magenta/processargs.h>
#include <magenta/syscalls.h>
#include <magenta/syscalls/hypervisor.h>
#include <magenta/syscalls/port.h>
#include <magenta/syscalls/resource.h>
#include <mxrt.h>

#define GUEST_SIZE (2u << 20)  // 2 MiB of guest RAM
#define PML4 0x1000u
#define PDPT 0x2000u
#define PD 0x3000u
#define ENTRY 0x8000u
#define UART 0x3f8u
#define POWER 0x501u
#define DEVICE 0x200000u  // the first page above RAM

// The guest, hand-assembled (64-bit mode, paging on, CR3 = PML4).
static const uint8_t guest_code[] = {
    0x66, 0xba, 0xf8, 0x03,                    // mov dx, 0x3f8
    0xb0, 'H', 0xee,                           // mov al, 'H'; out dx, al
    0xb0, 'i', 0xee,                           // mov al, 'i'; out dx, al
    0xb0, '\n', 0xee,                          // mov al, '\n'; out dx, al
    0x48, 0xc7, 0xc0, 0x00, 0x00, 0x20, 0x00,  // mov rax, 0x200000
    0xc7, 0x00, 0x78, 0x56, 0x34, 0x12,        // mov dword [rax], 0x12345678
    0x66, 0xba, 0x01, 0x05,                    // mov dx, 0x501
    0xb0, 0x00, 0xee,                          // mov al, 0; out dx, al
    0xf4,                                      // hlt
    0xeb, 0xfd,                                // jmp hlt
};

static mx_status_t write_u64(mx_handle_t vmo, uint64_t offset, uint64_t value) {
    size_t actual;
    return mx_vmo_write(vmo, &value, offset, sizeof(value), &actual);
}

int main(void) {
    mx_handle_t root = mxrt_take_handle(PA_HND(PA_RESOURCE, 0));
    mx_handle_t hv, vmo, guest, apic, vcpu;
    if (mx_resource_create(root, MX_RSRC_KIND_HYPERVISOR, 0, 0, &hv) != MX_OK) {
        puts("c-guest: no hypervisor resource (run with the +resource grant)");
        return 1;
    }
    if (mx_vmo_create(GUEST_SIZE, 0, &vmo) != MX_OK) return 2;
    // Identity map the first 4 MiB with 2 MiB pages: RAM, then the device page.
    write_u64(vmo, PML4, PDPT | 0x3);
    write_u64(vmo, PDPT, PD | 0x3);
    write_u64(vmo, PD, 0x000000 | 0x83);
    write_u64(vmo, PD + 8, 0x200000 | 0x83);
    size_t actual;
    mx_vmo_write(vmo, guest_code, ENTRY, sizeof(guest_code), &actual);

    mx_status_t status = mx_guest_create(hv, 0, vmo, &guest);
    if (status == MX_ERR_NOT_SUPPORTED) {
        puts("c-guest: no SVM with nested paging on this CPU");
        return 3;
    }
    if (status != MX_OK) return 4;
    if (mx_guest_set_trap(guest, MX_GUEST_TRAP_IO, UART, 1, MX_HANDLE_INVALID, 0) != MX_OK) return 5;
    if (mx_guest_set_trap(guest, MX_GUEST_TRAP_IO, POWER, 1, MX_HANDLE_INVALID, 0) != MX_OK) return 6;
    if (mx_guest_set_trap(guest, MX_GUEST_TRAP_MEM, DEVICE, 4096, MX_HANDLE_INVALID, 0) != MX_OK) return 7;
    if (mx_vmo_create(4096, 0, &apic) != MX_OK) return 8;
    mx_vcpu_create_args_t args = {.ip = ENTRY, .cr3 = PML4, .apic_vmo = apic};
    if (mx_vcpu_create(guest, 0, &args, &vcpu) != MX_OK) return 9;

    char line[64];
    size_t len = 0;
    int mem_writes = 0, io_exits = 0;
    for (;;) {
        mx_port_packet_t packet;
        status = mx_vcpu_resume(vcpu, &packet);
        if (status != MX_OK) {
            printf("c-guest: vcpu_resume failed: %d\n", status);
            return 10;
        }
        if (packet.type == MX_PKT_TYPE_GUEST_IO && packet.guest_io.port == UART && !packet.guest_io.input) {
            io_exits++;
            char c = (char)packet.guest_io.u8;
            if (c == '\n' || len == sizeof(line) - 1) {
                line[len] = 0;
                printf("c-guest: %s\n", line);
                len = 0;
            } else {
                line[len++] = c;
            }
        } else if (packet.type == MX_PKT_TYPE_GUEST_IO && packet.guest_io.port == POWER) {
            break;
        } else if (packet.type == MX_PKT_TYPE_GUEST_MEM && packet.guest_mem.addr == DEVICE) {
            mem_writes++;
            printf("c-guest: device write, %u instruction bytes\n", packet.guest_mem.inst_len);
        } else {
            printf("c-guest: unexpected exit, type %u\n", packet.type);
            return 11;
        }
    }
    mx_handle_close(vcpu);
    mx_handle_close(guest);
    mx_handle_close(apic);
    mx_handle_close(vmo);
    mx_handle_close(hv);
    mx_handle_close(root);
    printf("c-guest: guest powered off after %d IO and %d MMIO exits\n", io_exits, mem_writes);
    return (io_exits == 3 && mem_writes == 1) ? 0 : 12;
}
