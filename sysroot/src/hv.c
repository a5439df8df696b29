// libhv: the Hyper-V client API of <hv/hvgdk.h> over the personality
// server's client channel (userland/hyperv-server/README.md, "The client
// protocol"; `hv::proto` is the one definition of the wire layouts).
//
// Each call builds the TLFS 2.0A input block in the input page (hypercall
// inputs and outputs must lie in the root memory: the server reads them in
// place) and sends one 48-byte Request with mx_channel_call; the 16-byte
// Reply carries the hypercall result value.
#include <hv/hvgdk.h>

#include <magenta/syscalls.h>
#include <mxrt.h>
#include <string.h>

// ---------------------------------------------------------------------------
// Wire layouts.

#define HV_HELLO_MAGIC     0x56534856u  // "HVSV"
#define HV_HELLO_VERSION   1u
#define HV_OP_HYPERCALL    1u
#define HV_OP_END_OF_MESSAGE 2u
#define HV_SYNIC_VMO_SIZE  (2u * HV_PAGE_SIZE)

struct hv_hello {
    uint32_t magic;
    uint32_t version;
    uint64_t partition_id;
    uint64_t memory_size;
    uint64_t reserved;
};
_Static_assert(sizeof(struct hv_hello) == 32, "Hello is 32 bytes");

struct hv_request {
    uint32_t txid;
    uint32_t op;
    uint64_t control;
    uint64_t input;
    uint64_t output;
    uint64_t memory_base;
    uint64_t reserved;
};
_Static_assert(sizeof(struct hv_request) == 48, "Request is 48 bytes");
_Static_assert(offsetof(struct hv_request, memory_base) == 32, "Request.memory_base at 32");

struct hv_reply {
    uint32_t txid;
    uint32_t reserved;
    uint64_t result;
};
_Static_assert(sizeof(struct hv_reply) == 16, "Reply is 16 bytes");

// ---------------------------------------------------------------------------
// TLFS 2.0A input and output blocks (hyperv-reference.md §2).

typedef struct {
    UINT64 Flags;
    HV_PROXIMITY_DOMAIN_INFO ProximityDomainInfo;
} HV_INPUT_CREATE_PARTITION;
_Static_assert(sizeof(HV_INPUT_CREATE_PARTITION) == 16, "CreatePartition input");

typedef struct {
    HV_PARTITION_ID PartitionId;
    HV_PARTITION_PROPERTY_CODE PropertyCode;
    UINT32 Padding;
    HV_PARTITION_PROPERTY PropertyValue;  // SetPartitionProperty only
} HV_INPUT_PARTITION_PROPERTY;
_Static_assert(offsetof(HV_INPUT_PARTITION_PROPERTY, PropertyValue) == 16, "PartitionProperty input");

typedef struct {
    HV_PARTITION_ID ParentId;
    HV_PARTITION_ID PreviousChildId;
} HV_INPUT_GET_NEXT_CHILD_PARTITION;

typedef struct {
    HV_PARTITION_ID PartitionId;
    HV_GPA_PAGE_NUMBER GpaPageList[];
} HV_INPUT_DEPOSIT_MEMORY;
_Static_assert(offsetof(HV_INPUT_DEPOSIT_MEMORY, GpaPageList) == 8, "DepositMemory input");

typedef struct {
    HV_PARTITION_ID PartitionId;
    HV_PROXIMITY_DOMAIN_INFO ProximityDomainInfo;
} HV_INPUT_WITHDRAW_MEMORY, HV_INPUT_GET_MEMORY_BALANCE;
_Static_assert(sizeof(HV_INPUT_WITHDRAW_MEMORY) == 16, "WithdrawMemory input");

typedef struct {
    UINT64 PagesAvailable;
    UINT64 PagesInUse;
} HV_OUTPUT_GET_MEMORY_BALANCE;

typedef struct {
    HV_PARTITION_ID TargetPartitionId;
    HV_GPA_PAGE_NUMBER TargetGpaBase;
    HV_MAP_GPA_FLAGS MapFlags;
    UINT32 Padding;
    HV_GPA_PAGE_NUMBER SourceGpaPageList[];
} HV_INPUT_MAP_GPA_PAGES;
_Static_assert(offsetof(HV_INPUT_MAP_GPA_PAGES, SourceGpaPageList) == 24, "MapGpaPages input");

typedef struct {
    HV_PARTITION_ID TargetPartitionId;
    HV_GPA_PAGE_NUMBER TargetGpaBase;
} HV_INPUT_UNMAP_GPA_PAGES;

typedef struct {
    HV_PARTITION_ID PartitionId;
    HV_INTERCEPT_ACCESS_TYPE_MASK AccessType;
    HV_INTERCEPT_TYPE InterceptType;
    HV_INTERCEPT_PARAMETERS InterceptParameter;
} HV_INPUT_INSTALL_INTERCEPT;
_Static_assert(offsetof(HV_INPUT_INSTALL_INTERCEPT, InterceptType) == 12, "InstallIntercept input");
_Static_assert(sizeof(HV_INPUT_INSTALL_INTERCEPT) == 24, "InstallIntercept input");

typedef struct {
    HV_PARTITION_ID PartitionId;
    HV_VP_INDEX VpIndex;
    UINT32 Padding;
    HV_PROXIMITY_DOMAIN_INFO ProximityDomainInfo;
    UINT64 Flags;
} HV_INPUT_CREATE_VP;
_Static_assert(offsetof(HV_INPUT_CREATE_VP, Flags) == 24, "CreateVp input");

typedef struct {
    HV_PARTITION_ID PartitionId;
    HV_VP_INDEX VpIndex;
    UINT32 Padding;
    HV_REGISTER_NAME Names[];
} HV_INPUT_GET_VP_REGISTERS;
_Static_assert(offsetof(HV_INPUT_GET_VP_REGISTERS, Names) == 16, "GetVpRegisters input");

typedef struct {
    HV_REGISTER_NAME Name;
    UINT32 Reserved[3];
    HV_REGISTER_VALUE Value;
} HV_REGISTER_ASSOC;
_Static_assert(sizeof(HV_REGISTER_ASSOC) == 32, "SetVpRegisters element");

typedef struct {
    HV_PARTITION_ID PartitionId;
    HV_VP_INDEX VpIndex;
    UINT32 Padding;
    HV_REGISTER_ASSOC Elements[];
} HV_INPUT_SET_VP_REGISTERS;
_Static_assert(offsetof(HV_INPUT_SET_VP_REGISTERS, Elements) == 16, "SetVpRegisters input");

typedef struct {
    HV_PARTITION_ID PortPartition;
    HV_PORT_ID PortId;
    UINT32 Padding;
    HV_PARTITION_ID ConnectionPartition;
    HV_PORT_INFO PortInfo;
} HV_INPUT_CREATE_PORT;
_Static_assert(offsetof(HV_INPUT_CREATE_PORT, PortInfo) == 24, "CreatePort input");
_Static_assert(sizeof(HV_INPUT_CREATE_PORT) == 48, "CreatePort input");

typedef struct {
    HV_PARTITION_ID ConnectionPartition;
    HV_CONNECTION_ID ConnectionId;
    UINT32 Padding1;
    HV_PARTITION_ID PortPartition;
    HV_PORT_ID PortId;
    UINT32 Padding2;
    HV_CONNECTION_INFO ConnectionInfo;
} HV_INPUT_CONNECT_PORT;
_Static_assert(offsetof(HV_INPUT_CONNECT_PORT, PortId) == 24, "ConnectPort input");
_Static_assert(offsetof(HV_INPUT_CONNECT_PORT, ConnectionInfo) == 32, "ConnectPort input");
_Static_assert(sizeof(HV_INPUT_CONNECT_PORT) == 48, "ConnectPort input");

typedef struct {
    HV_PARTITION_ID PartitionId;
    HV_PORT_ID PortId;
    UINT32 Padding1;
    HV_PORT_PROPERTY_CODE PropertyCode;
    UINT32 Padding2;
} HV_INPUT_GET_PORT_PROPERTY;
_Static_assert(offsetof(HV_INPUT_GET_PORT_PROPERTY, PropertyCode) == 16, "GetPortProperty input");

typedef struct {
    HV_CONNECTION_ID ConnectionId;
    UINT32 Padding;
    HV_MESSAGE_TYPE MessageType;
    UINT32 PayloadSize;
    UINT8 Message[HV_MESSAGE_MAX_PAYLOAD_BYTE_COUNT];
} HV_INPUT_POST_MESSAGE;
_Static_assert(offsetof(HV_INPUT_POST_MESSAGE, Message) == 16, "PostMessage input");
_Static_assert(sizeof(HV_INPUT_POST_MESSAGE) == 256, "PostMessage input");

// Rep elements per call, so that header and list fit one input page, the
// output list one output page, and the count the 12-bit rep count field.
#define DEPOSIT_BATCH  ((HV_PAGE_SIZE - sizeof(HV_INPUT_DEPOSIT_MEMORY)) / sizeof(HV_GPA_PAGE_NUMBER))
#define WITHDRAW_BATCH (HV_PAGE_SIZE / sizeof(HV_GPA_PAGE_NUMBER))
#define MAP_BATCH      ((HV_PAGE_SIZE - sizeof(HV_INPUT_MAP_GPA_PAGES)) / sizeof(HV_GPA_PAGE_NUMBER))
#define UNMAP_BATCH    HV_HYPERCALL_REP_MAX
#define GET_REGS_BATCH (HV_PAGE_SIZE / sizeof(HV_REGISTER_VALUE))
#define SET_REGS_BATCH ((HV_PAGE_SIZE - sizeof(HV_INPUT_SET_VP_REGISTERS)) / sizeof(HV_REGISTER_ASSOC))
_Static_assert(DEPOSIT_BATCH == 511 && WITHDRAW_BATCH == 512 && MAP_BATCH == 509, "list batches");
_Static_assert(GET_REGS_BATCH == 256 && SET_REGS_BATCH == 127, "register batches");
_Static_assert(sizeof(HV_INPUT_GET_VP_REGISTERS) + GET_REGS_BATCH * sizeof(HV_REGISTER_NAME) <= HV_PAGE_SIZE,
               "GetVpRegisters names fit the input page");

// ---------------------------------------------------------------------------
// The connection.

enum { HV_UNCONNECTED, HV_CONNECTED, HV_FAILED };

static struct {
    int state;
    mx_handle_t channel;
    mx_handle_t memory_vmo;
    mx_handle_t synic_vmo;
    mx_handle_t event;
    HV_PARTITION_ID partition_id;
    uintptr_t memory_base;
    uint64_t memory_size;
    uint64_t memory_used;  // bytes handed out from the start of the root memory
    uintptr_t synic_base;
    void* input;           // the hypercall input page
    void* output;          // the hypercall output page
    uint32_t next_txid;
} hv;

static void close_all(mx_handle_t* handles, uint32_t count) {
    for (uint32_t i = 0; i < count; i++) mx_handle_close(handles[i]);
}

static void disconnect(void) {
    if (hv.memory_base) mx_vmar_unmap(mx_vmar_root_self(), hv.memory_base, hv.memory_size);
    if (hv.synic_base) mx_vmar_unmap(mx_vmar_root_self(), hv.synic_base, HV_SYNIC_VMO_SIZE);
    mx_handle_t handles[] = {hv.channel, hv.memory_vmo, hv.synic_vmo, hv.event};
    close_all(handles, 4);
    memset(&hv, 0, sizeof(hv));
    hv.state = HV_FAILED;
}

// Takes the client channel, reads the Hello, maps the root memory and the
// SynIC pages. Tried once: a failure is final (the channel is gone).
static int connect(void) {
    if (hv.state != HV_UNCONNECTED) return hv.state == HV_CONNECTED;
    hv.state = HV_FAILED;
    hv.channel = mxrt_take_handle(HV_CLIENT_HANDLE_INFO);
    if (hv.channel == MX_HANDLE_INVALID) return 0;

    mx_signals_t observed = 0;
    mx_status_t status = mx_object_wait_one(hv.channel, MX_CHANNEL_READABLE | MX_CHANNEL_PEER_CLOSED,
                                            mx_deadline_after(HV_CONNECT_TIMEOUT_NS), &observed);
    if (status != MX_OK || !(observed & MX_CHANNEL_READABLE)) {
        disconnect();
        return 0;
    }
    struct hv_hello hello;
    mx_handle_t handles[3];
    uint32_t bytes = 0, count = 0;
    status = mx_channel_read(hv.channel, 0, &hello, handles, sizeof(hello), 3, &bytes, &count);
    if (status != MX_OK) {
        disconnect();
        return 0;
    }
    if (bytes != sizeof(hello) || count != 3 || hello.magic != HV_HELLO_MAGIC ||
        hello.version != HV_HELLO_VERSION || hello.partition_id == HV_PARTITION_ID_INVALID ||
        hello.memory_size < 2 * HV_PAGE_SIZE || hello.memory_size % HV_PAGE_SIZE != 0) {
        close_all(handles, count);
        disconnect();
        return 0;
    }
    hv.memory_vmo = handles[0];
    hv.synic_vmo = handles[1];
    hv.event = handles[2];
    const uint32_t rw = MX_VM_FLAG_PERM_READ | MX_VM_FLAG_PERM_WRITE;
    if (mx_vmar_map(mx_vmar_root_self(), 0, hv.memory_vmo, 0, hello.memory_size, rw, &hv.memory_base) != MX_OK) {
        hv.memory_base = 0;
        disconnect();
        return 0;
    }
    hv.memory_size = hello.memory_size;
    if (mx_vmar_map(mx_vmar_root_self(), 0, hv.synic_vmo, 0, HV_SYNIC_VMO_SIZE, rw, &hv.synic_base) != MX_OK) {
        hv.synic_base = 0;
        disconnect();
        return 0;
    }
    hv.partition_id = hello.partition_id;
    hv.input = (void*)hv.memory_base;
    hv.output = (void*)(hv.memory_base + HV_PAGE_SIZE);
    hv.memory_used = 2 * HV_PAGE_SIZE;
    hv.next_txid = 1;
    hv.state = HV_CONNECTED;
    return 1;
}

// One request, one reply: the result value, or HV_STATUS_INACTIVE.
static UINT64 request(uint32_t op, UINT64 control, UINT64 input, UINT64 output) {
    if (!connect()) return HV_STATUS_INACTIVE;
    struct hv_request req = {
        .txid = hv.next_txid,
        .op = op,
        .control = control,
        .input = input,
        .output = output,
        .memory_base = hv.memory_base,
        .reserved = 0,
    };
    // Transaction ids are never 0 (a message too short to have one has 0).
    hv.next_txid = hv.next_txid == UINT32_MAX ? 1 : hv.next_txid + 1;
    struct hv_reply reply;
    mx_channel_call_args_t args = {
        .wr_bytes = &req,
        .wr_handles = NULL,
        .rd_bytes = &reply,
        .rd_handles = NULL,
        .wr_num_bytes = sizeof(req),
        .wr_num_handles = 0,
        .rd_num_bytes = sizeof(reply),
        .rd_num_handles = 0,
    };
    uint32_t bytes = 0, handles = 0;
    mx_status_t read_status = MX_OK;
    mx_status_t status = mx_channel_call(hv.channel, 0, MX_TIME_INFINITE, &args, &bytes, &handles, &read_status);
    if (status != MX_OK || bytes != sizeof(reply) || handles != 0 || reply.txid != req.txid) {
        return HV_STATUS_INACTIVE;
    }
    return reply.result;
}

static HV_STATUS status_of(UINT64 result) { return (HV_STATUS)(result & HV_HYPERCALL_RESULT_STATUS_MASK); }

static UINT32 reps_of(UINT64 result) {
    return (UINT32)((result & HV_HYPERCALL_RESULT_REPS_MASK) >> HV_HYPERCALL_RESULT_REPS_SHIFT);
}

// A slow call with the input block already in the input page.
static UINT64 slow(HV_CALL_CODE code, UINT32 reps) {
    UINT64 control = code | ((UINT64)reps << HV_HYPERCALL_REP_COUNT_SHIFT);
    return request(HV_OP_HYPERCALL, control, (UINT64)(uintptr_t)hv.input, (UINT64)(uintptr_t)hv.output);
}

static HV_STATUS fast(HV_CALL_CODE code, UINT64 input0, UINT64 input1) {
    return status_of(request(HV_OP_HYPERCALL, code | HV_HYPERCALL_FAST_BIT, input0, input1));
}

// The input page, zeroed over `size` bytes (reserved fields are RsvdZ), or
// NULL without a connection.
static void* input_block(size_t size) {
    if (!connect()) return NULL;
    memset(hv.input, 0, size);
    return hv.input;
}

#define INPUT(type, size) ((type*)input_block(size))

// One batch of a rep call whose elements the caller put in the input page.
// *completed gets the reps done (at most `reps`). A reply that says success
// with nothing done would loop forever: it counts as a broken server.
static HV_STATUS rep_batch(HV_CALL_CODE code, UINT32 reps, UINT32* completed) {
    UINT64 result = slow(code, reps);
    HV_STATUS status = status_of(result);
    UINT32 done = reps_of(result);
    *completed = done > reps ? reps : done;
    if (status == HV_STATUS_SUCCESS && *completed == 0 && reps != 0) return HV_STATUS_INACTIVE;
    return status;
}

static UINT32 min_u32(UINT32 a, UINT32 b) { return a < b ? a : b; }

// ---------------------------------------------------------------------------
// Partitions.

HV_STATUS HvCreatePartition(UINT64 Flags, HV_PROXIMITY_DOMAIN_INFO ProximityDomainInfo,
                            PHV_PARTITION_ID NewPartitionId) {
    if (NewPartitionId == NULL) return HV_STATUS_INVALID_PARAMETER;
    HV_INPUT_CREATE_PARTITION* in = INPUT(HV_INPUT_CREATE_PARTITION, sizeof(*in));
    if (in == NULL) return HV_STATUS_INACTIVE;
    in->Flags = Flags;
    in->ProximityDomainInfo = ProximityDomainInfo;
    HV_STATUS status = status_of(slow(HvCallCreatePartition, 0));
    if (status == HV_STATUS_SUCCESS) *NewPartitionId = *(HV_PARTITION_ID*)hv.output;
    return status;
}

HV_STATUS HvInitializePartition(HV_PARTITION_ID PartitionId) {
    return fast(HvCallInitializePartition, PartitionId, 0);
}

HV_STATUS HvFinalizePartition(HV_PARTITION_ID PartitionId) {
    return fast(HvCallFinalizePartition, PartitionId, 0);
}

HV_STATUS HvDeletePartition(HV_PARTITION_ID PartitionId) { return fast(HvCallDeletePartition, PartitionId, 0); }

HV_STATUS HvGetPartitionProperty(HV_PARTITION_ID PartitionId, HV_PARTITION_PROPERTY_CODE PropertyCode,
                                 PHV_PARTITION_PROPERTY PropertyValue) {
    if (PropertyValue == NULL) return HV_STATUS_INVALID_PARAMETER;
    HV_INPUT_PARTITION_PROPERTY* in =
        INPUT(HV_INPUT_PARTITION_PROPERTY, offsetof(HV_INPUT_PARTITION_PROPERTY, PropertyValue));
    if (in == NULL) return HV_STATUS_INACTIVE;
    in->PartitionId = PartitionId;
    in->PropertyCode = PropertyCode;
    HV_STATUS status = status_of(slow(HvCallGetPartitionProperty, 0));
    if (status == HV_STATUS_SUCCESS) *PropertyValue = *(HV_PARTITION_PROPERTY*)hv.output;
    return status;
}

HV_STATUS HvSetPartitionProperty(HV_PARTITION_ID PartitionId, HV_PARTITION_PROPERTY_CODE PropertyCode,
                                 HV_PARTITION_PROPERTY PropertyValue) {
    HV_INPUT_PARTITION_PROPERTY* in = INPUT(HV_INPUT_PARTITION_PROPERTY, sizeof(*in));
    if (in == NULL) return HV_STATUS_INACTIVE;
    in->PartitionId = PartitionId;
    in->PropertyCode = PropertyCode;
    in->PropertyValue = PropertyValue;
    return status_of(slow(HvCallSetPartitionProperty, 0));
}

HV_STATUS HvGetPartitionId(PHV_PARTITION_ID PartitionId) {
    if (PartitionId == NULL) return HV_STATUS_INVALID_PARAMETER;
    if (!connect()) return HV_STATUS_INACTIVE;
    HV_STATUS status = status_of(slow(HvCallGetPartitionId, 0));
    if (status == HV_STATUS_SUCCESS) *PartitionId = *(HV_PARTITION_ID*)hv.output;
    return status;
}

HV_STATUS HvGetNextChildPartition(HV_PARTITION_ID ParentId, HV_PARTITION_ID PreviousChildId,
                                  PHV_PARTITION_ID NextChildId) {
    if (NextChildId == NULL) return HV_STATUS_INVALID_PARAMETER;
    HV_INPUT_GET_NEXT_CHILD_PARTITION* in = INPUT(HV_INPUT_GET_NEXT_CHILD_PARTITION, sizeof(*in));
    if (in == NULL) return HV_STATUS_INACTIVE;
    in->ParentId = ParentId;
    in->PreviousChildId = PreviousChildId;
    HV_STATUS status = status_of(slow(HvCallGetNextChildPartition, 0));
    if (status == HV_STATUS_SUCCESS) *NextChildId = *(HV_PARTITION_ID*)hv.output;
    return status;
}

// ---------------------------------------------------------------------------
// Memory pools.

HV_STATUS HvDepositMemory(HV_PARTITION_ID PartitionId, PUINT32 PageCount, PCHV_GPA_PAGE_NUMBER GpaPages) {
    if (PageCount == NULL || GpaPages == NULL) return HV_STATUS_INVALID_PARAMETER;
    UINT32 total = *PageCount, done = 0;
    *PageCount = 0;
    do {
        UINT32 batch = min_u32(total - done, DEPOSIT_BATCH);
        HV_INPUT_DEPOSIT_MEMORY* in = INPUT(HV_INPUT_DEPOSIT_MEMORY, sizeof(*in));
        if (in == NULL) return HV_STATUS_INACTIVE;
        in->PartitionId = PartitionId;
        memcpy(in->GpaPageList, GpaPages + done, batch * sizeof(HV_GPA_PAGE_NUMBER));
        UINT32 completed;
        HV_STATUS status = rep_batch(HvCallDepositMemory, batch, &completed);
        done += completed;
        *PageCount = done;
        if (status != HV_STATUS_SUCCESS) return status;
    } while (done < total);
    return HV_STATUS_SUCCESS;
}

HV_STATUS HvWithdrawMemory(HV_PARTITION_ID PartitionId, HV_PROXIMITY_DOMAIN_INFO ProximityDomainInfo,
                           PUINT32 PageCount, PHV_GPA_PAGE_NUMBER GpaPages) {
    if (PageCount == NULL || GpaPages == NULL) return HV_STATUS_INVALID_PARAMETER;
    UINT32 total = *PageCount, done = 0;
    *PageCount = 0;
    do {
        UINT32 batch = min_u32(total - done, WITHDRAW_BATCH);
        HV_INPUT_WITHDRAW_MEMORY* in = INPUT(HV_INPUT_WITHDRAW_MEMORY, sizeof(*in));
        if (in == NULL) return HV_STATUS_INACTIVE;
        in->PartitionId = PartitionId;
        in->ProximityDomainInfo = ProximityDomainInfo;
        UINT32 completed;
        HV_STATUS status = rep_batch(HvCallWithdrawMemory, batch, &completed);
        memcpy(GpaPages + done, hv.output, completed * sizeof(HV_GPA_PAGE_NUMBER));
        done += completed;
        *PageCount = done;
        if (status != HV_STATUS_SUCCESS) return status;
    } while (done < total);
    return HV_STATUS_SUCCESS;
}

HV_STATUS HvGetMemoryBalance(HV_PARTITION_ID PartitionId, HV_PROXIMITY_DOMAIN_INFO ProximityDomainInfo,
                             PUINT64 PagesAvailable, PUINT64 PagesInUse) {
    if (PagesAvailable == NULL || PagesInUse == NULL) return HV_STATUS_INVALID_PARAMETER;
    HV_INPUT_GET_MEMORY_BALANCE* in = INPUT(HV_INPUT_GET_MEMORY_BALANCE, sizeof(*in));
    if (in == NULL) return HV_STATUS_INACTIVE;
    in->PartitionId = PartitionId;
    in->ProximityDomainInfo = ProximityDomainInfo;
    HV_STATUS status = status_of(slow(HvCallGetMemoryBalance, 0));
    if (status == HV_STATUS_SUCCESS) {
        const HV_OUTPUT_GET_MEMORY_BALANCE* out = hv.output;
        *PagesAvailable = out->PagesAvailable;
        *PagesInUse = out->PagesInUse;
    }
    return status;
}

// ---------------------------------------------------------------------------
// GPA mappings.

HV_STATUS HvMapGpaPages(HV_PARTITION_ID TargetPartitionId, HV_GPA_PAGE_NUMBER TargetGpaBase,
                        HV_MAP_GPA_FLAGS MapFlags, PUINT32 PageCount, PCHV_GPA_PAGE_NUMBER SourceGpaPageList) {
    if (PageCount == NULL || SourceGpaPageList == NULL) return HV_STATUS_INVALID_PARAMETER;
    UINT32 total = *PageCount, done = 0;
    *PageCount = 0;
    do {
        UINT32 batch = min_u32(total - done, MAP_BATCH);
        HV_INPUT_MAP_GPA_PAGES* in = INPUT(HV_INPUT_MAP_GPA_PAGES, sizeof(*in));
        if (in == NULL) return HV_STATUS_INACTIVE;
        in->TargetPartitionId = TargetPartitionId;
        in->TargetGpaBase = TargetGpaBase + done;
        in->MapFlags = MapFlags;
        memcpy(in->SourceGpaPageList, SourceGpaPageList + done, batch * sizeof(HV_GPA_PAGE_NUMBER));
        UINT32 completed;
        HV_STATUS status = rep_batch(HvCallMapGpaPages, batch, &completed);
        done += completed;
        *PageCount = done;
        if (status != HV_STATUS_SUCCESS) return status;
    } while (done < total);
    return HV_STATUS_SUCCESS;
}

HV_STATUS HvUnmapGpaPages(HV_PARTITION_ID TargetPartitionId, HV_GPA_PAGE_NUMBER TargetGpaBase, PUINT32 PageCount) {
    if (PageCount == NULL) return HV_STATUS_INVALID_PARAMETER;
    UINT32 total = *PageCount, done = 0;
    *PageCount = 0;
    do {
        UINT32 batch = min_u32(total - done, UNMAP_BATCH);
        HV_INPUT_UNMAP_GPA_PAGES* in = INPUT(HV_INPUT_UNMAP_GPA_PAGES, sizeof(*in));
        if (in == NULL) return HV_STATUS_INACTIVE;
        in->TargetPartitionId = TargetPartitionId;
        in->TargetGpaBase = TargetGpaBase + done;
        UINT32 completed;
        HV_STATUS status = rep_batch(HvCallUnmapGpaPages, batch, &completed);
        done += completed;
        *PageCount = done;
        if (status != HV_STATUS_SUCCESS) return status;
    } while (done < total);
    return HV_STATUS_SUCCESS;
}

// ---------------------------------------------------------------------------
// Intercepts and virtual processors.

HV_STATUS HvInstallIntercept(HV_PARTITION_ID PartitionId, HV_INTERCEPT_ACCESS_TYPE_MASK AccessType,
                             PCHV_INTERCEPT_DESCRIPTOR Descriptor) {
    if (Descriptor == NULL) return HV_STATUS_INVALID_PARAMETER;
    HV_INPUT_INSTALL_INTERCEPT* in = INPUT(HV_INPUT_INSTALL_INTERCEPT, sizeof(*in));
    if (in == NULL) return HV_STATUS_INACTIVE;
    in->PartitionId = PartitionId;
    in->AccessType = AccessType;
    in->InterceptType = Descriptor->Type;
    in->InterceptParameter = Descriptor->Parameters;
    return status_of(slow(HvCallInstallIntercept, 0));
}

HV_STATUS HvCreateVp(HV_PARTITION_ID PartitionId, HV_PROXIMITY_DOMAIN_INFO ProximityDomainInfo,
                     HV_VP_INDEX VpIndex, UINT64 Flags) {
    HV_INPUT_CREATE_VP* in = INPUT(HV_INPUT_CREATE_VP, sizeof(*in));
    if (in == NULL) return HV_STATUS_INACTIVE;
    in->PartitionId = PartitionId;
    in->VpIndex = VpIndex;
    in->ProximityDomainInfo = ProximityDomainInfo;
    in->Flags = Flags;
    return status_of(slow(HvCallCreateVp, 0));
}

HV_STATUS HvDeleteVp(HV_PARTITION_ID PartitionId, HV_VP_INDEX VpIndex) {
    return fast(HvCallDeleteVp, PartitionId, VpIndex);
}

HV_STATUS HvGetVpRegisters(HV_PARTITION_ID PartitionId, HV_VP_INDEX VpIndex, PUINT32 RegisterCount,
                           PCHV_REGISTER_NAME RegisterNameList, PHV_REGISTER_VALUE RegisterValueList) {
    if (RegisterCount == NULL || RegisterNameList == NULL || RegisterValueList == NULL) {
        return HV_STATUS_INVALID_PARAMETER;
    }
    UINT32 total = *RegisterCount, done = 0;
    *RegisterCount = 0;
    do {
        UINT32 batch = min_u32(total - done, GET_REGS_BATCH);
        HV_INPUT_GET_VP_REGISTERS* in = INPUT(HV_INPUT_GET_VP_REGISTERS, sizeof(*in));
        if (in == NULL) return HV_STATUS_INACTIVE;
        in->PartitionId = PartitionId;
        in->VpIndex = VpIndex;
        memcpy(in->Names, RegisterNameList + done, batch * sizeof(HV_REGISTER_NAME));
        UINT32 completed;
        HV_STATUS status = rep_batch(HvCallGetVpRegisters, batch, &completed);
        memcpy(RegisterValueList + done, hv.output, completed * sizeof(HV_REGISTER_VALUE));
        done += completed;
        *RegisterCount = done;
        if (status != HV_STATUS_SUCCESS) return status;
    } while (done < total);
    return HV_STATUS_SUCCESS;
}

HV_STATUS HvSetVpRegisters(HV_PARTITION_ID PartitionId, HV_VP_INDEX VpIndex, PUINT32 RegisterCount,
                           PCHV_REGISTER_NAME RegisterNameList, PCHV_REGISTER_VALUE RegisterValueList) {
    if (RegisterCount == NULL || RegisterNameList == NULL || RegisterValueList == NULL) {
        return HV_STATUS_INVALID_PARAMETER;
    }
    UINT32 total = *RegisterCount, done = 0;
    *RegisterCount = 0;
    do {
        UINT32 batch = min_u32(total - done, SET_REGS_BATCH);
        HV_INPUT_SET_VP_REGISTERS* in =
            INPUT(HV_INPUT_SET_VP_REGISTERS, sizeof(*in) + batch * sizeof(HV_REGISTER_ASSOC));
        if (in == NULL) return HV_STATUS_INACTIVE;
        in->PartitionId = PartitionId;
        in->VpIndex = VpIndex;
        for (UINT32 i = 0; i < batch; i++) {
            in->Elements[i].Name = RegisterNameList[done + i];
            in->Elements[i].Value = RegisterValueList[done + i];
        }
        UINT32 completed;
        HV_STATUS status = rep_batch(HvCallSetVpRegisters, batch, &completed);
        done += completed;
        *RegisterCount = done;
        if (status != HV_STATUS_SUCCESS) return status;
    } while (done < total);
    return HV_STATUS_SUCCESS;
}

// ---------------------------------------------------------------------------
// Ports, connections, messages and events.

HV_STATUS HvCreatePort(HV_PARTITION_ID PortPartition, HV_PORT_ID PortId, HV_PARTITION_ID ConnectionPartition,
                       PCHV_PORT_INFO PortInfo) {
    if (PortInfo == NULL) return HV_STATUS_INVALID_PARAMETER;
    HV_INPUT_CREATE_PORT* in = INPUT(HV_INPUT_CREATE_PORT, sizeof(*in));
    if (in == NULL) return HV_STATUS_INACTIVE;
    in->PortPartition = PortPartition;
    in->PortId = PortId;
    in->ConnectionPartition = ConnectionPartition;
    in->PortInfo = *PortInfo;
    return status_of(slow(HvCallCreatePort, 0));
}

HV_STATUS HvDeletePort(HV_PARTITION_ID PortPartition, HV_PORT_ID PortId) {
    return fast(HvCallDeletePort, PortPartition, PortId);
}

HV_STATUS HvConnectPort(HV_PARTITION_ID ConnectionPartition, HV_CONNECTION_ID ConnectionId,
                        HV_PARTITION_ID PortPartition, HV_PORT_ID PortId, PCHV_CONNECTION_INFO ConnectionInfo) {
    if (ConnectionInfo == NULL) return HV_STATUS_INVALID_PARAMETER;
    HV_INPUT_CONNECT_PORT* in = INPUT(HV_INPUT_CONNECT_PORT, sizeof(*in));
    if (in == NULL) return HV_STATUS_INACTIVE;
    in->ConnectionPartition = ConnectionPartition;
    in->ConnectionId = ConnectionId;
    in->PortPartition = PortPartition;
    in->PortId = PortId;
    in->ConnectionInfo = *ConnectionInfo;
    return status_of(slow(HvCallConnectPort, 0));
}

HV_STATUS HvDisconnectPort(HV_PARTITION_ID ConnectionPartition, HV_CONNECTION_ID ConnectionId) {
    return fast(HvCallDisconnectPort, ConnectionPartition, ConnectionId);
}

HV_STATUS HvGetPortProperty(HV_PARTITION_ID PartitionId, HV_PORT_ID PortId, HV_PORT_PROPERTY_CODE PropertyCode,
                            PHV_PORT_PROPERTY PropertyValue) {
    if (PropertyValue == NULL) return HV_STATUS_INVALID_PARAMETER;
    HV_INPUT_GET_PORT_PROPERTY* in = INPUT(HV_INPUT_GET_PORT_PROPERTY, sizeof(*in));
    if (in == NULL) return HV_STATUS_INACTIVE;
    in->PartitionId = PartitionId;
    in->PortId = PortId;
    in->PropertyCode = PropertyCode;
    HV_STATUS status = status_of(slow(HvCallGetPortProperty, 0));
    if (status == HV_STATUS_SUCCESS) *PropertyValue = *(HV_PORT_PROPERTY*)hv.output;
    return status;
}

HV_STATUS HvPostMessage(HV_CONNECTION_ID ConnectionId, HV_MESSAGE_TYPE MessageType, UINT32 PayloadSize,
                        PCVOID Message) {
    if (Message == NULL) return HV_STATUS_INVALID_PARAMETER;
    HV_INPUT_POST_MESSAGE* in = INPUT(HV_INPUT_POST_MESSAGE, sizeof(*in));
    if (in == NULL) return HV_STATUS_INACTIVE;
    in->ConnectionId = ConnectionId;
    in->MessageType = MessageType;
    // The server judges PayloadSize (more than 240 is INVALID_PARAMETER); the
    // copy never reads past what the input block can hold.
    in->PayloadSize = PayloadSize;
    memcpy(in->Message, Message, min_u32(PayloadSize, HV_MESSAGE_MAX_PAYLOAD_BYTE_COUNT));
    return status_of(slow(HvCallPostMessage, 0));
}

HV_STATUS HvSignalEvent(HV_CONNECTION_ID ConnectionId, UINT16 FlagNumber) {
    return fast(HvCallSignalEvent, ConnectionId | ((UINT64)FlagNumber << 32), 0);
}

// ---------------------------------------------------------------------------
// Root extensions.

HV_PARTITION_ID HvRootPartitionId(void) { return connect() ? hv.partition_id : HV_PARTITION_ID_INVALID; }

PVOID HvRootAllocatePages(UINT32 PageCount) {
    if (PageCount == 0 || !connect()) return NULL;
    uint64_t bytes = (uint64_t)PageCount * HV_PAGE_SIZE;
    if (bytes > hv.memory_size - hv.memory_used) return NULL;
    void* pages = (void*)(hv.memory_base + hv.memory_used);
    hv.memory_used += bytes;
    return pages;
}

HV_GPA_PAGE_NUMBER HvRootPageNumber(PCVOID Address) { return (uintptr_t)Address >> HV_PAGE_SHIFT; }

PHV_MESSAGE HvRootMessagePage(void) { return connect() ? (PHV_MESSAGE)hv.synic_base : NULL; }

PHV_SYNIC_EVENT_FLAGS HvRootEventFlagsPage(void) {
    return connect() ? (PHV_SYNIC_EVENT_FLAGS)(hv.synic_base + HV_PAGE_SIZE) : NULL;
}

HV_STATUS HvRootWaitForSynic(UINT64 Deadline) {
    if (!connect()) return HV_STATUS_INACTIVE;
    // The channel too: a server that went away never signals again.
    mx_wait_item_t items[2] = {
        {.handle = hv.event, .waitfor = MX_USER_SIGNAL_0, .pending = 0},
        {.handle = hv.channel, .waitfor = MX_CHANNEL_PEER_CLOSED, .pending = 0},
    };
    mx_status_t status = mx_object_wait_many(items, 2, Deadline);
    if (status == MX_ERR_TIMED_OUT) return HV_STATUS_TIME_OUT;
    if (status != MX_OK || !(items[0].pending & MX_USER_SIGNAL_0)) return HV_STATUS_INACTIVE;
    // Cleared before the caller reads the pages: a slot the server fills
    // after this point signals again.
    if (mx_object_signal(hv.event, MX_USER_SIGNAL_0, 0) != MX_OK) return HV_STATUS_INACTIVE;
    return HV_STATUS_SUCCESS;
}

HV_STATUS HvRootEndOfMessage(UINT32 Sint) { return status_of(request(HV_OP_END_OF_MESSAGE, Sint, 0, 0)); }

UINT64 HvRootHypercall(UINT64 Control, UINT64 Input, UINT64 Output) {
    return request(HV_OP_HYPERCALL, Control, Input, Output);
}
