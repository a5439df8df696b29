// c-conformance: the Magenta C API from C, against the sysroot alone.
//
// Each check prints "ok   name" or "FAIL name: why"; the last line is
// "c: N passed, M failed" and the exit code is the number of failures.
// It exercises handles, events, eventpairs, channels (bytes and handle
// transfer), ports (user packets and async waits), VMOs and VMAR mappings,
// object_get_info, and time, through <magenta/syscalls.h> and the vDSO.
#include <stdio.h>
#include <string.h>

#include <magenta/syscalls.h>
#include <magenta/syscalls/object.h>
#include <magenta/syscalls/port.h>
#include <magenta/rights.h>
#include <magenta/types.h>
#include <mxrt.h>

static int passed, failed;

#define CHECK(name, cond)                                                  \
    do {                                                                   \
        if (cond) {                                                        \
            passed++;                                                      \
            printf("ok   %s\n", name);                                     \
        } else {                                                           \
            failed++;                                                      \
            printf("FAIL %s: %s (line %d)\n", name, #cond, __LINE__);      \
        }                                                                  \
    } while (0)

static mx_koid_t koid_of(mx_handle_t h, mx_rights_t* rights) {
    mx_info_handle_basic_t info;
    size_t actual = 0, avail = 0;
    if (mx_object_get_info(h, MX_INFO_HANDLE_BASIC, &info, sizeof(info), &actual, &avail) != MX_OK) return 0;
    if (rights) *rights = info.rights;
    return info.koid;
}

static void handles(void) {
    mx_handle_t event, dup;
    CHECK("event_create", mx_event_create(0, &event) == MX_OK && (event & 1) == 1);
    mx_rights_t rights = 0;
    mx_koid_t koid = koid_of(event, &rights);
    CHECK("event_default_rights", koid != 0 && rights == MX_DEFAULT_EVENT_RIGHTS);
    CHECK("duplicate", mx_handle_duplicate(event, MX_RIGHT_READ, &dup) == MX_OK);
    mx_rights_t dup_rights = 0;
    CHECK("duplicate_same_object", koid_of(dup, &dup_rights) == koid && dup_rights == MX_RIGHT_READ);
    mx_handle_t bad;
    CHECK("duplicate_needs_right", mx_handle_duplicate(dup, MX_RIGHT_READ, &bad) == MX_ERR_ACCESS_DENIED);
    CHECK("close", mx_handle_close(dup) == MX_OK);
    CHECK("close_twice", mx_handle_close(dup) == MX_ERR_BAD_HANDLE);
    CHECK("close_invalid", mx_handle_close(MX_HANDLE_INVALID) == MX_OK);
    mx_signals_t observed = 0;
    CHECK("signal_event", mx_object_signal(event, 0, MX_EVENT_SIGNALED | MX_USER_SIGNAL_0) == MX_OK);
    CHECK("wait_one_signaled", mx_object_wait_one(event, MX_EVENT_SIGNALED, 0, &observed) == MX_OK &&
                                   (observed & MX_USER_SIGNAL_0));
    CHECK("wait_one_timeout", mx_object_wait_one(event, MX_USER_SIGNAL_1, mx_deadline_after(MX_MSEC(1)),
                                                 &observed) == MX_ERR_TIMED_OUT);
    CHECK("signal_bad_bits", mx_object_signal(event, 0, MX_CHANNEL_READABLE) == MX_ERR_INVALID_ARGS);
    mx_handle_close(event);
}

static void eventpairs(void) {
    mx_handle_t a, b;
    CHECK("eventpair_create", mx_eventpair_create(0, &a, &b) == MX_OK);
    CHECK("eventpair_options", mx_eventpair_create(1, &a, &b) == MX_ERR_NOT_SUPPORTED);
    CHECK("signal_peer", mx_object_signal_peer(a, 0, MX_USER_SIGNAL_2) == MX_OK);
    mx_signals_t observed = 0;
    CHECK("peer_sees_signal", mx_object_wait_one(b, MX_USER_SIGNAL_2, 0, &observed) == MX_OK);
    mx_handle_close(a);
    CHECK("peer_closed", mx_object_wait_one(b, MX_EPAIR_PEER_CLOSED, 0, &observed) == MX_OK);
    CHECK("signal_closed_peer", mx_object_signal_peer(b, 0, MX_USER_SIGNAL_0) == MX_ERR_PEER_CLOSED);
    mx_handle_close(b);
}

static void channels(void) {
    mx_handle_t a, b, event;
    CHECK("channel_create", mx_channel_create(0, &a, &b) == MX_OK);
    mx_rights_t rights = 0;
    CHECK("channel_rights", koid_of(a, &rights) != 0 && rights == MX_DEFAULT_CHANNEL_RIGHTS);
    mx_event_create(0, &event);
    mx_koid_t event_koid = koid_of(event, NULL);
    const char msg[] = "hello over a channel";
    CHECK("channel_write", mx_channel_write(a, 0, msg, sizeof(msg), &event, 1) == MX_OK);
    CHECK("sent_handle_gone", mx_handle_close(event) == MX_ERR_BAD_HANDLE);
    char buf[64];
    mx_handle_t got = MX_HANDLE_INVALID;
    uint32_t bytes = 0, count = 0;
    CHECK("channel_read_too_small",
          mx_channel_read(b, 0, buf, &got, 4, 1, &bytes, &count) == MX_ERR_BUFFER_TOO_SMALL && bytes == sizeof(msg));
    CHECK("channel_read", mx_channel_read(b, 0, buf, &got, sizeof(buf), 1, &bytes, &count) == MX_OK &&
                              bytes == sizeof(msg) && count == 1 && memcmp(buf, msg, sizeof(msg)) == 0);
    CHECK("received_handle", koid_of(got, NULL) == event_koid);
    CHECK("channel_empty", mx_channel_read(b, 0, buf, NULL, sizeof(buf), 0, &bytes, &count) == MX_ERR_SHOULD_WAIT);
    CHECK("channel_too_many_bytes", mx_channel_write(a, 0, buf, 65537, NULL, 0) == MX_ERR_OUT_OF_RANGE);
    mx_handle_close(a);
    CHECK("channel_peer_closed", mx_channel_write(b, 0, msg, 1, NULL, 0) == MX_ERR_PEER_CLOSED);
    mx_handle_close(b);
    mx_handle_close(got);
}

static void ports(void) {
    mx_handle_t port, event;
    CHECK("port_create", mx_port_create(0, &port) == MX_OK);
    mx_port_packet_t packet;
    memset(&packet, 0, sizeof(packet));
    packet.key = 42;
    packet.type = MX_PKT_TYPE_SIGNAL_ONE;  // forced to USER by the kernel
    packet.user.u64[0] = 0x1122334455667788ull;
    CHECK("port_queue", mx_port_queue(port, &packet, 0) == MX_OK);
    CHECK("port_queue_size", mx_port_queue(port, &packet, 48) == MX_ERR_INVALID_ARGS);
    mx_port_packet_t out;
    CHECK("port_wait", mx_port_wait(port, 0, &out, 0) == MX_OK && out.key == 42 && out.type == MX_PKT_TYPE_USER &&
                           out.user.u64[0] == 0x1122334455667788ull);
    CHECK("port_wait_timeout", mx_port_wait(port, mx_deadline_after(MX_MSEC(1)), &out, 0) == MX_ERR_TIMED_OUT);
    mx_event_create(0, &event);
    CHECK("wait_async", mx_object_wait_async(event, port, 7, MX_USER_SIGNAL_3, MX_WAIT_ASYNC_ONCE) == MX_OK);
    mx_object_signal(event, 0, MX_USER_SIGNAL_3);
    CHECK("signal_packet", mx_port_wait(port, 0, &out, 0) == MX_OK && out.key == 7 &&
                               out.type == MX_PKT_TYPE_SIGNAL_ONE && (out.signal.trigger & MX_USER_SIGNAL_3) &&
                               (out.signal.observed & MX_USER_SIGNAL_3) && out.signal.count == 1);
    CHECK("port_not_waitable", mx_object_wait_one(port, MX_USER_SIGNAL_0, 0, NULL) == MX_ERR_NOT_SUPPORTED);
    mx_handle_close(event);
    mx_handle_close(port);
}

static void vmos(void) {
    mx_handle_t vmo;
    CHECK("vmo_create", mx_vmo_create(3 * 4096, 0, &vmo) == MX_OK);
    uint64_t size = 0;
    CHECK("vmo_get_size", mx_vmo_get_size(vmo, &size) == MX_OK && size == 3 * 4096);
    const char text[] = "written with vmo_write";
    size_t actual = 0;
    CHECK("vmo_write", mx_vmo_write(vmo, text, 4096 + 100, sizeof(text), &actual) == MX_OK && actual == sizeof(text));
    uintptr_t addr = 0;
    CHECK("vmar_map", mx_vmar_map(mx_vmar_root_self(), 0, vmo, 0, 3 * 4096,
                                  MX_VM_FLAG_PERM_READ | MX_VM_FLAG_PERM_WRITE, &addr) == MX_OK);
    const char* mapped = (const char*)addr;
    CHECK("mapping_sees_write", addr != 0 && memcmp(mapped + 4096 + 100, text, sizeof(text)) == 0);
    CHECK("mapping_zero_filled", mapped[0] == 0 && mapped[3 * 4096 - 1] == 0);
    ((char*)addr)[2 * 4096] = 'x';
    char back = 0;
    CHECK("vmo_read_sees_store", mx_vmo_read(vmo, &back, 2 * 4096, 1, &actual) == MX_OK && back == 'x');
    CHECK("vmo_read_past_end", mx_vmo_read(vmo, &back, 4 * 4096, 1, &actual) == MX_ERR_OUT_OF_RANGE);
    CHECK("vmar_unmap", mx_vmar_unmap(mx_vmar_root_self(), addr, 3 * 4096) == MX_OK);
    CHECK("vmo_bad_pointer", mx_vmo_read(vmo, (void*)0x10, 0, 16, &actual) == MX_ERR_INVALID_ARGS);
    mx_handle_close(vmo);
}

static void time(void) {
    mx_time_t a = mx_time_get(MX_CLOCK_MONOTONIC);
    CHECK("nanosleep", mx_nanosleep(mx_deadline_after(MX_MSEC(2))) == MX_OK);
    mx_time_t b = mx_time_get(MX_CLOCK_MONOTONIC);
    CHECK("monotonic_advances", b >= a + MX_MSEC(2));
    CHECK("unknown_clock_is_zero", mx_time_get(99) == 0);
    CHECK("ticks", mx_ticks_per_second() > 0 && mx_ticks_get() > 0);
    CHECK("cpus", mx_system_get_num_cpus() >= 1);
}

int main(void) {
    handles();
    eventpairs();
    channels();
    ports();
    vmos();
    time();
    printf("c: %d passed, %d failed\n", passed, failed);
    return failed;
}
