// Host test of libhv (sysroot/src/hv.c): compiled natively together with it,
// this file plays the kernel (the mx_* calls libhv makes) and the Hyper-V
// server (the other end of the client channel). Every Request libhv sends is
// checked against the wire layout of userland/hyperv-server/README.md and its
// input block against TLFS 2.0A (hyperv-reference.md §2).
//
//   libhv_mock SCENARIO    (main, noserver, badhello, peerclosed, dump)
//
// Prints "ok: ..." / "FAIL: ..." lines and exits 0 only if every check passed.
// `dump` makes one call of each kind with fixed arguments and prints its
// input ("dump NAME CONTROL HEX": the input block, or a fast call's two
// qwords), for the host test to compare with crate hv's layouts.
#include <hv/hvgdk.h>

#include <magenta/syscalls.h>
#include <mxrt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHANNEL 5
#define MEMORY_VMO 11
#define SYNIC_VMO 12
#define EVENT 13
#define ROOT_ID 7u
#define MEMORY_SIZE (4u << 20)  // smaller than the server's 64 MiB: a Hello may say any size

static const char* scenario;
static int failures;

static void check(int ok, const char* what) {
    printf("%s %s\n", ok ? "ok:  " : "FAIL:", what);
    if (!ok) failures++;
}

// ---------------------------------------------------------------------------
// The kernel.

static int takes;
static uintptr_t memory_base, synic_base;
static int closed[64];
static int unmapped;
static mx_signals_t event_signals;
static int channel_closed;

mx_handle_t mxrt_take_handle(uint32_t info) {
    if (info != HV_CLIENT_HANDLE_INFO) return MX_HANDLE_INVALID;
    takes++;
    if (strcmp(scenario, "noserver") == 0 || takes > 1) return MX_HANDLE_INVALID;
    return CHANNEL;
}

mx_handle_t mx_vmar_root_self(void) { return 3; }

mx_time_t mx_deadline_after(mx_duration_t nanoseconds) { return 1000 + nanoseconds; }

mx_status_t mx_handle_close(mx_handle_t handle) {
    if (handle > 0 && handle < 64) closed[handle]++;
    return MX_OK;
}

mx_status_t mx_object_wait_one(mx_handle_t handle, mx_signals_t waitfor, mx_time_t deadline,
                               mx_signals_t* observed) {
    check(handle == CHANNEL && (waitfor & MX_CHANNEL_READABLE) && (waitfor & MX_CHANNEL_PEER_CLOSED),
          "the Hello wait is on the channel, for READABLE or PEER_CLOSED");
    check(deadline == 1000 + HV_CONNECT_TIMEOUT_NS, "the Hello wait has the connect timeout");
    *observed = strcmp(scenario, "peerclosed") == 0 ? MX_CHANNEL_PEER_CLOSED : MX_CHANNEL_READABLE;
    return MX_OK;
}

mx_status_t mx_channel_read(mx_handle_t handle, uint32_t options, void* bytes, mx_handle_t* handles,
                            uint32_t num_bytes, uint32_t num_handles, uint32_t* actual_bytes,
                            uint32_t* actual_handles) {
    check(handle == CHANNEL && options == 0 && num_bytes >= 32 && num_handles >= 3, "the Hello read");
    uint32_t hello[8] = {0x56534856u, 1, ROOT_ID, 0, MEMORY_SIZE, 0, 0, 0};
    if (strcmp(scenario, "badhello") == 0) hello[0] ^= 1;
    memcpy(bytes, hello, 32);
    handles[0] = MEMORY_VMO;
    handles[1] = SYNIC_VMO;
    handles[2] = EVENT;
    *actual_bytes = 32;
    *actual_handles = 3;
    return MX_OK;
}

mx_status_t mx_vmar_map(mx_handle_t vmar, size_t vmar_offset, mx_handle_t vmo, uint64_t vmo_offset, size_t len,
                        uint32_t flags, uintptr_t* mapped_addr) {
    check(vmar == 3 && vmar_offset == 0 && vmo_offset == 0, "maps into the root VMAR, anywhere");
    check(flags == (MX_VM_FLAG_PERM_READ | MX_VM_FLAG_PERM_WRITE), "maps read/write");
    void* p = aligned_alloc(4096, len);
    if (p == NULL) return MX_ERR_NO_MEMORY;
    memset(p, 0, len);
    *mapped_addr = (uintptr_t)p;
    if (vmo == MEMORY_VMO) {
        check(len == MEMORY_SIZE, "the root memory mapped whole");
        memory_base = *mapped_addr;
    } else {
        check(vmo == SYNIC_VMO && len == 8192, "the SynIC VMO mapped: 2 pages");
        synic_base = *mapped_addr;
    }
    return MX_OK;
}

mx_status_t mx_vmar_unmap(mx_handle_t vmar, uintptr_t addr, size_t len) {
    (void)vmar, (void)addr, (void)len;
    unmapped++;
    return MX_OK;
}

// The notification event: what the next wait sees.
static mx_status_t wait_result = MX_OK;
static mx_time_t last_deadline;

mx_status_t mx_object_wait_many(mx_wait_item_t* items, uint32_t count, mx_time_t deadline) {
    last_deadline = deadline;
    check(count == 2 && items[0].handle == EVENT && items[0].waitfor == MX_USER_SIGNAL_0 &&
              items[1].handle == CHANNEL && (items[1].waitfor & MX_CHANNEL_PEER_CLOSED),
          "the SynIC wait is on the event's USER_SIGNAL_0 and the channel's PEER_CLOSED");
    items[0].pending = event_signals;
    items[1].pending = channel_closed ? MX_CHANNEL_PEER_CLOSED : MX_CHANNEL_WRITABLE;
    if (!(event_signals & MX_USER_SIGNAL_0) && !channel_closed) return MX_ERR_TIMED_OUT;
    return wait_result;
}

mx_status_t mx_object_signal(mx_handle_t handle, uint32_t clear_mask, uint32_t set_mask) {
    check(handle == EVENT, "signals the event");
    event_signals = (event_signals & ~clear_mask) | set_mask;
    return MX_OK;
}

// ---------------------------------------------------------------------------
// The server: records each request and its input block, answers as set up.

struct request {
    uint32_t txid, op;
    uint64_t control, input, output, memory_base, reserved;
};

struct call {
    struct request req;
    uint8_t input[4096];
};

#define MAX_CALLS 32
static struct call calls[MAX_CALLS];
static int ncalls;
static uint32_t last_txid;
// The next replies: element index at which a rep call fails (or -1), the
// status it then returns, a cap on reps completed per call (0: none), and a
// transport failure.
static int fail_at = -1;
static HV_STATUS fail_status;
static uint32_t reps_cap;
static mx_status_t call_status = MX_OK;
static uint32_t reply_bytes = 16;

static uint64_t answer(const struct request* req) {
    uint16_t code = (uint16_t)(req->control & 0xFFFF);
    uint32_t reps = (uint32_t)((req->control >> 32) & 0xFFF);
    uint8_t* out = (uint8_t*)(uintptr_t)req->output;
    if (req->op == 2) return HV_STATUS_SUCCESS;
    switch (code) {
    case HvCallCreatePartition:
    case HvCallGetPartitionId:
    case HvCallGetNextChildPartition:
    case HvCallGetPartitionProperty:
    case HvCallGetPortProperty: {
        uint64_t value = 0x1000 + code;
        memcpy(out, &value, 8);
        return HV_STATUS_SUCCESS;
    }
    case HvCallGetMemoryBalance: {
        uint64_t values[2] = {21, 16};
        memcpy(out, values, 16);
        return HV_STATUS_SUCCESS;
    }
    case HvCallPostMessage: {
        uint32_t size;
        memcpy(&size, (uint8_t*)(uintptr_t)req->input + 12, 4);
        return size > 240 ? HV_STATUS_INVALID_PARAMETER : HV_STATUS_SUCCESS;
    }
    case HvCallDepositMemory:
    case HvCallWithdrawMemory:
    case HvCallMapGpaPages:
    case HvCallUnmapGpaPages:
    case HvCallGetVpRegisters:
    case HvCallSetVpRegisters: {
        if (reps == 0) return HV_STATUS_INVALID_HYPERCALL_INPUT;
        uint32_t done = reps;
        HV_STATUS status = HV_STATUS_SUCCESS;
        if (fail_at >= 0 && (uint32_t)fail_at < reps) {
            done = (uint32_t)fail_at;
            status = fail_status;
            fail_at = -1;
        } else if (fail_at >= 0) {
            fail_at -= (int)reps;
        }
        if (reps_cap && done > reps_cap) done = reps_cap;
        for (uint32_t i = 0; i < done; i++) {
            if (code == HvCallWithdrawMemory) {
                uint64_t page = 5000 + (uint64_t)ncalls * 1000 + i;
                memcpy(out + 8 * i, &page, 8);
            } else if (code == HvCallGetVpRegisters) {
                uint32_t name;
                memcpy(&name, (uint8_t*)(uintptr_t)req->input + 16 + 4 * i, 4);
                uint64_t value[2] = {name * 3ull, ~(uint64_t)name};
                memcpy(out + 16 * i, value, 16);
            }
        }
        return status | ((uint64_t)done << 32);
    }
    default:
        return HV_STATUS_SUCCESS;
    }
}

mx_status_t mx_channel_call(mx_handle_t handle, uint32_t options, mx_time_t deadline,
                            const mx_channel_call_args_t* args, uint32_t* actual_bytes, uint32_t* actual_handles,
                            mx_status_t* read_status) {
    int ok = handle == CHANNEL && options == 0 && deadline == MX_TIME_INFINITE && args->wr_num_bytes == 48 &&
             args->wr_num_handles == 0 && args->rd_num_bytes >= 16;
    struct request req;
    memcpy(&req, args->wr_bytes, sizeof(req));
    ok = ok && req.txid != 0 && req.txid != last_txid && req.memory_base == memory_base && req.reserved == 0;
    if (!ok) {
        printf("FAIL: malformed request: txid %u op %u base 0x%lx (mapped 0x%lx)\n", req.txid, req.op,
               (unsigned long)req.memory_base, (unsigned long)memory_base);
        failures++;
    }
    last_txid = req.txid;
    if (ncalls < MAX_CALLS) {
        calls[ncalls].req = req;
        if (req.op == 1 && !(req.control & HV_HYPERCALL_FAST_BIT)) {
            memcpy(calls[ncalls].input, (void*)(uintptr_t)req.input, 4096);
        }
    }
    uint64_t result = answer(&req);
    ncalls++;
    if (call_status != MX_OK) {
        *read_status = MX_ERR_PEER_CLOSED;
        return call_status;
    }
    struct {
        uint32_t txid, reserved;
        uint64_t result;
    } reply = {req.txid, 0, result};
    memcpy(args->rd_bytes, &reply, 16);
    *actual_bytes = reply_bytes;
    *actual_handles = 0;
    *read_status = MX_OK;
    return MX_OK;
}

// ---------------------------------------------------------------------------
// Checks.

static uint64_t u64_at(const struct call* c, size_t offset) {
    uint64_t v;
    memcpy(&v, c->input + offset, 8);
    return v;
}

static uint32_t u32_at(const struct call* c, size_t offset) {
    uint32_t v;
    memcpy(&v, c->input + offset, 4);
    return v;
}

static uint16_t u16_at(const struct call* c, size_t offset) {
    uint16_t v;
    memcpy(&v, c->input + offset, 2);
    return v;
}

static uint64_t slow_control(uint16_t code, uint32_t reps) { return code | ((uint64_t)reps << 32); }

// A slow call: control value, and input/output are the two hypercall pages.
static int is_slow(const struct call* c, uint16_t code, uint32_t reps) {
    return c->req.op == 1 && c->req.control == slow_control(code, reps) && c->req.input == memory_base &&
           c->req.output == memory_base + 4096;
}

static int is_fast(const struct call* c, uint16_t code, uint64_t in0, uint64_t in1) {
    return c->req.op == 1 && c->req.control == (code | HV_HYPERCALL_FAST_BIT) && c->req.input == in0 &&
           c->req.output == in1;
}

static void reset(void) {
    ncalls = 0;
    memset(calls, 0, sizeof(calls));
}

static const HV_PROXIMITY_DOMAIN_INFO domain = {.Id = 3, .Flags = {.AsUINT32 = 0x80000001u}};

static void partitions(void) {
    reset();
    check(HvRootPartitionId() == ROOT_ID, "HvRootPartitionId is the Hello's id");
    check(takes == 1 && ncalls == 0, "connecting takes the client channel once and sends nothing");
    check(HvRootMessagePage() == (PHV_MESSAGE)synic_base, "the SIM page is page 0 of the SynIC VMO");
    check((uintptr_t)HvRootEventFlagsPage() == synic_base + 4096, "the SIEF page is page 1");

    HV_PARTITION_ID id = 0;
    check(HvCreatePartition(0x5, domain, &id) == HV_STATUS_SUCCESS && id == 0x1040, "HvCreatePartition");
    check(ncalls == 1 && is_slow(&calls[0], 0x40, 0), "CreatePartition: slow call 0x0040");
    check(u64_at(&calls[0], 0) == 5 && u32_at(&calls[0], 8) == 3 && u32_at(&calls[0], 12) == 0x80000001u,
          "CreatePartition input: Flags @0, ProximityDomainInfo Id @8, Flags @12");

    reset();
    check(HvInitializePartition(9) == HV_STATUS_SUCCESS && HvFinalizePartition(9) == HV_STATUS_SUCCESS &&
              HvDeletePartition(9) == HV_STATUS_SUCCESS,
          "Initialize/Finalize/DeletePartition");
    check(ncalls == 3 && is_fast(&calls[0], 0x41, 9, 0) && is_fast(&calls[1], 0x42, 9, 0) &&
              is_fast(&calls[2], 0x43, 9, 0),
          "Initialize/Finalize/DeletePartition: fast calls 0x41-0x43 with the id in qword 0");

    reset();
    HV_PARTITION_PROPERTY value = 0;
    check(HvGetPartitionProperty(9, HvPartitionPropertyPrivilegeFlags, &value) == HV_STATUS_SUCCESS &&
              value == 0x1044,
          "HvGetPartitionProperty");
    check(is_slow(&calls[0], 0x44, 0) && u64_at(&calls[0], 0) == 9 && u32_at(&calls[0], 8) == 0x10000 &&
              u32_at(&calls[0], 12) == 0,
          "GetPartitionProperty input: PartitionId @0, PropertyCode @8, padding zero");
    check(HvSetPartitionProperty(9, HvPartitionPropertyPrivilegeFlags, 0xABCD) == HV_STATUS_SUCCESS,
          "HvSetPartitionProperty");
    check(is_slow(&calls[1], 0x45, 0) && u64_at(&calls[1], 0) == 9 && u32_at(&calls[1], 8) == 0x10000 &&
              u64_at(&calls[1], 16) == 0xABCD,
          "SetPartitionProperty input: PropertyValue @16");
    check(HvGetPartitionId(&id) == HV_STATUS_SUCCESS && id == 0x1046 && is_slow(&calls[2], 0x46, 0),
          "HvGetPartitionId: slow 0x0046, output qword 0");
    check(HvGetNextChildPartition(9, 4, &id) == HV_STATUS_SUCCESS && id == 0x1047 && is_slow(&calls[3], 0x47, 0) &&
              u64_at(&calls[3], 0) == 9 && u64_at(&calls[3], 8) == 4,
          "HvGetNextChildPartition: ParentId @0, PreviousChildId @8");
    UINT64 available = 0, in_use = 0;
    check(HvGetMemoryBalance(9, domain, &available, &in_use) == HV_STATUS_SUCCESS && available == 21 &&
              in_use == 16 && is_slow(&calls[4], 0x4A, 0) && u64_at(&calls[4], 0) == 9 &&
              u32_at(&calls[4], 8) == 3 && u32_at(&calls[4], 12) == 0x80000001u,
          "HvGetMemoryBalance: input PartitionId, ProximityDomainInfo; output available, in use");
}

static void rep_calls(void) {
    static HV_GPA_PAGE_NUMBER pages[6000];
    for (uint32_t i = 0; i < 6000; i++) pages[i] = 0x100000 + i;

    reset();
    UINT32 count = 1000;
    check(HvDepositMemory(9, &count, pages) == HV_STATUS_SUCCESS && count == 1000, "HvDepositMemory of 1000 pages");
    check(ncalls == 2 && is_slow(&calls[0], 0x48, 511) && is_slow(&calls[1], 0x48, 489),
          "Deposit: batches of 511 (a page of input), then the rest");
    check(u64_at(&calls[0], 0) == 9 && u64_at(&calls[0], 8) == 0x100000 && u64_at(&calls[0], 8 + 8 * 510) == 0x100000 + 510 &&
              u64_at(&calls[1], 8) == 0x100000 + 511 && u64_at(&calls[1], 8 + 8 * 488) == 0x100000 + 999,
          "Deposit input: PartitionId @0, the page list from @8");

    reset();
    count = 1000;
    fail_at = 511 + 100;
    fail_status = HV_STATUS_OPERATION_DENIED;
    check(HvDepositMemory(9, &count, pages) == HV_STATUS_OPERATION_DENIED && count == 611 && ncalls == 2,
          "Deposit stops at the first error: status, and the count completed");

    reset();
    count = 100;
    reps_cap = 30;
    check(HvDepositMemory(9, &count, pages) == HV_STATUS_SUCCESS && count == 100 && ncalls == 4 &&
              is_slow(&calls[1], 0x48, 70) && u64_at(&calls[1], 8) == 0x100000 + 30,
          "Deposit: a partial success continues from the first element not done");
    reps_cap = 0;

    reset();
    count = 0;
    check(HvDepositMemory(9, &count, pages) == HV_STATUS_INVALID_HYPERCALL_INPUT && count == 0 && ncalls == 1 &&
              is_slow(&calls[0], 0x48, 0),
          "Deposit of 0 pages: the server's answer to rep count 0");

    reset();
    static HV_GPA_PAGE_NUMBER got[700];
    count = 600;
    check(HvWithdrawMemory(9, domain, &count, got) == HV_STATUS_SUCCESS && count == 600, "HvWithdrawMemory of 600");
    check(ncalls == 2 && is_slow(&calls[0], 0x49, 512) && is_slow(&calls[1], 0x49, 88) &&
              u64_at(&calls[0], 0) == 9 && u32_at(&calls[0], 8) == 3 && u32_at(&calls[0], 12) == 0x80000001u,
          "Withdraw: batches of 512 (a page of output); PartitionId, ProximityDomainInfo");
    check(got[0] == 5000 && got[511] == 5511 && got[512] == 6000 && got[599] == 6087,
          "Withdraw: the output lists copied in order");
    reset();
    count = 600;
    fail_at = 20;
    fail_status = HV_STATUS_NO_RESOURCES;
    memset(got, 0, sizeof(got));
    check(HvWithdrawMemory(9, domain, &count, got) == HV_STATUS_NO_RESOURCES && count == 20 && got[19] == 5019 &&
              got[20] == 0 && ncalls == 1,
          "Withdraw: NO_RESOURCES after 20 pages gives 20 pages and count 20");

    reset();
    count = 600;
    check(HvMapGpaPages(9, 0x10, HV_MAP_GPA_READABLE | HV_MAP_GPA_WRITABLE, &count, pages) == HV_STATUS_SUCCESS &&
              count == 600,
          "HvMapGpaPages of 600");
    check(ncalls == 2 && is_slow(&calls[0], 0x4B, 509) && is_slow(&calls[1], 0x4B, 91), "Map: batches of 509");
    check(u64_at(&calls[0], 0) == 9 && u64_at(&calls[0], 8) == 0x10 && u32_at(&calls[0], 16) == 3 &&
              u32_at(&calls[0], 20) == 0 && u64_at(&calls[0], 24) == 0x100000,
          "Map input: TargetPartitionId @0, TargetGpaBase @8, MapFlags @16, list @24");
    check(u64_at(&calls[1], 8) == 0x10 + 509 && u64_at(&calls[1], 24) == 0x100000 + 509,
          "Map: the next batch's base and list continue where the first stopped");

    reset();
    count = 5000;
    check(HvUnmapGpaPages(9, 0x10, &count) == HV_STATUS_SUCCESS && count == 5000 && ncalls == 2 &&
              is_slow(&calls[0], 0x4C, 4095) && is_slow(&calls[1], 0x4C, 905) && u64_at(&calls[0], 8) == 0x10 &&
              u64_at(&calls[1], 8) == 0x10 + 4095,
          "HvUnmapGpaPages of 5000: batches of 4095 (the rep count's limit), base advancing");

    reset();
    static HV_REGISTER_NAME names[300];
    static HV_REGISTER_VALUE values[300];
    for (uint32_t i = 0; i < 300; i++) names[i] = 0x20000 + i;
    count = 300;
    check(HvGetVpRegisters(9, 2, &count, names, values) == HV_STATUS_SUCCESS && count == 300, "HvGetVpRegisters of 300");
    check(ncalls == 2 && is_slow(&calls[0], 0x50, 256) && is_slow(&calls[1], 0x50, 44) &&
              u64_at(&calls[0], 0) == 9 && u32_at(&calls[0], 8) == 2 && u32_at(&calls[0], 12) == 0 &&
              u32_at(&calls[0], 16) == 0x20000 && u32_at(&calls[0], 20) == 0x20001 &&
              u32_at(&calls[1], 16) == 0x20000 + 256,
          "GetVpRegisters: batches of 256 (a page of values); names packed 4 bytes apart from @16");
    check(values[0].Reg64 == 0x20000 * 3ull && values[0].Reg128.High64 == ~0x20000ull &&
              values[299].Reg64 == (0x20000 + 299) * 3ull,
          "GetVpRegisters: values copied in order");

    reset();
    for (uint32_t i = 0; i < 300; i++) {
        values[i].Reg128.Low64 = 0x1111 * i;
        values[i].Reg128.High64 = i;
    }
    count = 130;
    check(HvSetVpRegisters(9, 2, &count, names, values) == HV_STATUS_SUCCESS && count == 130, "HvSetVpRegisters of 130");
    check(ncalls == 2 && is_slow(&calls[0], 0x51, 127) && is_slow(&calls[1], 0x51, 3) && u32_at(&calls[0], 8) == 2,
          "SetVpRegisters: batches of 127 (32-byte elements after a 16-byte header)");
    check(u32_at(&calls[0], 16) == 0x20000 && u32_at(&calls[0], 20) == 0 && u64_at(&calls[0], 24) == 0 &&
              u64_at(&calls[0], 32) == 0 && u32_at(&calls[0], 48) == 0x20001 && u64_at(&calls[0], 64) == 0x1111 &&
              u64_at(&calls[0], 72) == 1 && u32_at(&calls[1], 16) == 0x20000 + 127,
          "SetVpRegisters element: Name @0, 12 reserved zero bytes, Value @16");

    reset();
    count = 5;
    fail_at = 2;
    fail_status = HV_STATUS_INVALID_PARAMETER;
    check(HvSetVpRegisters(9, 2, &count, names, values) == HV_STATUS_INVALID_PARAMETER && count == 2,
          "SetVpRegisters: a bad third register stops at 2");
}

static void vps_ports_messages(void) {
    reset();
    HV_INTERCEPT_DESCRIPTOR d = {.Type = HvInterceptTypeX64IoPort, .Parameters = {.IoPort = 0xE9}};
    check(HvInstallIntercept(9, HV_INTERCEPT_ACCESS_MASK_READ | HV_INTERCEPT_ACCESS_MASK_WRITE, &d) ==
                  HV_STATUS_SUCCESS &&
              is_slow(&calls[0], 0x4D, 0) && u64_at(&calls[0], 0) == 9 && u32_at(&calls[0], 8) == 3 &&
              u32_at(&calls[0], 12) == 0 && u64_at(&calls[0], 16) == 0xE9,
          "HvInstallIntercept: PartitionId @0, AccessType @8, InterceptType @12, parameter @16");
    check(HvCreateVp(9, domain, 2, 0x77) == HV_STATUS_SUCCESS && is_slow(&calls[1], 0x4E, 0) &&
              u64_at(&calls[1], 0) == 9 && u32_at(&calls[1], 8) == 2 && u32_at(&calls[1], 12) == 0 &&
              u32_at(&calls[1], 16) == 3 && u32_at(&calls[1], 20) == 0x80000001u && u64_at(&calls[1], 24) == 0x77,
          "HvCreateVp: VpIndex @8, ProximityDomainInfo @16, Flags @24 (the 2.0A layout)");
    check(HvDeleteVp(9, 2) == HV_STATUS_SUCCESS && is_fast(&calls[2], 0x4F, 9, 2), "HvDeleteVp: fast, VpIndex in qword 1");

    reset();
    HV_PORT_INFO port = {.PortType = HvPortTypeEvent};
    port.EventPortInfo.TargetSint = 3;
    port.EventPortInfo.TargetVp = HV_ANY_VP;
    port.EventPortInfo.BaseFlagNumber = 10;
    port.EventPortInfo.FlagCount = 4;
    check(HvCreatePort(9, 0x123, 10, &port) == HV_STATUS_SUCCESS && is_slow(&calls[0], 0x57, 0) &&
              u64_at(&calls[0], 0) == 9 && u32_at(&calls[0], 8) == 0x123 && u64_at(&calls[0], 16) == 10 &&
              u32_at(&calls[0], 24) == 2 && u32_at(&calls[0], 32) == 3 && u32_at(&calls[0], 36) == 0xFFFFFFFFu &&
              u16_at(&calls[0], 40) == 10 && u16_at(&calls[0], 42) == 4,
          "HvCreatePort 0x0057: PortId @8, ConnectionPartition @16, HV_PORT_INFO @24");
    HV_CONNECTION_INFO connection = {.PortType = HvPortTypeEvent};
    check(HvConnectPort(10, 0x456, 9, 0x123, &connection) == HV_STATUS_SUCCESS && is_slow(&calls[1], 0x59, 0) &&
              u64_at(&calls[1], 0) == 10 && u32_at(&calls[1], 8) == 0x456 && u64_at(&calls[1], 16) == 9 &&
              u32_at(&calls[1], 24) == 0x123 && u32_at(&calls[1], 32) == 2,
          "HvConnectPort 0x0059: ConnectionId @8, PortPartition @16, PortId @24, HV_CONNECTION_INFO @32");
    HV_PORT_PROPERTY property = 0;
    check(HvGetPortProperty(9, 0x123, HvPortPropertyPostCount, &property) == HV_STATUS_SUCCESS && property == 0x105A &&
              is_slow(&calls[2], 0x5A, 0) && u32_at(&calls[2], 8) == 0x123 && u32_at(&calls[2], 16) == 0,
          "HvGetPortProperty: PortId @8, PropertyCode @16");
    check(HvDeletePort(9, 0x123) == HV_STATUS_SUCCESS && is_fast(&calls[3], 0x58, 9, 0x123), "HvDeletePort: fast");
    check(HvDisconnectPort(10, 0x456) == HV_STATUS_SUCCESS && is_fast(&calls[4], 0x5B, 10, 0x456),
          "HvDisconnectPort: fast");
    check(HvSignalEvent(0x456, 5) == HV_STATUS_SUCCESS && is_fast(&calls[5], 0x5D, 0x456 | (5ull << 32), 0),
          "HvSignalEvent: fast, ConnectionId @0, FlagNumber @4");

    reset();
    uint8_t payload[300];
    for (int i = 0; i < 300; i++) payload[i] = (uint8_t)(i + 1);
    check(HvPostMessage(0x456, 0x42, 24, payload) == HV_STATUS_SUCCESS && is_slow(&calls[0], 0x5C, 0) &&
              u32_at(&calls[0], 0) == 0x456 && u32_at(&calls[0], 4) == 0 && u32_at(&calls[0], 8) == 0x42 &&
              u32_at(&calls[0], 12) == 24 && memcmp(calls[0].input + 16, payload, 24) == 0 &&
              calls[0].input[16 + 24] == 0,
          "HvPostMessage: ConnectionId @0, MessageType @8, PayloadSize @12, message @16");
    check(HvPostMessage(0x456, 0x42, 300, payload) == HV_STATUS_INVALID_PARAMETER && u32_at(&calls[1], 12) == 300 &&
              memcmp(calls[1].input + 16, payload, 240) == 0,
          "HvPostMessage of 300 bytes: the server refuses it; libhv copies only 240");
}

static void root_extensions(void) {
    reset();
    uint8_t* a = HvRootAllocatePages(3);
    uint8_t* b = HvRootAllocatePages(1);
    check(a == (uint8_t*)memory_base + 8192 && b == a + 3 * 4096,
          "HvRootAllocatePages: after the two hypercall pages, contiguous");
    check(HvRootPageNumber(a) == (uintptr_t)a / 4096, "HvRootPageNumber is address / 4096");
    check(HvRootAllocatePages(0) == NULL, "HvRootAllocatePages(0) is NULL");
    check(HvRootAllocatePages(MEMORY_SIZE / 4096) == NULL, "more pages than are left is NULL");
    uint32_t left = (uint32_t)((memory_base + MEMORY_SIZE - (uintptr_t)(b + 4096)) / 4096);
    check(HvRootAllocatePages(left) == b + 4096 && HvRootAllocatePages(1) == NULL, "the last page, then none");

    event_signals = MX_USER_SIGNAL_0 | MX_USER_SIGNAL_1;
    check(HvRootWaitForSynic(77) == HV_STATUS_SUCCESS && last_deadline == 77 && event_signals == MX_USER_SIGNAL_1,
          "HvRootWaitForSynic: success, and USER_SIGNAL_0 cleared");
    check(HvRootWaitForSynic(78) == HV_STATUS_TIME_OUT, "HvRootWaitForSynic without a signal: TIME_OUT");
    channel_closed = 1;
    check(HvRootWaitForSynic(MX_TIME_INFINITE) == HV_STATUS_INACTIVE, "HvRootWaitForSynic, server gone: INACTIVE");
    channel_closed = 0;

    check(HvRootEndOfMessage(3) == HV_STATUS_SUCCESS && calls[0].req.op == 2 && calls[0].req.control == 3,
          "HvRootEndOfMessage: OP_END_OF_MESSAGE with the SINT as control");
    check(HvRootHypercall(0x12345, 0x67, 0x89) == HV_STATUS_SUCCESS && calls[1].req.op == 1 &&
              calls[1].req.control == 0x12345 && calls[1].req.input == 0x67 && calls[1].req.output == 0x89,
          "HvRootHypercall passes control, input and output through");
}

static void null_and_failures(void) {
    reset();
    HV_PROXIMITY_DOMAIN_INFO any = {0};
    UINT32 count = 1;
    HV_GPA_PAGE_NUMBER page = 1;
    HV_REGISTER_NAME name = 0;
    HV_REGISTER_VALUE value;
    UINT64 u;
    int all = HvCreatePartition(0, any, NULL) == HV_STATUS_INVALID_PARAMETER &&
              HvGetPartitionProperty(1, 0, NULL) == HV_STATUS_INVALID_PARAMETER &&
              HvGetPartitionId(NULL) == HV_STATUS_INVALID_PARAMETER &&
              HvGetNextChildPartition(1, 0, NULL) == HV_STATUS_INVALID_PARAMETER &&
              HvDepositMemory(1, NULL, &page) == HV_STATUS_INVALID_PARAMETER &&
              HvDepositMemory(1, &count, NULL) == HV_STATUS_INVALID_PARAMETER &&
              HvWithdrawMemory(1, any, NULL, &page) == HV_STATUS_INVALID_PARAMETER &&
              HvWithdrawMemory(1, any, &count, NULL) == HV_STATUS_INVALID_PARAMETER &&
              HvGetMemoryBalance(1, any, NULL, &u) == HV_STATUS_INVALID_PARAMETER &&
              HvGetMemoryBalance(1, any, &u, NULL) == HV_STATUS_INVALID_PARAMETER &&
              HvMapGpaPages(1, 0, 0, NULL, &page) == HV_STATUS_INVALID_PARAMETER &&
              HvMapGpaPages(1, 0, 0, &count, NULL) == HV_STATUS_INVALID_PARAMETER &&
              HvUnmapGpaPages(1, 0, NULL) == HV_STATUS_INVALID_PARAMETER &&
              HvInstallIntercept(1, 0, NULL) == HV_STATUS_INVALID_PARAMETER &&
              HvGetVpRegisters(1, 0, NULL, &name, &value) == HV_STATUS_INVALID_PARAMETER &&
              HvGetVpRegisters(1, 0, &count, NULL, &value) == HV_STATUS_INVALID_PARAMETER &&
              HvGetVpRegisters(1, 0, &count, &name, NULL) == HV_STATUS_INVALID_PARAMETER &&
              HvSetVpRegisters(1, 0, NULL, &name, &value) == HV_STATUS_INVALID_PARAMETER &&
              HvSetVpRegisters(1, 0, &count, NULL, &value) == HV_STATUS_INVALID_PARAMETER &&
              HvSetVpRegisters(1, 0, &count, &name, NULL) == HV_STATUS_INVALID_PARAMETER &&
              HvCreatePort(1, 1, 2, NULL) == HV_STATUS_INVALID_PARAMETER &&
              HvConnectPort(1, 1, 2, 1, NULL) == HV_STATUS_INVALID_PARAMETER &&
              HvGetPortProperty(1, 1, 0, NULL) == HV_STATUS_INVALID_PARAMETER &&
              HvPostMessage(1, 1, 0, NULL) == HV_STATUS_INVALID_PARAMETER;
    check(all && ncalls == 0 && count == 1, "a NULL pointer argument: INVALID_PARAMETER, nothing sent");

    reset();
    // A server that claims success with no reps done would make the batch
    // loop spin: libhv takes it for a broken server.
    HV_GPA_PAGE_NUMBER four[4] = {1, 2, 3, 4};
    count = 4;
    fail_at = 0;
    fail_status = HV_STATUS_SUCCESS;
    check(HvDepositMemory(9, &count, four) == HV_STATUS_INACTIVE && count == 0 && ncalls == 1,
          "a rep call answered 'success, 0 done': INACTIVE, no endless retry");

    reset();
    reply_bytes = 8;
    check(HvInitializePartition(9) == HV_STATUS_INACTIVE, "a reply of the wrong size: INACTIVE");
    reply_bytes = 16;
    call_status = MX_ERR_CALL_FAILED;
    check(HvInitializePartition(9) == HV_STATUS_INACTIVE, "a failed channel call: INACTIVE");
    check((HvRootHypercall(0x41 | HV_HYPERCALL_FAST_BIT, 9, 0) & 0xFFFF) == HV_STATUS_INACTIVE,
          "HvRootHypercall over a failed channel: INACTIVE");
    call_status = MX_OK;
    check(HvInitializePartition(9) == HV_STATUS_SUCCESS, "the next call goes through again");
}

static void unreachable(void) {
    HV_PARTITION_ID id = 1;
    HV_PROXIMITY_DOMAIN_INFO any = {0};
    check(HvRootPartitionId() == HV_PARTITION_ID_INVALID, "HvRootPartitionId without a server: INVALID");
    check(HvCreatePartition(0, any, &id) == HV_STATUS_INACTIVE && id == 1, "HvCreatePartition: INACTIVE");
    check(HvInitializePartition(1) == HV_STATUS_INACTIVE, "HvInitializePartition: INACTIVE");
    UINT32 count = 3;
    HV_GPA_PAGE_NUMBER pages[3] = {1, 2, 3};
    check(HvDepositMemory(1, &count, pages) == HV_STATUS_INACTIVE && count == 0, "HvDepositMemory: INACTIVE, 0 done");
    check(HvRootAllocatePages(1) == NULL && HvRootMessagePage() == NULL && HvRootEventFlagsPage() == NULL,
          "no root memory, no SynIC pages");
    check(HvRootWaitForSynic(0) == HV_STATUS_INACTIVE && HvRootEndOfMessage(0) == HV_STATUS_INACTIVE,
          "HvRootWaitForSynic, HvRootEndOfMessage: INACTIVE");
    check(HvRootHypercall(0x46, 0, 0) == HV_STATUS_INACTIVE, "HvRootHypercall: INACTIVE");
    check(HvGetPartitionId(NULL) == HV_STATUS_INVALID_PARAMETER, "NULL is still INVALID_PARAMETER");
    check(takes == 1, "the client channel is taken once, not again on every call");
    check(ncalls == 0, "nothing was sent");
}

// One line per call: its name, control value and input bytes.
static void dump_last(const char* name) {
    const struct call* c = &calls[ncalls - 1];
    uint8_t bytes[96];
    size_t len = sizeof(bytes);
    if (c->req.control & HV_HYPERCALL_FAST_BIT) {
        memcpy(bytes, &c->req.input, 8);
        memcpy(bytes + 8, &c->req.output, 8);
        len = 16;
    } else {
        memcpy(bytes, c->input, sizeof(bytes));
    }
    printf("dump %s %llx ", name, (unsigned long long)c->req.control);
    for (size_t i = 0; i < len; i++) printf("%02x", bytes[i]);
    printf("\n");
}

// The arguments are repeated in hv_client.rs, which builds the same inputs
// with crate hv.
static void dump(void) {
    reset();
    HV_PROXIMITY_DOMAIN_INFO d = {.Id = 3, .Flags = {.AsUINT32 = 0x80000001u}};
    HV_PARTITION_ID id;
    UINT64 value, other;
    HV_GPA_PAGE_NUMBER pages[2] = {0x100, 0x101}, out[2];
    UINT32 n;
    check(HvCreatePartition(5, d, &id) == HV_STATUS_SUCCESS, "dump CreatePartition");
    dump_last("CreatePartition");
    check(HvInitializePartition(9) == HV_STATUS_SUCCESS, "dump InitializePartition");
    dump_last("InitializePartition");
    check(HvFinalizePartition(9) == HV_STATUS_SUCCESS, "dump FinalizePartition");
    dump_last("FinalizePartition");
    check(HvDeletePartition(9) == HV_STATUS_SUCCESS, "dump DeletePartition");
    dump_last("DeletePartition");
    check(HvGetPartitionProperty(9, 0x10000, &value) == HV_STATUS_SUCCESS, "dump GetPartitionProperty");
    dump_last("GetPartitionProperty");
    check(HvSetPartitionProperty(9, 0x10000, 0xABCD) == HV_STATUS_SUCCESS, "dump SetPartitionProperty");
    dump_last("SetPartitionProperty");
    check(HvGetNextChildPartition(9, 4, &id) == HV_STATUS_SUCCESS, "dump GetNextChildPartition");
    dump_last("GetNextChildPartition");
    n = 2;
    check(HvDepositMemory(9, &n, pages) == HV_STATUS_SUCCESS, "dump DepositMemory");
    dump_last("DepositMemory");
    n = 2;
    check(HvWithdrawMemory(9, d, &n, out) == HV_STATUS_SUCCESS, "dump WithdrawMemory");
    dump_last("WithdrawMemory");
    check(HvGetMemoryBalance(9, d, &value, &other) == HV_STATUS_SUCCESS, "dump GetMemoryBalance");
    dump_last("GetMemoryBalance");
    n = 2;
    check(HvMapGpaPages(9, 0x10, 7, &n, pages) == HV_STATUS_SUCCESS, "dump MapGpaPages");
    dump_last("MapGpaPages");
    n = 2;
    check(HvUnmapGpaPages(9, 0x10, &n) == HV_STATUS_SUCCESS, "dump UnmapGpaPages");
    dump_last("UnmapGpaPages");
    HV_INTERCEPT_DESCRIPTOR descriptor = {.Type = HvInterceptTypeX64IoPort, .Parameters = {.IoPort = 0xE9}};
    check(HvInstallIntercept(9, 3, &descriptor) == HV_STATUS_SUCCESS, "dump InstallIntercept");
    dump_last("InstallIntercept");
    check(HvCreateVp(9, d, 2, 0) == HV_STATUS_SUCCESS, "dump CreateVp");
    dump_last("CreateVp");
    check(HvDeleteVp(9, 2) == HV_STATUS_SUCCESS, "dump DeleteVp");
    dump_last("DeleteVp");
    HV_REGISTER_NAME names[2] = {HvX64RegisterRip, HvX64RegisterRflags};
    HV_REGISTER_VALUE values[2];
    memset(values, 0, sizeof(values));
    n = 2;
    check(HvGetVpRegisters(9, 2, &n, names, values) == HV_STATUS_SUCCESS, "dump GetVpRegisters");
    dump_last("GetVpRegisters");
    memset(values, 0, sizeof(values));
    values[0].Reg128.Low64 = 0x14000;
    values[0].Reg128.High64 = 0x77;
    values[1].Reg64 = 2;
    n = 2;
    check(HvSetVpRegisters(9, 2, &n, names, values) == HV_STATUS_SUCCESS, "dump SetVpRegisters");
    dump_last("SetVpRegisters");
    HV_PORT_INFO port = {.PortType = HvPortTypeEvent};
    port.EventPortInfo.TargetSint = 3;
    port.EventPortInfo.TargetVp = HV_ANY_VP;
    port.EventPortInfo.BaseFlagNumber = 10;
    port.EventPortInfo.FlagCount = 4;
    check(HvCreatePort(9, 0x123, 10, &port) == HV_STATUS_SUCCESS, "dump CreatePort");
    dump_last("CreatePort");
    HV_CONNECTION_INFO connection = {.PortType = HvPortTypeEvent};
    check(HvConnectPort(10, 0x456, 9, 0x123, &connection) == HV_STATUS_SUCCESS, "dump ConnectPort");
    dump_last("ConnectPort");
    check(HvGetPortProperty(9, 0x123, HvPortPropertyPreferredTargetVp, &value) == HV_STATUS_SUCCESS,
          "dump GetPortProperty");
    dump_last("GetPortProperty");
    check(HvDeletePort(9, 0x123) == HV_STATUS_SUCCESS, "dump DeletePort");
    dump_last("DeletePort");
    check(HvDisconnectPort(10, 0x456) == HV_STATUS_SUCCESS, "dump DisconnectPort");
    dump_last("DisconnectPort");
    check(HvPostMessage(0x456, 0x42, 4, "abcd") == HV_STATUS_SUCCESS, "dump PostMessage");
    dump_last("PostMessage");
    check(HvSignalEvent(0x456, 5) == HV_STATUS_SUCCESS, "dump SignalEvent");
    dump_last("SignalEvent");
}

int main(int argc, char** argv) {
    scenario = argc > 1 ? argv[1] : "main";
    if (strcmp(scenario, "main") == 0) {
        partitions();
        rep_calls();
        vps_ports_messages();
        root_extensions();
        null_and_failures();
    } else if (strcmp(scenario, "dump") == 0) {
        dump();
    } else {
        unreachable();
        if (strcmp(scenario, "badhello") == 0 || strcmp(scenario, "peerclosed") == 0) {
            check(closed[CHANNEL] == 1, "the channel is closed");
        }
        if (strcmp(scenario, "badhello") == 0) {
            check(closed[MEMORY_VMO] == 1 && closed[SYNIC_VMO] == 1 && closed[EVENT] == 1,
                  "the Hello's three handles are closed");
            check(memory_base == 0 && synic_base == 0, "nothing was mapped");
        }
    }
    printf("%s: %d failed\n", scenario, failures);
    return failures ? 1 : 0;
}
