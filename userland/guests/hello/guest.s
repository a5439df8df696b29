# A small 64-bit guest for magnetar's guest-manager (userland/guest-manager).
#
# The manager loads this flat binary at guest-physical 0x10000 and starts the
# VCPU there in 64-bit mode (decision 9) with identity page tables at 0x1000
# and RSP = 0x9000. The guest
#   1. prints through a 16550 UART at I/O port 0x3f8 (polls LSR at 0x3fd
#      with IN, writes THR with OUT),
#   2. reads the ID register of an MMIO device at 0x10000000 (a trapped page
#      above RAM), writes a value to its scratch register and reads it back,
#   3. installs an IDT, asks the device for interrupt 0x40 (MMIO write to
#      the IRQ register), enables interrupts and halts until its handler ran,
#   4. powers off by writing its exit code to the power port 0x604.
#
# Assemble: as --64 -o guest.o guest.s; ld -Ttext=0x10000 -e _start --oformat binary -o guest.bin guest.o

        .equ UART_THR,  0x3f8
        .equ UART_LSR,  0x3fd
        .equ LSR_THRE,  0x20
        .equ POWER,     0x604
        .equ MMIO,      0x10000000
        .equ MMIO_ID,   0x0
        .equ MMIO_SCRATCH, 0x4
        .equ MMIO_IRQ,  0x8
        .equ DEVICE_ID, 0x4d41474e        # "NGAM" little-endian: 'N' 'G' 'A' 'M'
        .equ VECTOR,    0x40
        .equ IDT,       0x4000            # 256 gates of 16 bytes

        .text
        .code64
        .globl _start
_start:
        mov     $0x9000, %rsp
        lgdt    gdtr(%rip)
        lea     msg_hello(%rip), %rsi
        call    puts

        # The MMIO device: check its ID, write and read back the scratch register.
        mov     $MMIO, %rdi
        mov     MMIO_ID(%rdi), %eax
        cmp     $DEVICE_ID, %eax
        jne     fail
        movl    $0x1234abcd, MMIO_SCRATCH(%rdi)
        mov     MMIO_SCRATCH(%rdi), %ecx
        cmp     $0x1234abcd, %ecx
        jne     fail
        lea     msg_mmio(%rip), %rsi
        call    puts

        # The interrupt: an interrupt gate for VECTOR, then ask the device for it.
        lea     irq_handler(%rip), %rax
        mov     $IDT + VECTOR * 16, %rdi
        mov     %ax, (%rdi)                 # offset 15:0
        movw    $0x08, 2(%rdi)              # code selector
        movw    $0x8e00, 4(%rdi)            # present, DPL 0, 64-bit interrupt gate
        shr     $16, %rax
        mov     %ax, 6(%rdi)                # offset 31:16
        shr     $16, %rax
        mov     %eax, 8(%rdi)               # offset 63:32
        movl    $0, 12(%rdi)
        lidt    idtr(%rip)
        mov     $MMIO, %rdi
        movl    $VECTOR, MMIO_IRQ(%rdi)
1:      sti
        hlt
        cli
        cmpb    $0, irq_seen(%rip)
        je      1b

        lea     msg_bye(%rip), %rsi
        call    puts
        xor     %eax, %eax
        jmp     power_off

fail:
        lea     msg_fail(%rip), %rsi
        call    puts
        mov     $1, %eax
power_off:
        mov     $POWER, %dx
        out     %al, %dx
        # The manager stops here; never come back.
2:      cli
        hlt
        jmp     2b

# Prints the NUL-terminated string at %rsi through the UART.
puts:
        push    %rax
        push    %rdx
3:      lodsb
        test    %al, %al
        jz      5f
        mov     %al, %ah
        mov     $UART_LSR, %dx
4:      in      %dx, %al
        test    $LSR_THRE, %al
        jz      4b
        mov     %ah, %al
        mov     $UART_THR, %dx
        out     %al, %dx
        jmp     3b
5:      pop     %rdx
        pop     %rax
        ret

irq_handler:
        push    %rsi
        lea     msg_irq(%rip), %rsi
        call    puts
        movb    $1, irq_seen(%rip)
        pop     %rsi
        iretq

        .balign 8
gdt:
        .quad   0
        .quad   0x00af9a000000ffff          # 0x08: 64-bit code
        .quad   0x00cf92000000ffff          # 0x10: data
gdt_end:
gdtr:
        .word   gdt_end - gdt - 1
        .quad   gdt
idtr:
        .word   256 * 16 - 1
        .quad   IDT
irq_seen:
        .byte   0

msg_hello:
        .asciz  "hello from a 64-bit guest on magnetar\n"
msg_mmio:
        .asciz  "mmio device id ok, scratch register read back\n"
msg_irq:
        .asciz  "interrupt 0x40 taken\n"
msg_bye:
        .asciz  "powering off\n"
msg_fail:
        .asciz  "device check failed\n"

        .section .note.GNU-stack,"",@progbits
