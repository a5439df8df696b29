// hv-c-example: a root-partition program written against <hv/hvgdk.h> alone.
//
// It creates a child partition through the Hyper-V personality server,
// gives it memory (4-level identity page tables, a code page and a stack,
// all pages of the root memory), one VP and an I/O port intercept on port
// 0xE9, starts the VP and handles the guest's two OUTs as intercept messages
// in SIM slot 0: it checks each message, advances RIP past the instruction
// and clears InterceptSuspend. Then it tears everything down and checks
// that every deposited page came back. Exit 0 only if every check passed.
//
// Needs the `+hyperv` grant (init.rc: `bin/hv-c-example +hyperv`) and the
// server running as a service (`bin/hyperv-server +resource +service=hyperv`).
#include <stdio.h>
#include <string.h>

#include <hv/hvgdk.h>
#include <magenta/syscalls.h>

#define TAG "hv-c-example: "

// Guest-physical layout: six pages from GPA 0x10000, identity mapped.
#define GUEST_BASE_PAGE 0x10u
#define GUEST_PAGES     6u
#define GPA_PML4        0x10000u
#define GPA_PDPT        0x11000u
#define GPA_PD          0x12000u
#define GPA_PT          0x13000u
#define GPA_CODE        0x14000u
#define GPA_STACK       0x15000u
#define GUEST_STACK_TOP 0x16000u
#define PTE_PRESENT_WRITABLE 0x3u

#define DEBUG_PORT 0xE9u
#define FIRST_OUT  (GPA_CODE + 7)   // out 0xe9, al
#define SECOND_OUT (GPA_CODE + 16)  // out dx, al

// The guest: 64-bit mode, paging on (CR3 = GPA_PML4), RSP = GUEST_STACK_TOP.
// The stack round trip shows the stack page is mapped and writable.
static const UINT8 guest_code[] = {
    0xb8, 0x41, 0x00, 0x00, 0x00,  //  0: mov eax, 0x41
    0x50,                          //  5: push rax
    0x59,                          //  6: pop rcx
    0xe6, 0xe9,                    //  7: out 0xe9, al      (intercept 1, 2 bytes)
    0x66, 0xba, 0xe9, 0x00,        //  9: mov dx, 0xe9
    0x8d, 0x41, 0x01,              // 13: lea eax, [rcx + 1]
    0xee,                          // 16: out dx, al        (intercept 2, 1 byte)
    0xf4,                          // 17: hlt
    0xeb, 0xfd,                    // 18: jmp 17
};

// Pages: 1 for the partition (from the root's own pool), then the child's:
// 16 to initialize it, 4 for the VP, 1 for the GPA block its mappings use.
#define ROOT_DEPOSIT  1u
#define CHILD_DEPOSIT 21u

static int failures;

static void check(int ok, const char* what) {
    printf(TAG "%s %s\n", ok ? "ok:  " : "FAIL:", what);
    if (!ok) failures++;
}

// Checks a status; prints the value when it is not the expected one.
static int expect(HV_STATUS status, HV_STATUS expected, const char* what) {
    if (status != expected) {
        printf(TAG "FAIL: %s: status 0x%04x, expected 0x%04x\n", what, status, expected);
        failures++;
        return 0;
    }
    printf(TAG "ok:   %s\n", what);
    return 1;
}

static HV_STATUS set_register(HV_PARTITION_ID partition, HV_REGISTER_NAME name, UINT64 value) {
    HV_REGISTER_VALUE v;
    memset(&v, 0, sizeof(v));
    v.Reg64 = value;
    UINT32 count = 1;
    HV_STATUS status = HvSetVpRegisters(partition, 0, &count, &name, &v);
    if (status == HV_STATUS_SUCCESS && count != 1) return HV_STATUS_INVALID_PARAMETER;
    return status;
}

static const HV_PROXIMITY_DOMAIN_INFO any_domain = {0};

// Waits for an I/O intercept message in SIM slot 0 and checks it against
// what the guest did: an OUT of `value` to DEBUG_PORT at `rip`, `length`
// bytes long. Returns the message's instruction length (0 on failure).
static UINT8 take_io_intercept(HV_PARTITION_ID child, UINT64 rip, UINT8 length, UINT64 value) {
    PHV_MESSAGE slot = &HvRootMessagePage()[0];
    mx_time_t deadline = mx_deadline_after(MX_SEC(20));
    while (*(volatile HV_MESSAGE_TYPE*)&slot->Header.MessageType == HvMessageTypeNone) {
        HV_STATUS status = HvRootWaitForSynic(deadline);
        if (status != HV_STATUS_SUCCESS) {
            expect(status, HV_STATUS_SUCCESS, "an intercept message arrives in SIM slot 0");
            return 0;
        }
    }
    // The slot is ours until we clear it: copy it out first.
    HV_MESSAGE message;
    memcpy(&message, (const void*)slot, sizeof(message));
    const HV_X64_IO_PORT_INTERCEPT_MESSAGE* io = &message.IoPortIntercept;
    printf(TAG "message type 0x%08x from partition %lu: VP %u, port 0x%x, access %u, rip 0x%lx, length %u, "
               "rax 0x%lx\n",
           message.Header.MessageType, (unsigned long)message.Header.Sender, io->Header.VpIndex, io->PortNumber,
           io->Header.InterceptAccessType, (unsigned long)io->Header.Rip, io->Header.InstructionLength,
           (unsigned long)io->Rax);
    int before = failures;
    check(message.Header.MessageType == HvMessageTypeX64IoPortIntercept, "type HvMessageTypeX64IoPortIntercept");
    check(message.Header.PayloadSize >= offsetof(HV_X64_IO_PORT_INTERCEPT_MESSAGE, InstructionBytes) &&
              message.Header.PayloadSize <= HV_MESSAGE_MAX_PAYLOAD_BYTE_COUNT,
          "payload size covers the I/O fields");
    check(message.Header.Sender == child, "sent by the child partition");
    check(io->Header.VpIndex == 0, "from VP 0");
    check(io->PortNumber == DEBUG_PORT, "port 0xE9");
    check(io->Header.InterceptAccessType == HV_INTERCEPT_ACCESS_WRITE, "access type write (1)");
    check((io->AccessInfo & HV_X64_IO_PORT_ACCESS_SIZE_MASK) == 1, "access size 1 byte");
    check(io->Header.Rip == rip, "RIP at the OUT instruction");
    check(io->Header.InstructionLength == length, "instruction length");
    check(io->Rax == value, "RAX holds the value written");
    check(io->Header.ExecutionState & HV_X64_VP_EXECUTION_STATE_EFER_LMA, "the VP is in long mode");
    check((io->Header.ExecutionState & HV_X64_VP_EXECUTION_STATE_CPL_MASK) == 0, "at CPL 0");

    // Empty the slot, then tell the server so a queued message can follow.
    int pending = message.Header.MessageFlags & HV_MESSAGE_FLAG_PENDING;
    slot->Header.MessageType = HvMessageTypeNone;
    HV_STATUS eom = HvRootEndOfMessage(0);
    if (eom != HV_STATUS_SUCCESS || pending) expect(eom, HV_STATUS_SUCCESS, "end of message on SINT0");
    return failures == before ? io->Header.InstructionLength : 0;
}

// The VP waits in InterceptSuspend; move RIP past the OUT and let it run.
static void resume_after(HV_PARTITION_ID child, UINT64 rip, UINT8 length) {
    HV_REGISTER_NAME names[] = {HvRegisterInterceptSuspend, HvX64RegisterRip};
    HV_REGISTER_VALUE values[2];
    memset(values, 0, sizeof(values));
    UINT32 count = 2;
    if (expect(HvGetVpRegisters(child, 0, &count, names, values), HV_STATUS_SUCCESS,
               "HvGetVpRegisters(InterceptSuspend, Rip)")) {
        check(count == 2, "both registers read");
        check(values[0].InterceptSuspend & HV_INTERCEPT_SUSPEND_SUSPENDED, "the VP is intercept-suspended");
        check(values[1].Reg64 == rip, "RIP still at the OUT");
    }
    expect(set_register(child, HvX64RegisterRip, rip + length), HV_STATUS_SUCCESS, "RIP advanced past the OUT");
    expect(set_register(child, HvRegisterInterceptSuspend, 0), HV_STATUS_SUCCESS, "InterceptSuspend cleared");
}

// Withdraws everything `partition` has available; returns how many pages.
static UINT32 withdraw_all(HV_PARTITION_ID partition, HV_GPA_PAGE_NUMBER* pages, UINT32 capacity) {
    UINT32 count = capacity;
    HV_STATUS status = HvWithdrawMemory(partition, any_domain, &count, pages);
    // Asking for more than the pool holds ends in NO_RESOURCES after the
    // pages that were there.
    if (status != HV_STATUS_SUCCESS && status != HV_STATUS_NO_RESOURCES) {
        expect(status, HV_STATUS_NO_RESOURCES, "HvWithdrawMemory");
    }
    return count;
}

static int all_in(const HV_GPA_PAGE_NUMBER* got, UINT32 n, const HV_GPA_PAGE_NUMBER* set, UINT32 m) {
    for (UINT32 i = 0; i < n; i++) {
        int found = 0;
        for (UINT32 j = 0; j < m; j++) found |= got[i] == set[j];
        if (!found) return 0;
    }
    return 1;
}

int main(void) {
    HV_PARTITION_ID root = HvRootPartitionId();
    if (root == HV_PARTITION_ID_INVALID) {
        puts(TAG "FAIL: no Hyper-V server (run with the +hyperv grant and bin/hyperv-server as a service)");
        return 1;
    }
    printf(TAG "root partition %lu\n", (unsigned long)root);
    HV_PARTITION_ID self = 0;
    if (expect(HvGetPartitionId(&self), HV_STATUS_SUCCESS, "HvGetPartitionId")) {
        check(self == root, "HvGetPartitionId names the root partition");
    }

    // Pages for the pools and for the guest, all from the root memory.
    UINT8* pool_pages = HvRootAllocatePages(ROOT_DEPOSIT + CHILD_DEPOSIT);
    UINT8* guest = HvRootAllocatePages(GUEST_PAGES);
    if (pool_pages == NULL || guest == NULL) {
        puts(TAG "FAIL: HvRootAllocatePages");
        return 1;
    }
    HV_GPA_PAGE_NUMBER pool[ROOT_DEPOSIT + CHILD_DEPOSIT];
    for (UINT32 i = 0; i < ROOT_DEPOSIT + CHILD_DEPOSIT; i++) pool[i] = HvRootPageNumber(pool_pages + i * HV_PAGE_SIZE);

    UINT32 count = ROOT_DEPOSIT;
    expect(HvDepositMemory(root, &count, pool), HV_STATUS_SUCCESS, "deposit 1 page into the root's pool");
    check(count == ROOT_DEPOSIT, "1 page deposited");

    HV_PARTITION_ID child = 0;
    if (!expect(HvCreatePartition(0, any_domain, &child), HV_STATUS_SUCCESS, "HvCreatePartition")) return 1;
    printf(TAG "child partition %lu\n", (unsigned long)child);
    HV_PARTITION_ID next = 0;
    if (expect(HvGetNextChildPartition(root, HV_PARTITION_ID_INVALID, &next), HV_STATUS_SUCCESS,
               "HvGetNextChildPartition")) {
        check(next == child, "the root's first child is the new partition");
    }

    expect(HvInitializePartition(child), HV_STATUS_INSUFFICIENT_MEMORY,
           "HvInitializePartition with an empty pool: INSUFFICIENT_MEMORY");
    count = CHILD_DEPOSIT;
    expect(HvDepositMemory(child, &count, pool + ROOT_DEPOSIT), HV_STATUS_SUCCESS, "deposit 21 pages into the child");
    check(count == CHILD_DEPOSIT, "21 pages deposited");
    if (!expect(HvInitializePartition(child), HV_STATUS_SUCCESS, "HvInitializePartition")) return 1;
    UINT64 available = 0, in_use = 0;
    if (expect(HvGetMemoryBalance(child, any_domain, &available, &in_use), HV_STATUS_SUCCESS,
               "HvGetMemoryBalance")) {
        printf(TAG "child pool: %lu available, %lu in use\n", (unsigned long)available, (unsigned long)in_use);
        check(available == CHILD_DEPOSIT - 16 && in_use == 16, "initializing took 16 pages");
    }

    // Guest memory: identity page tables for the six pages, the code, a stack.
    UINT64* pml4 = (UINT64*)(guest + 0 * HV_PAGE_SIZE);
    UINT64* pdpt = (UINT64*)(guest + 1 * HV_PAGE_SIZE);
    UINT64* pd = (UINT64*)(guest + 2 * HV_PAGE_SIZE);
    UINT64* pt = (UINT64*)(guest + 3 * HV_PAGE_SIZE);
    pml4[0] = GPA_PDPT | PTE_PRESENT_WRITABLE;
    pdpt[0] = GPA_PD | PTE_PRESENT_WRITABLE;
    pd[0] = GPA_PT | PTE_PRESENT_WRITABLE;
    for (UINT32 i = 0; i < GUEST_PAGES; i++) {
        pt[GUEST_BASE_PAGE + i] = ((UINT64)(GUEST_BASE_PAGE + i) << HV_PAGE_SHIFT) | PTE_PRESENT_WRITABLE;
    }
    memcpy(guest + 4 * HV_PAGE_SIZE, guest_code, sizeof(guest_code));
    HV_GPA_PAGE_NUMBER sources[GUEST_PAGES];
    for (UINT32 i = 0; i < GUEST_PAGES; i++) sources[i] = HvRootPageNumber(guest + i * HV_PAGE_SIZE);
    count = GUEST_PAGES;
    expect(HvMapGpaPages(child, GUEST_BASE_PAGE, HV_MAP_GPA_READABLE | HV_MAP_GPA_WRITABLE | HV_MAP_GPA_EXECUTABLE,
                         &count, sources),
           HV_STATUS_SUCCESS, "HvMapGpaPages: 6 pages at GPA 0x10000");
    check(count == GUEST_PAGES, "6 pages mapped");

    if (!expect(HvCreateVp(child, any_domain, 0, 0), HV_STATUS_SUCCESS, "HvCreateVp(0)")) return 1;
    HV_REGISTER_NAME names[] = {HvX64RegisterRip, HvX64RegisterRsp, HvX64RegisterCr3, HvX64RegisterRflags};
    HV_REGISTER_VALUE values[4];
    memset(values, 0, sizeof(values));
    values[0].Reg64 = GPA_CODE;
    values[1].Reg64 = GUEST_STACK_TOP;
    values[2].Reg64 = GPA_PML4;
    values[3].Reg64 = 0x2;  // the reserved bit 1 only: interrupts off
    count = 4;
    expect(HvSetVpRegisters(child, 0, &count, names, values), HV_STATUS_SUCCESS, "HvSetVpRegisters(RIP, RSP, CR3, RFLAGS)");
    check(count == 4, "4 registers set");

    HV_INTERCEPT_DESCRIPTOR descriptor;
    memset(&descriptor, 0, sizeof(descriptor));
    descriptor.Type = HvInterceptTypeX64IoPort;
    descriptor.Parameters.IoPort = DEBUG_PORT;
    expect(HvInstallIntercept(child, HV_INTERCEPT_ACCESS_MASK_READ | HV_INTERCEPT_ACCESS_MASK_WRITE, &descriptor),
           HV_STATUS_SUCCESS, "HvInstallIntercept(I/O port 0xE9, READ|WRITE)");

    PHV_MESSAGE sim = HvRootMessagePage();
    check(sim != NULL && HvRootEventFlagsPage() != NULL, "the root's SIM and SIEF pages are mapped");
    if (sim == NULL) return 1;
    check(sim[0].Header.MessageType == HvMessageTypeNone, "SIM slot 0 is empty before the VP runs");

    if (!expect(set_register(child, HvRegisterExplicitSuspend, 0), HV_STATUS_SUCCESS,
                "VP 0 started (ExplicitSuspend cleared)")) {
        return 1;
    }
    UINT8 length = take_io_intercept(child, FIRST_OUT, 2, 0x41);
    if (length) resume_after(child, FIRST_OUT, length);
    length = length ? take_io_intercept(child, SECOND_OUT, 1, 0x42) : 0;
    if (length) resume_after(child, SECOND_OUT, length);
    check(length != 0, "both OUTs arrived as intercept messages");

    // The guest is now halted: nothing more may arrive.
    HV_STATUS quiet = HvRootWaitForSynic(mx_deadline_after(MX_MSEC(200)));
    check((quiet == HV_STATUS_TIME_OUT || quiet == HV_STATUS_SUCCESS) && sim[0].Header.MessageType == HvMessageTypeNone,
          "no further message once the guest halts");

    // Teardown: unmap, finalize, withdraw everything, delete, withdraw the
    // partition's page from the root's pool.
    count = GUEST_PAGES;
    expect(HvUnmapGpaPages(child, GUEST_BASE_PAGE, &count), HV_STATUS_SUCCESS, "HvUnmapGpaPages");
    check(count == GUEST_PAGES, "6 pages unmapped");
    expect(HvFinalizePartition(child), HV_STATUS_SUCCESS, "HvFinalizePartition");
    HV_GPA_PAGE_NUMBER back[ROOT_DEPOSIT + CHILD_DEPOSIT + 1];
    UINT32 withdrawn = withdraw_all(child, back, CHILD_DEPOSIT + 1);
    check(withdrawn == CHILD_DEPOSIT && all_in(back, withdrawn, pool + ROOT_DEPOSIT, CHILD_DEPOSIT),
          "the child's 21 pages withdrawn");
    expect(HvDeletePartition(child), HV_STATUS_SUCCESS, "HvDeletePartition");
    expect(HvInitializePartition(child), HV_STATUS_INVALID_PARTITION_ID, "the deleted id is invalid");
    withdrawn = withdraw_all(root, back, ROOT_DEPOSIT + 1);
    check(withdrawn == ROOT_DEPOSIT && all_in(back, withdrawn, pool, ROOT_DEPOSIT),
          "the root's page withdrawn after the delete");

    if (failures) {
        printf(TAG "%d checks failed\n", failures);
        return 1;
    }
    puts(TAG "all checks passed");
    return 0;
}
