//! THE syscall table: every syscall of contract §3, in sysgen order, then
//! magnetar's additions (numbered after them), declared once. Kernel dispatch, the userspace bindings, the C prototypes and the
//! reference docs are generated from it by `abigen`.
//!
//! Entry syntax (see the `syscalls!` macro): `syscall NUMBER name [attributes] "TAG"
//! (arguments) -> return { errors in check order }`. `NUMBER` is the kernel
//! number, or `vdso` for calls implemented only in the vDSO. A handle
//! argument's rights are those its *lookup* checks (so a missing right gives
//! `ACCESS_DENIED` before `WRONG_TYPE`); rights checked later, or that depend
//! on other arguments, are in the doc and the error list. Error lists come
//! from contract §5; an empty list means the contract does not document the
//! call's errors.

syscalls! {
    // ----------------------------------------------------------------- time

    /// Reads a clock: MONOTONIC (ns since boot), UTC (monotonic plus the
    /// `mx_clock_adjust` offset) or THREAD (the caller's run time).
    /// An unknown `clock_id` reads 0; there is no error path.
    syscall 0 time_get "T" (clock_id: uint32_t) -> mx_time_t {}

    /// Sleeps until `deadline` (absolute, monotonic). A deadline of 0 only
    /// yields the CPU. Returns `MX_OK`.
    syscall 1 nanosleep [blocking] "T" (deadline: mx_time_t) -> mx_status_t {}

    /// Reads the CPU tick counter (`rdtsc`).
    syscall vdso ticks_get "T" () -> uint64_t {}

    /// The tick counter's frequency.
    syscall vdso ticks_per_second [constant] "T" () -> uint64_t {}

    /// `nanoseconds` from now: `mx_time_get(MX_CLOCK_MONOTONIC) + nanoseconds`,
    /// with no saturation (a huge value wraps).
    syscall vdso deadline_after "T" (nanoseconds: mx_duration_t) -> mx_time_t {}

    /// Sets the UTC clock's offset from the monotonic clock. Needs the root
    /// resource.
    syscall 2 clock_adjust "T*" (handle: handle(Resource; NONE), clock_id: uint32_t, offset: int64_t) -> mx_status_t {}

    // ----------------------------------------------------------- system info

    /// The number of CPUs.
    syscall vdso system_get_num_cpus [constant] "T*" () -> uint32_t {}

    /// Copies the kernel version string into `version`.
    syscall vdso system_get_version "–" (version: out(char[version_len]), version_len: uint32_t) -> mx_status_t {}

    /// The amount of physical memory in bytes.
    syscall vdso system_get_physmem "–" () -> uint64_t {}

    /// Flushes CPU caches for a range (`MX_CACHE_FLUSH_INSN`, `_DATA`).
    syscall vdso cache_flush "–" (addr: in(void[len]), len: size_t, options: uint32_t) -> mx_status_t {}

    // --------------------------------------------------------------- handles

    /// Closes a handle; when it was the object's last handle the object is
    /// destroyed. Closing `MX_HANDLE_INVALID` returns `MX_OK`. Waits using the
    /// handle end with `MX_ERR_CANCELED`; its async waits are removed (packets
    /// already queued stay). `MX_SIGNAL_LAST_HANDLE` is recomputed.
    syscall 3 handle_close "H" (handle: handle(any; NONE) optional release) -> mx_status_t {
        BadHandle("not a handle of the caller"),
    }

    /// Creates a second handle to the same object with `rights`: the source's
    /// rights for `MX_RIGHT_SAME_RIGHTS`, else a subset of them (0 allowed).
    syscall 4 handle_duplicate "H" (handle: handle(any; DUPLICATE), rights: mx_rights_t, out: handle_out) -> mx_status_t {
        BadHandle,
        AccessDenied("the handle lacks DUPLICATE"),
        InvalidArgs("`rights` is not a subset of the handle's"),
        NoMemory,
        InvalidArgs("`out` cannot be written; no handle is created"),
    }

    /// Replaces a handle by one with `rights` (as for duplicate; no right
    /// needed). The source handle is consumed even when the call fails, and
    /// `*out` is then `MX_HANDLE_INVALID` (project decision 8).
    syscall 5 handle_replace "H" (handle: handle(any; NONE) release, rights: mx_rights_t, out: handle_out) -> mx_status_t {
        BadHandle,
        InvalidArgs("`rights` is not a subset of the handle's"),
        NoMemory,
        InvalidArgs("`out` cannot be written"),
    }

    // --------------------------------------------------------------- objects

    /// Waits until any bit of `waitfor` is asserted on the object (also when
    /// `deadline` already passed but the signal is set), or the deadline
    /// passes. `*observed` gets the signals at the end, on timeout too.
    syscall 6 object_wait_one [blocking] "W" (
        handle: handle(any; READ),
        waitfor: mx_signals_t,
        deadline: mx_time_t,
        observed: out(mx_signals_t) optional,
    ) -> mx_status_t {
        BadHandle,
        AccessDenied("the handle lacks READ"),
        NotSupported("the object is not waitable"),
        TimedOut,
        InvalidArgs("`observed` cannot be written"),
        Canceled("the handle was closed during the wait; `observed` has MX_SIGNAL_HANDLE_CLOSED"),
    }

    /// Waits on up to 1024 handles at once; every item needs READ. `pending`
    /// is written back for all items. With `count == 0` it sleeps until the
    /// deadline and returns `MX_ERR_TIMED_OUT`.
    syscall 7 object_wait_many [blocking] "W" (
        items: inout(mx_wait_item_t[count]),
        count: uint32_t,
        deadline: mx_time_t,
    ) -> mx_status_t {
        InvalidArgs("`items` is NULL or `count > 1024`"),
        NoMemory,
        InvalidArgs("`items` cannot be read"),
        BadHandle("an item's handle, in array order"),
        AccessDenied("an item's handle lacks READ"),
        NotSupported("an item's object is not waitable"),
        TimedOut,
        InvalidArgs("the write-back of `pending` faults"),
        Canceled("a handle was closed during the wait"),
    }

    /// Registers an asynchronous wait: when any of `signals` is asserted on
    /// `handle`'s object, a signal packet with `key` is queued on the port (at
    /// once if one already is). `MX_WAIT_ASYNC_ONCE` queues one
    /// `MX_PKT_TYPE_SIGNAL_ONE` packet; any other `options` value repeats
    /// (`SIGNAL_REP`) until cancelled or the handle is closed. The port is
    /// looked up first.
    syscall 8 object_wait_async "W,Q" (
        handle: handle(any; READ),
        port_handle: handle(Port; WRITE),
        key: uint64_t,
        signals: mx_signals_t,
        options: uint32_t,
    ) -> mx_status_t {
        BadHandle("`port_handle`"),
        AccessDenied("`port_handle` lacks WRITE"),
        WrongType("`port_handle` is not a port"),
        BadHandle("`handle`"),
        AccessDenied("`handle` lacks READ"),
        NotSupported("the object is not waitable"),
        NoMemory,
    }

    /// Clears `clear_mask`, then sets `set_mask` on the object. Allowed bits:
    /// `MX_USER_SIGNAL_ALL`, plus `MX_EVENT_SIGNALED` on events and eventpairs.
    syscall 9 object_signal "W,E" (handle: handle(any; SIGNAL), clear_mask: uint32_t, set_mask: uint32_t) -> mx_status_t {
        BadHandle,
        AccessDenied("the handle lacks SIGNAL"),
        NotSupported("the object is not waitable"),
        InvalidArgs("a mask has bits that are not allowed"),
    }

    /// As `mx_object_signal`, on the opposite end of a channel, eventpair,
    /// socket or FIFO.
    syscall 10 object_signal_peer "W,E" (handle: handle(any; SIGNAL_PEER), clear_mask: uint32_t, set_mask: uint32_t) -> mx_status_t {
        BadHandle,
        AccessDenied("the handle lacks SIGNAL_PEER"),
        NotSupported("the object is not waitable or has no peer"),
        InvalidArgs("a mask has bits that are not allowed"),
        PeerClosed("the other end is gone"),
    }

    /// Reads a property (`MX_PROP_*`) into `value`.
    syscall 11 object_get_property "P*" (
        handle: handle(any; GET_PROPERTY),
        property: uint32_t,
        value: out(void[size]),
        size: size_t,
    ) -> mx_status_t {}

    /// Sets a property (`MX_PROP_*`) from `value`.
    syscall 12 object_set_property "P*" (
        handle: handle(any; SET_PROPERTY),
        property: uint32_t,
        value: in(void[size]),
        size: size_t,
    ) -> mx_status_t {}

    /// Attaches a cookie to an object, scoped by another object.
    syscall 13 object_set_cookie "–" (handle: handle(any; NONE), scope: handle(any; NONE), cookie: uint64_t) -> mx_status_t {}

    /// Reads a cookie set with `mx_object_set_cookie`.
    syscall 14 object_get_cookie "–" (handle: handle(any; NONE), scope: handle(any; NONE), cookie: out(uint64_t)) -> mx_status_t {}

    /// Reads information about an object; `topic` (an `mx_object_info_topic_t`)
    /// decides the record, the object type and the right needed. A
    /// single-record topic copies the record if it fits (`*actual = *avail =
    /// 1`); an array topic copies `min(n, buffer_size / elem)` records,
    /// `*actual` = copied, `*avail` = n, and returns `MX_OK` even if truncated.
    /// `MX_INFO_HANDLE_VALID` never touches `buffer`.
    syscall 15 object_get_info "H" (
        handle: handle(any; NONE),
        topic: uint32_t,
        buffer: out(void[buffer_size]),
        buffer_size: size_t,
        actual_count: out(size_t) optional,
        avail_count: out(size_t) optional,
    ) -> mx_status_t {
        NotSupported("unknown topic (checked before the handle)"),
        BadHandle,
        AccessDenied("the handle lacks the topic's right"),
        WrongType("the object is not of the topic's type"),
        BufferTooSmall("a single-record topic's record does not fit; `*actual` = 0, `*avail` = 1"),
        InvalidArgs("`buffer`, `actual_count` or `avail_count` cannot be written"),
        AccessDenied("MX_INFO_PROCESS_MAPS or _VMOS on the caller's own process"),
        BadState("an exception report with no exception pending, or stats of a process that is not running"),
        NoMemory,
    }

    /// Gets a handle to a child (by koid) of a job or process.
    syscall 16 object_get_child "–" (handle: handle(any; NONE), koid: uint64_t, rights: mx_rights_t, out: handle_out) -> mx_status_t {}

    // -------------------------------------------------------------- channels

    /// Creates a channel: two ends, each with rights 0x300e (no DUPLICATE)
    /// and `MX_CHANNEL_WRITABLE` asserted.
    syscall 17 channel_create "C" (options: uint32_t, out0: handle_out, out1: handle_out) -> mx_status_t {
        InvalidArgs("`options != 0`"),
        AccessDenied("job policy MX_POL_NEW_CHANNEL denies it"),
        NoMemory,
        InvalidArgs("`out0` or `out1` cannot be written"),
    }

    /// Reads one whole message: bytes first, then handles, which join the
    /// caller's table with the rights they were sent with. Reading the last
    /// queued message clears `MX_CHANNEL_READABLE`. Options: 0 or
    /// `MX_CHANNEL_READ_MAY_DISCARD`.
    syscall 18 channel_read "C" (
        handle: handle(Channel; READ),
        options: uint32_t,
        bytes: out(void[num_bytes]),
        handles: handle_out[num_handles],
        num_bytes: uint32_t,
        num_handles: uint32_t,
        actual_bytes: out(uint32_t) optional,
        actual_handles: out(uint32_t) optional,
    ) -> mx_status_t {
        BadHandle,
        AccessDenied("the handle lacks READ"),
        WrongType,
        NotSupported("unknown option bits (checked after the handle)"),
        ShouldWait("no message queued and the peer is open"),
        PeerClosed("no message queued and the peer is closed"),
        BufferTooSmall("the message does not fit; `*actual_*` get the sizes needed; it stays queued unless MAY_DISCARD"),
        InvalidArgs("`actual_*` or `bytes` cannot be written (the message is lost)"),
    }

    /// Writes a message. The handles sent need TRANSFER and leave the caller
    /// on success only. The first 4 bytes are the transaction id.
    syscall 19 channel_write "C" (
        handle: handle(Channel; WRITE),
        options: uint32_t,
        bytes: in(void[num_bytes]),
        num_bytes: uint32_t,
        handles: in(mx_handle_t[num_handles]) release,
        num_handles: uint32_t,
    ) -> mx_status_t {
        InvalidArgs("`options != 0`"),
        BadHandle,
        AccessDenied("the handle lacks WRITE"),
        WrongType,
        OutOfRange("`num_bytes > 65536` or `num_handles > 64`"),
        NoMemory,
        InvalidArgs("`bytes` or `handles` cannot be read"),
        BadHandle("a handle sent is not the caller's"),
        NotSupported("a handle sent is the channel end being written"),
        AccessDenied("a handle sent lacks TRANSFER"),
        InvalidArgs("a handle is sent twice"),
        PeerClosed,
    }

    /// vDSO-private first half of `mx_channel_call`: writes and waits.
    syscall 20 channel_call_noretry [internal] "C (internal)" (
        handle: handle(Channel; READ | WRITE),
        options: uint32_t,
        deadline: mx_time_t,
        args: in(mx_channel_call_args_t),
        actual_bytes: out(uint32_t),
        actual_handles: out(uint32_t),
        read_status: out(mx_status_t) optional,
    ) -> mx_status_t {}

    /// vDSO-private second half of `mx_channel_call`: resumes the wait after
    /// `*read_status` was `MX_ERR_INTERNAL_INTR_RETRY`.
    syscall 21 channel_call_finish [internal] "C (internal)" (
        deadline: mx_time_t,
        args: in(mx_channel_call_args_t),
        actual_bytes: out(uint32_t),
        actual_handles: out(uint32_t),
        read_status: out(mx_status_t) optional,
    ) -> mx_status_t {}

    /// Writes a message as `mx_channel_write` would, then waits for the reply
    /// with the same transaction id, which goes straight to the caller. A reply
    /// after the deadline is queued normally. One call per thread at a time.
    syscall vdso channel_call "C" (
        handle: handle(Channel; READ | WRITE),
        options: uint32_t,
        deadline: mx_time_t,
        args: in(mx_channel_call_args_t),
        actual_bytes: out(uint32_t),
        actual_handles: out(uint32_t),
        read_status: out(mx_status_t) optional,
    ) -> mx_status_t {
        InvalidArgs("`args` cannot be read, or `options != 0`"),
        BadHandle,
        AccessDenied("the handle lacks READ or WRITE"),
        WrongType,
        OutOfRange("write phase: too many bytes or handles"),
        NoMemory("write phase"),
        InvalidArgs("write phase: `wr_bytes` or `wr_handles` cannot be read"),
        BadHandle("write phase: a handle sent is not the caller's"),
        NotSupported("write phase: a handle sent is the channel end itself"),
        AccessDenied("write phase: a handle sent lacks TRANSFER"),
        InvalidArgs("write phase: a handle is sent twice"),
        PeerClosed("write phase"),
        TimedOut("no reply by the deadline (the handles were sent)"),
        CallFailed("`*read_status` says why: PEER_CLOSED, CANCELED, BUFFER_TOO_SMALL (reply discarded) or INVALID_ARGS"),
    }

    // --------------------------------------------------------------- sockets

    /// Creates a socket pair.
    syscall 22 socket_create "–" (options: uint32_t, out0: handle_out, out1: handle_out) -> mx_status_t {}

    /// Writes to a socket.
    syscall 23 socket_write "–" (
        handle: handle(Socket; WRITE),
        options: uint32_t,
        buffer: in(void[size]),
        size: size_t,
        actual: out(size_t) optional,
    ) -> mx_status_t {}

    /// Reads from a socket.
    syscall 24 socket_read "–" (
        handle: handle(Socket; READ),
        options: uint32_t,
        buffer: out(void[size]),
        size: size_t,
        actual: out(size_t) optional,
    ) -> mx_status_t {}

    // --------------------------------------------------------------- threads

    /// Ends the calling thread and asserts `MX_THREAD_TERMINATED`.
    syscall 25 thread_exit [noreturn] "P" () -> void {}

    /// Creates a thread in a process (rights 0x12cf). A name longer than 32
    /// bytes is cut to 32, and its last byte is forced to NUL.
    syscall 26 thread_create "P" (
        process: handle(Process; WRITE),
        name: in(char[name_len]),
        name_len: uint32_t,
        options: uint32_t,
        out: handle_out,
    ) -> mx_status_t {
        InvalidArgs("`options != 0`"),
        InvalidArgs("`name` is NULL or cannot be read"),
        BadHandle,
        AccessDenied("the process handle lacks WRITE"),
        WrongType,
        BadState("the process has exited or is being killed"),
        NoMemory,
        InvalidArgs("`out` cannot be written"),
    }

    /// Starts a thread of a running process: `rip = thread_entry`, `rsp =
    /// stack`, `rdi = arg1`, `rsi = arg2`.
    syscall 27 thread_start "P" (
        handle: handle(Thread; WRITE),
        thread_entry: uintptr_t,
        stack: uintptr_t,
        arg1: uintptr_t,
        arg2: uintptr_t,
    ) -> mx_status_t {
        BadHandle,
        AccessDenied("the handle lacks WRITE"),
        WrongType,
        BadState("already started, or the process is not running (use mx_process_start first)"),
    }

    /// Reads a register set (`MX_THREAD_STATE_*`) of a stopped thread.
    syscall 28 thread_read_state "P*" (
        handle: handle(Thread; READ),
        kind: uint32_t,
        buffer: out(void[len]),
        len: uint32_t,
        actual: out(uint32_t),
    ) -> mx_status_t {}

    /// Writes a register set of a stopped thread.
    syscall 29 thread_write_state "P*" (
        handle: handle(Thread; WRITE),
        kind: uint32_t,
        buffer: in(void[buffer_len]),
        buffer_len: uint32_t,
    ) -> mx_status_t {}

    /// Experimental; going away.
    syscall 30 thread_set_priority "–" (prio: int32_t) -> mx_status_t {}

    // ------------------------------------------------------------- processes

    /// Ends the calling process: records `retcode` (unless an exit is under
    /// way), kills every thread, then asserts `MX_PROCESS_TERMINATED`.
    syscall 31 process_exit [noreturn] "P" (retcode: int) -> void {}

    /// Creates a process in a job (rights 0x13cf) and its root VMAR (rights
    /// 0x1f, the whole user address space). It has no threads yet. Names are
    /// cut as for `mx_thread_create`.
    syscall 32 process_create "P" (
        job: handle(Job; WRITE),
        name: in(char[name_len]),
        name_len: uint32_t,
        options: uint32_t,
        proc_handle: handle_out,
        vmar_handle: handle_out,
    ) -> mx_status_t {
        InvalidArgs("`options != 0`"),
        InvalidArgs("`name` is NULL or cannot be read"),
        BadHandle,
        AccessDenied("the job handle lacks WRITE"),
        WrongType,
        NoMemory,
        BadState("the job is being killed"),
        InvalidArgs("an out-pointer cannot be written"),
    }

    /// Starts a new process's first thread: `rip = entry`, `rsp = stack`, `rdi`
    /// = `arg_handle`'s value in the new process (the handle moves there;
    /// it comes back if the start fails), `rsi = arg2`.
    syscall 33 process_start "P" (
        process_handle: handle(Process; WRITE),
        thread_handle: handle(Thread; WRITE),
        entry: uintptr_t,
        stack: uintptr_t,
        arg_handle: handle(any; TRANSFER) release,
        arg2: uintptr_t,
    ) -> mx_status_t {
        BadHandle("`process_handle`"),
        AccessDenied("`process_handle` lacks WRITE"),
        WrongType("`process_handle` is not a process"),
        BadHandle("`thread_handle`"),
        AccessDenied("`thread_handle` lacks WRITE"),
        WrongType("`thread_handle` is not a thread"),
        AccessDenied("the thread belongs to another process"),
        BadHandle("`arg_handle`"),
        AccessDenied("`arg_handle` lacks TRANSFER"),
        BadState("the thread was already started, or the process is not in its initial state"),
    }

    /// Reads another process's memory.
    syscall 34 process_read_memory "–" (
        proc: handle(Process; READ | WRITE),
        vaddr: uintptr_t,
        buffer: out(void[len]),
        len: size_t,
        actual: out(size_t),
    ) -> mx_status_t {}

    /// Writes another process's memory.
    syscall 35 process_write_memory "–" (
        proc: handle(Process; WRITE),
        vaddr: uintptr_t,
        buffer: in(void[len]),
        len: size_t,
        actual: out(size_t),
    ) -> mx_status_t {}

    // ------------------------------------------------------------------ jobs

    /// Creates a child job.
    syscall 36 job_create "P*" (parent_job: handle(Job; WRITE), options: uint32_t, out: handle_out) -> mx_status_t {}

    /// Sets job policy: `count` entries of the topic's record
    /// (`mx_policy_basic_t` for `MX_JOB_POL_BASIC`).
    syscall 37 job_set_policy "–" (
        job: handle(Job; SET_POLICY),
        options: uint32_t,
        topic: uint32_t,
        policy: in(void[count]),
        count: uint32_t,
    ) -> mx_status_t {}

    // ----------------------------------------------------------------- tasks

    /// Binds (or, with `MX_HANDLE_INVALID`, unbinds) an exception port of a
    /// task, or the system's when `object` is `MX_HANDLE_INVALID`.
    syscall 38 task_bind_exception_port "–" (
        object: handle(Process | Thread | Job; NONE) optional,
        eport: handle(Port; NONE) optional,
        key: uint64_t,
        options: uint32_t,
    ) -> mx_status_t {}

    /// Suspends a thread.
    syscall 39 task_suspend "–" (task_handle: handle(Thread; WRITE)) -> mx_status_t {}

    /// Resumes a suspended thread or one stopped in an exception.
    syscall 40 task_resume "–" (task_handle: handle(Thread; NONE), options: uint32_t) -> mx_status_t {}

    /// Kills a process, thread or job. A killed process reports return code
    /// -1. Killing yourself does not return.
    syscall 41 task_kill "P" (task_handle: handle(Process | Thread | Job; DESTROY)) -> mx_status_t {
        BadHandle,
        AccessDenied("the handle lacks DESTROY"),
        WrongType("not a process, thread or job"),
    }

    // -------------------------------------------------------- synchronization

    /// Creates an event (rights 0x100f, no signal asserted).
    syscall 42 event_create "E" (options: uint32_t, out: handle_out) -> mx_status_t {
        InvalidArgs("`options != 0`"),
        AccessDenied("job policy MX_POL_NEW_EVENT denies it"),
        NoMemory,
        InvalidArgs("`out` cannot be written"),
    }

    /// Creates an eventpair (rights 0x300f each). When one end's last handle
    /// closes, the other gets `MX_EPAIR_PEER_CLOSED`.
    syscall 43 eventpair_create "E" (options: uint32_t, out0: handle_out, out1: handle_out) -> mx_status_t {
        NotSupported("`options != 0` (not INVALID_ARGS)"),
        AccessDenied("job policy MX_POL_NEW_EVPAIR denies it"),
        NoMemory,
        InvalidArgs("`out0` or `out1` cannot be written"),
    }

    /// Waits on a futex while `*value_ptr == current_value`.
    syscall 44 futex_wait [blocking] "P*" (value_ptr: inout(mx_futex_t), current_value: int, deadline: mx_time_t) -> mx_status_t {}

    /// Wakes up to `count` waiters of a futex.
    syscall 45 futex_wake "P*" (value_ptr: in(mx_futex_t), count: uint32_t) -> mx_status_t {}

    /// Wakes `wake_count` waiters and moves up to `requeue_count` others to
    /// another futex, if `*wake_ptr == current_value`.
    syscall 46 futex_requeue "P*" (
        wake_ptr: inout(mx_futex_t),
        wake_count: uint32_t,
        current_value: int,
        requeue_ptr: inout(mx_futex_t),
        requeue_count: uint32_t,
    ) -> mx_status_t {}

    // ----------------------------------------------------------------- ports

    /// Creates a port (rights 0x000f). Ports are not waitable.
    syscall 47 port_create "Q" (options: uint32_t, out: handle_out) -> mx_status_t {
        InvalidArgs("`options != 0`"),
        AccessDenied("job policy MX_POL_NEW_PORT denies it"),
        NoMemory,
        InvalidArgs("`out` cannot be written"),
    }

    /// Queues a user packet: the kernel reads all 48 bytes of
    /// `mx_port_packet_t`, keeps key, status and payload, and sets the type to
    /// `MX_PKT_TYPE_USER`. `size` must be 0. User packets come from one
    /// system-wide pool of 16384.
    syscall 48 port_queue "Q" (handle: handle(Port; WRITE), packet: in(void[?]), size: size_t) -> mx_status_t {
        InvalidArgs("`size != 0` (checked before the handle)"),
        BadHandle,
        AccessDenied("the handle lacks WRITE"),
        WrongType,
        InvalidArgs("`packet` cannot be read"),
        NoMemory("the packet pool is exhausted"),
        BadState("the port has no handles left"),
    }

    /// Dequeues the oldest packet into `packet` (48 bytes), waiting until
    /// `deadline`. `size` must be 0. Each packet wakes one waiter.
    syscall 49 port_wait [blocking] "Q" (handle: handle(Port; READ), deadline: mx_time_t, packet: out(void[?]), size: size_t) -> mx_status_t {
        InvalidArgs("`size != 0` (checked before the handle)"),
        BadHandle,
        AccessDenied("the handle lacks READ"),
        WrongType,
        TimedOut,
        InvalidArgs("`packet` cannot be written (the packet is lost)"),
    }

    /// Removes the async waits registered through `source` with `key`, and
    /// their queued packets.
    syscall 50 port_cancel "Q" (handle: handle(Port; WRITE), source: handle(any; READ), key: uint64_t) -> mx_status_t {
        BadHandle("`handle`"),
        AccessDenied("`handle` lacks WRITE"),
        WrongType("`handle` is not a port"),
        BadHandle("`source`"),
        AccessDenied("`source` lacks READ"),
        NotSupported("`source`'s object is not waitable"),
        NotFound("no registration or queued packet matched"),
    }

    // ---------------------------------------------------------------- timers

    /// Creates a timer (rights 0x100f) on the monotonic clock; `options` is
    /// an `MX_TIMER_SLACK_*` value.
    syscall 51 timer_create "T" (options: uint32_t, clock_id: uint32_t, out: handle_out) -> mx_status_t {
        InvalidArgs("`clock_id != MX_CLOCK_MONOTONIC`"),
        AccessDenied("job policy MX_POL_NEW_TIMER denies it"),
        InvalidArgs("`options > 2`"),
        NoMemory,
        InvalidArgs("`out` cannot be written"),
    }

    /// Arms a timer, cancelling any pending deadline; 0 or a past deadline
    /// asserts `MX_TIMER_SIGNALED` at once. It may fire within `slack` as the
    /// creation option allows.
    syscall 52 timer_set "T" (handle: handle(Timer; WRITE), deadline: mx_time_t, slack: mx_duration_t) -> mx_status_t {
        BadHandle,
        AccessDenied("the handle lacks WRITE"),
        WrongType,
    }

    /// Disarms a timer and clears `MX_TIMER_SIGNALED`.
    syscall 53 timer_cancel "T" (handle: handle(Timer; WRITE)) -> mx_status_t {
        BadHandle,
        AccessDenied("the handle lacks WRITE"),
        WrongType,
    }

    // ------------------------------------------------------------------ VMOs

    /// Creates a VMO of exactly `size` bytes (not rounded; rights 0x10ff).
    /// Pages are committed on demand and zero-filled.
    syscall 54 vmo_create "V" (size: uint64_t, options: uint32_t, out: handle_out) -> mx_status_t {
        InvalidArgs("`options != 0`"),
        AccessDenied("job policy MX_POL_NEW_VMO denies it"),
        InvalidArgs("`size > ROUNDDOWN(UINT64_MAX, 4096)`"),
        NoMemory,
        InvalidArgs("`out` cannot be written"),
    }

    /// Reads from a VMO; `len` is trimmed to `size - offset` (`offset == size`
    /// reads 0 bytes). `*actual` gets the bytes moved; `actual` is required.
    syscall 55 vmo_read "V" (
        handle: handle(Vmo; READ),
        data: out(void[len]),
        offset: uint64_t,
        len: size_t,
        actual: out(size_t),
    ) -> mx_status_t {
        BadHandle,
        AccessDenied("the handle lacks READ"),
        WrongType,
        InvalidArgs("`data` cannot be written"),
        OutOfRange("`offset > size`, or `offset + len` overflows"),
        NoMemory,
        InvalidArgs("`actual` cannot be written"),
    }

    /// Writes to a VMO; trimmed as `mx_vmo_read`.
    syscall 56 vmo_write "V" (
        handle: handle(Vmo; WRITE),
        data: in(void[len]),
        offset: uint64_t,
        len: size_t,
        actual: out(size_t),
    ) -> mx_status_t {
        BadHandle,
        AccessDenied("the handle lacks WRITE"),
        WrongType,
        InvalidArgs("`data` cannot be read"),
        OutOfRange("`offset > size`, or `offset + len` overflows"),
        NoMemory,
        InvalidArgs("`actual` cannot be written"),
    }

    /// Reads a VMO's size. No right needed.
    syscall 57 vmo_get_size "V" (handle: handle(Vmo; NONE), size: out(uint64_t)) -> mx_status_t {
        BadHandle,
        WrongType,
        InvalidArgs("`size` cannot be written"),
    }

    /// Resizes a VMO; shrinking frees whole pages past the end and unmaps them.
    syscall 58 vmo_set_size "V" (handle: handle(Vmo; WRITE), size: uint64_t) -> mx_status_t {
        BadHandle,
        AccessDenied("the handle lacks WRITE"),
        WrongType,
        OutOfRange("`size > ROUNDDOWN(UINT64_MAX, 4096)`"),
        BadState("pages to be freed are pinned"),
        NoMemory,
    }

    /// Performs `op` (an `MX_VMO_OP_*`) on a range; the rights needed depend
    /// on `op`.
    syscall 59 vmo_op_range "V*" (
        handle: handle(Vmo; NONE),
        op: uint32_t,
        offset: uint64_t,
        size: uint64_t,
        buffer: inout(void[buffer_size]),
        buffer_size: size_t,
    ) -> mx_status_t {}

    /// Creates a copy-on-write clone of a range of a VMO.
    syscall 60 vmo_clone "V*" (
        handle: handle(Vmo; DUPLICATE | READ),
        options: uint32_t,
        offset: uint64_t,
        size: uint64_t,
        out: handle_out,
    ) -> mx_status_t {}

    /// Sets the cache policy of a VMO with no pages committed.
    syscall 61 vmo_set_cache_policy "–" (handle: handle(Vmo; MAP), cache_policy: uint32_t) -> mx_status_t {}

    // ----------------------------------------------------------------- VMARs

    /// Allocates a child region. The parent handle needs READ, WRITE and
    /// EXECUTE as `CAN_MAP_READ`, `_WRITE`, `_EXECUTE` are requested (checked
    /// in the lookup). Allowed flags: COMPACT, SPECIFIC, CAN_MAP_*. The child
    /// gets rights 0x3 plus R/W/X per CAN_MAP flag; `*child_addr` its base.
    syscall 62 vmar_allocate "A" (
        parent_vmar_handle: handle(Vmar; NONE),
        offset: size_t,
        size: size_t,
        map_flags: uint32_t,
        child_vmar: handle_out,
        child_addr: out(uintptr_t),
    ) -> mx_status_t {
        BadHandle,
        AccessDenied("the handle lacks a right the CAN_MAP flags need"),
        WrongType,
        InvalidArgs("flags not allowed, or `size` not page-aligned"),
        BadState("the parent was destroyed"),
        InvalidArgs("`size == 0`"),
        AccessDenied("CAN_MAP flags beyond the parent's"),
        InvalidArgs("`offset != 0` without SPECIFIC"),
        AccessDenied("SPECIFIC, but the parent lacks CAN_MAP_SPECIFIC"),
        InvalidArgs("the range is outside the parent, or `offset` is not page-aligned"),
        NoMemory("a SPECIFIC range overlaps, or no free spot"),
        InvalidArgs("an out-pointer cannot be written (the new VMAR is destroyed)"),
    }

    /// Destroys a region: every mapping and sub-region in it, recursively.
    /// Handles stay open; later operations on them fail with BAD_STATE.
    syscall 63 vmar_destroy "A" (vmar_handle: handle(Vmar; NONE)) -> mx_status_t {
        BadHandle,
        WrongType,
        BadState("already destroyed"),
    }

    /// Maps a VMO. The VMO handle needs MAP; each `PERM_*` needs the matching
    /// right on both handles, and that pair of rights is the mapping's ceiling
    /// for `mx_vmar_protect`. Allowed flags: PERM_*, SPECIFIC,
    /// SPECIFIC_OVERWRITE, MAP_RANGE. `len` is rounded up to pages.
    syscall 64 vmar_map "A" (
        vmar_handle: handle(Vmar; NONE),
        vmar_offset: size_t,
        vmo_handle: handle(Vmo; NONE),
        vmo_offset: uint64_t,
        len: size_t,
        map_flags: uint32_t,
        mapped_addr: out(uintptr_t),
    ) -> mx_status_t {
        BadHandle("`vmar_handle`"),
        WrongType("`vmar_handle` is not a VMAR"),
        BadHandle("`vmo_handle`"),
        WrongType("`vmo_handle` is not a VMO"),
        AccessDenied("`vmo_handle` lacks MAP"),
        InvalidArgs("WRITE or EXECUTE without READ"),
        InvalidArgs("a CAN_MAP_* flag"),
        AccessDenied("a permission not allowed by both handles"),
        InvalidArgs("COMPACT, CAN_MAP_SPECIFIC or unknown flags"),
        InvalidArgs("`vmo_offset` not page-aligned, or `vmo_offset + len` overflows"),
        BadState("the VMAR was destroyed"),
        InvalidArgs("`len == 0`"),
        AccessDenied("a permission beyond the VMAR's CAN_MAP_*"),
        InvalidArgs("`vmar_offset != 0` without SPECIFIC"),
        AccessDenied("SPECIFIC without CAN_MAP_SPECIFIC"),
        InvalidArgs("the range is outside the VMAR or misaligned"),
        NoMemory("an overlap without SPECIFIC_OVERWRITE, or no space"),
        AccessDenied("an invalid mapping of the vDSO"),
        NoMemory("MAP_RANGE could not commit the pages"),
        InvalidArgs("`mapped_addr` cannot be written (the mapping is undone)"),
    }

    /// Unmaps a range (`len` rounded up to pages). Mappings partly in it are
    /// split; sub-regions must lie wholly inside and are destroyed. An empty
    /// range returns `MX_OK`. No right needed.
    syscall 65 vmar_unmap "A" (vmar_handle: handle(Vmar; NONE), addr: uintptr_t, len: size_t) -> mx_status_t {
        BadHandle,
        WrongType,
        InvalidArgs("`addr` not page-aligned, or `len == 0`"),
        BadState("the VMAR was destroyed"),
        InvalidArgs("the range is outside the VMAR or partly overlaps a sub-region"),
        AccessDenied("the range touches the vDSO code"),
    }

    /// Changes the permissions of mapped pages. The handle needs READ, WRITE
    /// and EXECUTE as `PERM_*` are requested (checked in the lookup); only
    /// `PERM_*` bits are allowed.
    syscall 66 vmar_protect "A" (vmar_handle: handle(Vmar; NONE), addr: uintptr_t, len: size_t, prot_flags: uint32_t) -> mx_status_t {
        BadHandle,
        AccessDenied("the handle lacks a right the PERM flags need"),
        WrongType,
        InvalidArgs("WRITE or EXECUTE without READ"),
        InvalidArgs("`addr` not page-aligned, non-PERM bits, or `len == 0`"),
        BadState("the VMAR was destroyed"),
        InvalidArgs("the range is outside the VMAR"),
        NotFound("nothing mapped at `addr`, or a gap in the range"),
        InvalidArgs("the range covers a sub-region"),
        AccessDenied("beyond the mapping's ceiling, or the vDSO code"),
    }

    // -------------------------------------------------------------- entropy

    /// Fills `buffer` with random bytes (at most `MX_CPRNG_DRAW_MAX_LEN`).
    syscall 67 cprng_draw "–" (buffer: out(void[len]), len: size_t, actual: out(size_t)) -> mx_status_t {}

    /// Mixes `buffer` into the entropy pool.
    syscall 68 cprng_add_entropy "–" (buffer: in(void[len]), len: size_t) -> mx_status_t {}

    // ----------------------------------------------------------------- FIFOs

    /// Creates a FIFO pair of `elem_count` elements of `elem_size` bytes.
    syscall 69 fifo_create "–" (
        elem_count: uint32_t,
        elem_size: uint32_t,
        options: uint32_t,
        out0: handle_out,
        out1: handle_out,
    ) -> mx_status_t {}

    /// Reads whole elements from a FIFO.
    syscall 70 fifo_read "–" (handle: handle(Fifo; READ), data: out(void[len]), len: size_t, num_written: out(uint32_t)) -> mx_status_t {}

    /// Writes whole elements to a FIFO.
    syscall 71 fifo_write "–" (handle: handle(Fifo; WRITE), data: in(void[len]), len: size_t, num_written: out(uint32_t)) -> mx_status_t {}

    // -------------------------------------------------------- multi-function

    /// Unmaps a range, closes a handle and exits the thread; returns only if
    /// the unmap fails (its status).
    syscall vdso vmar_unmap_handle_close_thread_exit "A,P*" (
        vmar_handle: handle(Vmar; NONE),
        addr: uintptr_t,
        len: size_t,
        handle: handle(any; NONE) release,
    ) -> mx_status_t {}

    /// Wakes a futex, closes a handle and exits the thread, without touching
    /// the stack in between.
    syscall vdso futex_wake_handle_close_thread_exit [noreturn] "P*" (
        value_ptr: in(mx_futex_t),
        count: uint32_t,
        new_value: int,
        handle: handle(any; NONE) release,
    ) -> void {}

    // ------------------------------------------------------------------- log

    /// Legacy `mx_debuglog_create` without the resource check.
    syscall 72 log_create "L (legacy)" (options: uint32_t, out: handle_out) -> mx_status_t {}

    /// Legacy `mx_debuglog_write` with the old argument order.
    syscall 73 log_write "L (legacy)" (handle: handle(Log; WRITE), len: uint32_t, buffer: in(void[len]), options: uint32_t) -> mx_status_t {}

    /// Legacy `mx_debuglog_read` with the old argument order; returns the
    /// record's byte count.
    syscall 74 log_read [positive] "L (legacy)" (handle: handle(Log; READ), len: uint32_t, buffer: out(void[len]), options: uint32_t) -> mx_status_t {}

    /// Creates a debuglog (rights 0x100b, or 0x100f with
    /// `MX_LOG_FLAG_READABLE`, which attaches a reader). `options` become the
    /// log's base flags. `MX_LOG_WRITABLE` is asserted. Needs the root resource.
    syscall 75 debuglog_create "L" (resource: handle(Resource; NONE), options: uint32_t, out: handle_out) -> mx_status_t {
        BadHandle,
        WrongType,
        AccessDenied("not the root resource"),
    }

    /// Writes one record of at most 224 bytes; its flags are the log's OR'd
    /// with `options`.
    syscall 76 debuglog_write "L" (handle: handle(Log; WRITE), options: uint32_t, buffer: in(void[len]), len: size_t) -> mx_status_t {
        OutOfRange("`len > 224`"),
        InvalidArgs("`options` has bits outside 0xFFFF"),
        BadHandle,
        AccessDenied("the handle lacks WRITE"),
        WrongType,
        InvalidArgs("`buffer` cannot be read"),
        BadState("the kernel is in panic"),
    }

    /// Reads the reader's next record (oldest first; a lapped reader skips
    /// ahead) and returns its size: the 32-byte `mx_log_record_t` header plus
    /// data. `len` is not checked: offer `MX_LOG_RECORD_MAX` bytes.
    syscall 77 debuglog_read [positive] "L" (handle: handle(Log; READ), options: uint32_t, buffer: out(void[len]), len: size_t) -> mx_status_t {
        InvalidArgs("`options != 0`"),
        BadHandle,
        AccessDenied("the handle lacks READ"),
        WrongType,
        BadState("the log was not created readable"),
        ShouldWait("no new record (clears MX_LOG_READABLE)"),
        InvalidArgs("`buffer` cannot be written"),
    }

    // --------------------------------------------------------------- tracing

    /// Reads kernel trace records.
    syscall 78 ktrace_read "–" (
        handle: handle(Resource; NONE),
        data: out(void[len]),
        offset: uint32_t,
        len: uint32_t,
        actual: out(uint32_t),
    ) -> mx_status_t {}

    /// Controls kernel tracing; what `ptr` addresses depends on `action`.
    syscall 79 ktrace_control "–" (
        handle: handle(Resource; NONE),
        action: uint32_t,
        options: uint32_t,
        ptr: inout(void[?]),
    ) -> mx_status_t {}

    /// Writes a kernel trace record.
    syscall 80 ktrace_write "–" (handle: handle(Resource; NONE), id: uint32_t, arg0: uint32_t, arg1: uint32_t) -> mx_status_t {}

    /// Controls performance monitoring.
    syscall 81 mtrace_control "–" (
        handle: handle(Resource; NONE),
        kind: uint32_t,
        action: uint32_t,
        options: uint32_t,
        ptr: inout(void[size]),
        size: uint32_t,
    ) -> mx_status_t {}

    // ----------------------------------------------------------------- debug

    /// Reads characters from the debug console; returns how many.
    syscall 82 debug_read [positive] "L*" (handle: handle(Resource; NONE), buffer: out(void[length]), length: uint32_t) -> mx_status_t {}

    /// Writes up to 256 bytes (longer input is cut) to the kernel serial
    /// console; returns the number written. Needs no handle.
    syscall 83 debug_write [positive] "L" (buffer: in(void[length]), length: uint32_t) -> mx_status_t {
        InvalidArgs("`buffer` cannot be read"),
    }

    /// Runs a kernel console command.
    syscall 84 debug_send_command "–" (resource_handle: handle(Resource; NONE), buffer: in(void[length]), length: uint32_t) -> mx_status_t {}

    // ------------------------------------------------------------ interrupts

    /// Creates an interrupt object for `vector` (IRQ resource).
    syscall 85 interrupt_create "–" (handle: handle(Resource; NONE), vector: uint32_t, options: uint32_t, out_handle: handle_out) -> mx_status_t {}

    /// Acknowledges an interrupt.
    syscall 86 interrupt_complete "–" (handle: handle(Interrupt; NONE)) -> mx_status_t {}

    /// Waits for an interrupt.
    syscall 87 interrupt_wait [blocking] "–" (handle: handle(Interrupt; NONE)) -> mx_status_t {}

    /// Signals an interrupt object by software.
    syscall 88 interrupt_signal "–" (handle: handle(Interrupt; NONE)) -> mx_status_t {}

    // -------------------------------------------------------------- DDK misc

    /// Grants the process access to I/O ports.
    syscall 89 mmap_device_io "–" (handle: handle(Resource; NONE), io_addr: uint32_t, len: uint32_t) -> mx_status_t {}

    /// Creates a physically contiguous VMO.
    syscall 90 vmo_create_contiguous "–" (
        rsrc_handle: handle(Resource; NONE),
        size: size_t,
        alignment_log2: uint32_t,
        out: handle_out,
    ) -> mx_status_t {}

    /// Creates a VMO over a physical range (MMIO resource).
    syscall 91 vmo_create_physical "–" (rsrc_handle: handle(Resource; NONE), paddr: mx_paddr_t, size: size_t, out: handle_out) -> mx_status_t {}

    /// Reads the boot framebuffer's format and geometry.
    syscall 92 bootloader_fb_get_info "–" (
        format: out(uint32_t),
        width: out(uint32_t),
        height: out(uint32_t),
        stride: out(uint32_t),
    ) -> mx_status_t {}

    /// Sets the kernel's framebuffer.
    syscall 93 set_framebuffer "–" (
        handle: handle(Resource; NONE),
        vaddr: inout(void),
        len: uint32_t,
        format: uint32_t,
        width: uint32_t,
        height: uint32_t,
        stride: uint32_t,
    ) -> mx_status_t {}

    /// Sets the kernel's framebuffer from a VMO.
    syscall 94 set_framebuffer_vmo "–" (
        handle: handle(Resource; NONE),
        vmo: handle(Vmo; NONE),
        len: uint32_t,
        format: uint32_t,
        width: uint32_t,
        height: uint32_t,
        stride: uint32_t,
    ) -> mx_status_t {}

    // ------------------------------------------------------------------- PCI

    /// Gets the `index`th PCI device.
    syscall 95 pci_get_nth_device "–" (
        handle: handle(Resource; NONE),
        index: uint32_t,
        out_info: out(mx_pcie_device_info_t),
        out_handle: handle_out,
    ) -> mx_status_t {}

    /// Enables or disables bus mastering.
    syscall 96 pci_enable_bus_master "–" (handle: handle(PciDevice; WRITE), enable: bool) -> mx_status_t {}

    /// Enables or disables port I/O.
    syscall 97 pci_enable_pio "–" (handle: handle(PciDevice; WRITE), enable: bool) -> mx_status_t {}

    /// Resets a device.
    syscall 98 pci_reset_device "–" (handle: handle(PciDevice; WRITE)) -> mx_status_t {}

    /// Reads or writes PCI configuration space through port I/O.
    syscall 99 pci_cfg_pio_rw "–" (
        handle: handle(Resource; NONE),
        bus: uint8_t,
        dev: uint8_t,
        func: uint8_t,
        offset: uint8_t,
        val: out(uint32_t),
        width: size_t,
        write: bool,
    ) -> mx_status_t {}

    /// Gets a BAR.
    syscall 100 pci_get_bar "–" (handle: handle(PciDevice; READ | WRITE), bar_num: uint32_t, out_bar: out(mx_pci_resource_t)) -> mx_status_t {}

    /// Gets the configuration space.
    syscall 101 pci_get_config "–" (handle: handle(PciDevice; READ | WRITE), out_config: out(mx_pci_resource_t)) -> mx_status_t {}

    /// Writes to a BAR's I/O space.
    syscall 102 pci_io_write "–" (
        handle: handle(PciDevice; NONE),
        bar_num: uint32_t,
        offset: uint32_t,
        len: uint32_t,
        value: uint32_t,
    ) -> mx_status_t {}

    /// Reads from a BAR's I/O space.
    syscall 103 pci_io_read "–" (
        handle: handle(PciDevice; NONE),
        bar_num: uint32_t,
        offset: uint32_t,
        len: uint32_t,
        out_value: out(uint32_t),
    ) -> mx_status_t {}

    /// Maps a device interrupt to an interrupt object.
    syscall 104 pci_map_interrupt "–" (handle: handle(PciDevice; READ), which_irq: int32_t, out_handle: handle_out) -> mx_status_t {}

    /// Queries how many interrupts a mode supports.
    syscall 105 pci_query_irq_mode_caps "–" (handle: handle(PciDevice; READ), mode: uint32_t, out_max_irqs: out(uint32_t)) -> mx_status_t {}

    /// Selects an interrupt mode.
    syscall 106 pci_set_irq_mode "–" (handle: handle(PciDevice; WRITE), mode: uint32_t, requested_irq_count: uint32_t) -> mx_status_t {}

    /// Initializes the PCI bus driver (`len` bytes of `mx_pci_init_arg_t`).
    syscall 107 pci_init "–" (handle: handle(Resource; NONE), init_buf: in(mx_pci_init_arg_t[len]), len: uint32_t) -> mx_status_t {}

    /// Adds or removes an address window of the PCI bus driver.
    syscall 108 pci_add_subtract_io_range "–" (
        handle: handle(Resource; NONE),
        mmio: bool,
        base: uint64_t,
        len: uint64_t,
        add: bool,
    ) -> mx_status_t {}

    // ------------------------------------------------------------------ ACPI

    /// The UEFI RSDP address, or 0.
    syscall 109 acpi_uefi_rsdp "–" (handle: handle(Resource; NONE)) -> uint64_t {}

    /// Flushes caches before sleep.
    syscall 110 acpi_cache_flush "–" (handle: handle(Resource; NONE)) -> mx_status_t {}

    // ------------------------------------------------------------- resources

    /// Creates a resource (rights 0x100f). A root parent may create any kind
    /// and range; any other only its own kind within its inclusive
    /// `[low, high]`. `kind` is not validated.
    syscall 111 resource_create "R" (
        parent_handle: handle(Resource; WRITE),
        kind: uint32_t,
        low: uint64_t,
        high: uint64_t,
        resource_out: handle_out,
    ) -> mx_status_t {
        InvalidArgs("`high < low`"),
        BadHandle,
        AccessDenied("the parent handle lacks WRITE"),
        WrongType,
        AccessDenied("a non-root parent of another kind"),
        OutOfRange("the range is outside the parent's"),
        NoMemory,
        InvalidArgs("`resource_out` cannot be written"),
    }

    // ------------------------------------------------------------ hypervisor

    /// Creates a guest (rights 0x000b, not waitable) whose guest-physical
    /// memory is `physmem_vmo` from address 0 (it may be empty: a guest can
    /// live on `mx_guest_map` mappings alone). `resource` must be of kind
    /// HYPERVISOR or ROOT.
    syscall 112 guest_create "G" (
        resource: handle(Resource; NONE),
        options: uint32_t,
        physmem_vmo: handle(Vmo; READ | WRITE | EXECUTE),
        out: handle_out,
    ) -> mx_status_t {
        InvalidArgs("`options != 0`"),
        BadHandle("`resource`"),
        WrongType("`resource` is not a resource"),
        AccessDenied("`resource` is not of kind HYPERVISOR or ROOT"),
        BadHandle("`physmem_vmo`"),
        AccessDenied("`physmem_vmo` lacks READ, WRITE or EXECUTE"),
        WrongType("`physmem_vmo` is not a VMO"),
        NotSupported("the CPU has no hardware virtualization"),
        NoMemory("or another failure building the guest address space"),
        InvalidArgs("`out` cannot be written"),
    }

    /// Sets a trap on `[addr, addr + len)` of a guest address space (`kind`:
    /// `MX_GUEST_TRAP_MEM`, `MX_GUEST_TRAP_IO`, `MX_GUEST_TRAP_MSR`,
    /// `MX_GUEST_TRAP_CPUID`, `MX_GUEST_TRAP_EXCEPTION` or
    /// `MX_GUEST_TRAP_VMCALL`). With a port (MEM and IO only), every access
    /// queues a packet with `key` from `MX_GUEST_TRAP_POOL_SIZE` packets
    /// preallocated for the trap, and the VCPU pauses while they are all
    /// queued (see `syscalls/hypervisor.h`). With `MX_HANDLE_INVALID`, the
    /// packet comes back from `mx_vcpu_resume` with key 0. MSR, CPUID,
    /// EXCEPTION and VMCALL traps are synchronous only: a port is `MX_ERR_INVALID_ARGS`, checked after
    /// the kind's range and before overlaps.
    syscall 113 guest_set_trap "G" (
        guest: handle(Guest; WRITE),
        kind: uint32_t,
        addr: mx_vaddr_t,
        len: size_t,
        port: handle(Port; WRITE) optional,
        key: uint64_t,
    ) -> mx_status_t {
        BadHandle("`guest`"),
        AccessDenied("`guest` lacks WRITE"),
        WrongType("`guest` is not a guest"),
        BadHandle("`port`, unless MX_HANDLE_INVALID"),
        AccessDenied("`port` lacks WRITE"),
        WrongType("`port` is not a port"),
        InvalidArgs("`len == 0`"),
        OutOfRange("`addr + len` overflows"),
        InvalidArgs("MEM: `addr` or `len` not page-aligned"),
        OutOfRange("MEM: `addr + len > MX_GUEST_PHYS_SIZE`"),
        OutOfRange("IO: `addr + len > MX_GUEST_IO_SIZE` (0x10000)"),
        OutOfRange("MSR, CPUID: `addr + len > 2^32`"),
        OutOfRange("EXCEPTION: `addr + len > 32`"),
        InvalidArgs("EXCEPTION: the range holds vector 2 (NMI) or 18 (#MC), which cannot be trapped"),
        OutOfRange("VMCALL: `addr + len > 1`"),
        InvalidArgs("MSR, CPUID, EXCEPTION, VMCALL: `port` is not MX_HANDLE_INVALID (synchronous only)"),
        AlreadyExists("the range intersects a trap of the same kind"),
        NoMemory,
        InvalidArgs("`kind` is none of MEM, IO, MSR, CPUID, EXCEPTION, VMCALL"),
    }

    /// Creates a VCPU (rights 0x101f, not waitable), bound to the calling
    /// thread: `resume`, `read_state` and `write_state` must come from it. It
    /// starts in 64-bit mode with paging on, `CR3 = args->cr3`, `RIP =
    /// args->ip`, flat segments, interrupts off, other registers zero.
    /// `args->apic_vmo` (READ|WRITE, at least a page) backs the virtual APIC.
    syscall 114 vcpu_create "G" (
        guest: handle(Guest; WRITE),
        options: uint32_t,
        args: in(mx_vcpu_create_args_t),
        out: handle_out,
    ) -> mx_status_t {
        InvalidArgs("`options != 0`"),
        BadHandle("`guest`"),
        AccessDenied("`guest` lacks WRITE"),
        WrongType("`guest` is not a guest"),
        InvalidArgs("`args` cannot be read"),
        BadHandle("`args->apic_vmo`"),
        AccessDenied("`apic_vmo` lacks READ or WRITE"),
        WrongType("`apic_vmo` is not a VMO"),
        InvalidArgs("`ip >= MX_GUEST_PHYS_SIZE`, or `cr3 > MX_GUEST_PHYS_SIZE - 4096`"),
        InvalidArgs("`apic_vmo` is smaller than a page"),
        NoResources("no VCPU id (ASID) left; OUT_OF_RANGE is also possible"),
        NoMemory,
        InvalidArgs("`out` cannot be written"),
    }

    /// Runs the guest until an exit user space must handle, then fills
    /// `*packet` with a GUEST_MEM, GUEST_IO, GUEST_MSR, GUEST_CPUID,
    /// GUEST_EXCEPTION or GUEST_VMCALL packet (key 0, status 0, unused bytes
    /// zero). Accesses to traps with a port go through the port and the
    /// guest runs on, pausing here while the trap's packet pool is empty. The guest RIP is already
    /// past the instruction, except for GUEST_EXCEPTION (at the instruction
    /// that raised it). For a 4-byte `IN`, guest RAX is zeroed; supply the
    /// value with `MX_VCPU_IO`.
    syscall 115 vcpu_resume "G" (vcpu: handle(Vcpu; EXECUTE), packet: out(mx_port_packet_t)) -> mx_status_t {
        BadHandle,
        AccessDenied("the handle lacks EXECUTE"),
        WrongType,
        BadState("not the VCPU's thread, VM entry failed, a paused VCPU's trap was destroyed, or a trap's port has no handles"),
        NotSupported("an unhandled exit, or string I/O"),
        Canceled("a wait in HLT or on a trap's packet pool was interrupted"),
        Internal("e.g. an instruction longer than 15 bytes"),
        NoMemory("a guest page, a nested page table, or this CPU's first guest state cannot be allocated"),
        OutOfRange("the instruction fetch failed"),
        NotFound("the instruction fetch failed"),
        InvalidArgs("`packet` cannot be written"),
    }

    /// Raises `vector` in the guest, from any thread: 2 as NMI, 0-31 as
    /// exceptions, 32-255 as external interrupts once the guest can take them
    /// (a halted guest wakes).
    syscall 116 vcpu_interrupt "G" (vcpu: handle(Vcpu; SIGNAL), vector: uint32_t) -> mx_status_t {
        BadHandle,
        AccessDenied("the handle lacks SIGNAL"),
        WrongType,
        OutOfRange("`vector > 255`"),
    }

    /// Reads VCPU state: `MX_VCPU_STATE` with `len == sizeof(mx_vcpu_state_t)`
    /// (136), or `MX_VCPU_SYSTEM` with `len == sizeof(mx_vcpu_system_t)` (80).
    /// `MX_VCPU_IO` cannot be read.
    syscall 117 vcpu_read_state "G" (
        vcpu: handle(Vcpu; READ),
        kind: uint32_t,
        buffer: out(void[len]),
        len: uint32_t,
    ) -> mx_status_t {
        BadHandle,
        AccessDenied("the handle lacks READ"),
        WrongType,
        InvalidArgs("`len > 136` (the largest kind, `mx_vcpu_state_t`)"),
        BadState("not the VCPU's thread"),
        InvalidArgs("unknown `kind`, `len` wrong for it (136 STATE, 80 SYSTEM), or MX_VCPU_IO"),
        InvalidArgs("`buffer` cannot be written"),
    }

    /// Writes VCPU state: `MX_VCPU_STATE` (136 bytes; flags applied only if
    /// bit 1 is set), `MX_VCPU_IO` (8 bytes; `access_size` 1, 2 or 4 bytes
    /// of `data` into the low bytes of guest RAX) or `MX_VCPU_SYSTEM` (80
    /// bytes; only `rip`, `rflags` and `cr3` are applied, the other fields
    /// are ignored; writing CR3 drops the guest's cached translations).
    syscall 118 vcpu_write_state "G" (
        vcpu: handle(Vcpu; WRITE),
        kind: uint32_t,
        buffer: in(void[len]),
        len: uint32_t,
    ) -> mx_status_t {
        BadHandle,
        AccessDenied("the handle lacks WRITE"),
        WrongType,
        InvalidArgs("`len > 136` (the largest kind, `mx_vcpu_state_t`)"),
        InvalidArgs("`buffer` cannot be read"),
        BadState("not the VCPU's thread"),
        InvalidArgs("unknown `kind`, or `len` wrong for it (136 STATE, 8 IO, 80 SYSTEM)"),
        InvalidArgs("MX_VCPU_IO `access_size` not 1, 2 or 4"),
        InvalidArgs("MX_VCPU_SYSTEM `rflags` without bit 1 or with a reserved bit (3, 5, 15, 22-63) set"),
        InvalidArgs("MX_VCPU_SYSTEM `cr3 >= MX_GUEST_PHYS_SIZE`"),
    }

    // --------------------------------------------------------- system control

    /// Replaces the running kernel.
    syscall 119 system_mexec "–" (
        kernel: handle(Vmo; READ),
        bootimage: handle(Vmo; READ),
        cmdline: in(char[cmdline_len]),
        cmdline_len: uint32_t,
    ) -> mx_status_t {}

    /// Orders two jobs for out-of-memory killing.
    syscall 120 job_set_relative_importance "–" (
        root_resource: handle(Resource; NONE),
        job: handle(Job; NONE),
        less_important_job: handle(Job; NONE) optional,
    ) -> mx_status_t {}

    // ------------------------------------------------------------------ tests

    /// Returns 0.
    syscall 121 syscall_test_0 "–" () -> mx_status_t {}
    /// Returns `a`.
    syscall 122 syscall_test_1 "–" (a: int) -> mx_status_t {}
    /// Returns the sum of its arguments.
    syscall 123 syscall_test_2 "–" (a: int, b: int) -> mx_status_t {}
    /// Returns the sum of its arguments.
    syscall 124 syscall_test_3 "–" (a: int, b: int, c: int) -> mx_status_t {}
    /// Returns the sum of its arguments.
    syscall 125 syscall_test_4 "–" (a: int, b: int, c: int, d: int) -> mx_status_t {}
    /// Returns the sum of its arguments.
    syscall 126 syscall_test_5 "–" (a: int, b: int, c: int, d: int, e: int) -> mx_status_t {}
    /// Returns the sum of its arguments.
    syscall 127 syscall_test_6 "–" (a: int, b: int, c: int, d: int, e: int, f: int) -> mx_status_t {}
    /// Returns the sum of its arguments.
    syscall 128 syscall_test_7 "–" (a: int, b: int, c: int, d: int, e: int, f: int, g: int) -> mx_status_t {}
    /// Returns the sum of its arguments.
    syscall 129 syscall_test_8 "–" (a: int, b: int, c: int, d: int, e: int, f: int, g: int, h: int) -> mx_status_t {}
    /// Returns the sum of its arguments (through a vDSO wrapper).
    syscall 130 syscall_test_wrapper "–" (a: int, b: int, c: int) -> mx_status_t {}

    // ------------------------------------------------- magnetar: guest memory

    /// Backs guest-physical `[gpa, gpa + len)` with the pages of `vmo` from
    /// `vmo_offset` (magnetar). The pages are shared: writes through the VMO
    /// are seen by the guest and the other way round. The VMO is pinned
    /// while any page of it is mapped (it cannot shrink or decommit). A
    /// mapping takes priority over the physmem VMO at the same GPA; MEM
    /// traps take priority over both. Every page is mapped readable,
    /// writable and executable. The mappings go away with the guest.
    syscall 131 guest_map "G" (
        guest: handle(Guest; WRITE),
        options: uint32_t,
        gpa: mx_vaddr_t,
        vmo: handle(Vmo; READ | WRITE | EXECUTE),
        vmo_offset: uint64_t,
        len: size_t,
    ) -> mx_status_t {
        InvalidArgs("`options != 0`"),
        BadHandle("`guest`"),
        AccessDenied("`guest` lacks WRITE"),
        WrongType("`guest` is not a guest"),
        BadHandle("`vmo`"),
        AccessDenied("`vmo` lacks READ, WRITE or EXECUTE"),
        WrongType("`vmo` is not a VMO"),
        AccessDenied("`vmo` is read-only (the vDSO)"),
        InvalidArgs("`gpa`, `vmo_offset` or `len` not page-aligned, or `len == 0`"),
        OutOfRange("`gpa + len > MX_GUEST_PHYS_SIZE` (or overflows)"),
        OutOfRange("`vmo_offset + len` exceeds the VMO's size (or overflows)"),
        AlreadyExists("the range intersects an existing mapping"),
        NoMemory,
    }

    /// Removes every mapped page in guest-physical `[gpa, gpa + len)`
    /// (magnetar): pages no mapping covers are fine, a mapping partly
    /// covered is trimmed or split. Before it returns no VCPU of the guest
    /// can reach the removed pages any more (VCPUs running the guest are
    /// made to exit and drop their cached translations), and the VMOs no
    /// longer mapped are unpinned. An access to a removed page then behaves
    /// as one to a page never mapped: physmem below its size, a MEM trap, or
    /// `mx_vcpu_resume` returns `MX_ERR_OUT_OF_RANGE`.
    syscall 132 guest_unmap "G" (
        guest: handle(Guest; WRITE),
        gpa: mx_vaddr_t,
        len: size_t,
    ) -> mx_status_t {
        BadHandle("`guest`"),
        AccessDenied("`guest` lacks WRITE"),
        WrongType("`guest` is not a guest"),
        InvalidArgs("`gpa` or `len` not page-aligned, or `len == 0`"),
        OutOfRange("`gpa + len > MX_GUEST_PHYS_SIZE` (or overflows)"),
        NoMemory("to split a mapping"),
    }
}

/// `MX_SYS_COUNT`: one past the highest kernel syscall number.
pub const SYS_COUNT: u32 = {
    let mut count = 0;
    let mut i = 0;
    while i < SYSCALLS.len() {
        if let Some(n) = SYSCALLS[i].num {
            if n + 1 > count {
                count = n + 1;
            }
        }
        i += 1;
    }
    count
};

/// The syscall with kernel number `num`.
pub fn by_number(num: u32) -> Option<&'static crate::meta::SyscallDecl> {
    SYSCALLS.iter().find(|s| s.num == Some(num))
}

/// The syscall named `name` (without `mx_`).
pub fn by_name(name: &str) -> Option<&'static crate::meta::SyscallDecl> {
    SYSCALLS.iter().find(|s| s.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::{ArgKind, Len};

    /// Contract §3: non-vDSO entries are numbered from 0 in file order, and
    /// `MX_SYS_COUNT` is 131, plus magnetar's two guest-memory calls (131,
    /// 132) appended after them. Nothing is declared twice.
    #[test]
    fn numbers_follow_sysgen_order() {
        let mut next = 0;
        for s in SYSCALLS {
            match s.num {
                Some(n) => {
                    assert_eq!(n, next, "{} is out of order", s.name);
                    assert!(!s.attrs.vdso, "{}", s.name);
                    next += 1;
                }
                None => assert!(s.attrs.vdso, "{} has no number but is not vdso", s.name),
            }
            assert_eq!(SYSCALLS.iter().filter(|t| t.name == s.name).count(), 1, "{}", s.name);
        }
        assert_eq!(SYS_COUNT, 133);
        assert_eq!(SYSCALLS.len(), 143);
        assert_eq!(by_name("guest_map").and_then(|s| s.num), Some(131));
        assert_eq!(by_name("guest_unmap").and_then(|s| s.num), Some(132));
        assert_eq!(by_name("guest_set_trap").and_then(|s| s.num), Some(113));
        assert_eq!(by_number(115).map(|s| s.name), Some("vcpu_resume"));
    }

    /// Length arguments name real arguments; at most 8 arguments (sysgen's
    /// `kMaxArgs`); noreturn calls return void.
    #[test]
    fn declarations_are_consistent() {
        for s in SYSCALLS {
            assert!(s.args.len() <= 8, "{}", s.name);
            assert_eq!(s.attrs.noreturn, s.ret == "void", "{}", s.name);
            assert!(!s.doc.trim().is_empty(), "{} has no doc", s.name);
            for a in s.args {
                if let ArgKind::In(Len::Arg(l))
                | ArgKind::Out(Len::Arg(l))
                | ArgKind::InOut(Len::Arg(l))
                | ArgKind::HandleOut(Len::Arg(l)) = a.kind
                {
                    let len = s.arg(l).unwrap_or_else(|| panic!("{}: no length argument {l}", s.name));
                    assert_eq!(len.kind, ArgKind::Value, "{}.{l}", s.name);
                }
            }
        }
    }

    /// The calls the contract marks in scope (a tag letter without `*`).
    #[test]
    fn scope_tags() {
        assert!(by_name("vcpu_resume").is_some_and(|s| s.in_scope()));
        assert!(by_name("log_read").is_some_and(|s| s.in_scope()));
        assert!(by_name("vmar_unmap_handle_close_thread_exit").is_some_and(|s| s.in_scope()));
        assert!(!by_name("clock_adjust").is_some_and(|s| s.in_scope()));
        assert!(!by_name("pci_init").is_some_and(|s| s.in_scope()));
    }
}
