//! Object types, info topics, properties and `mx_info_*` records
//! (`syscalls/object.h`), contract §1.5 and §1.6.

use crate::meta::{ConstStyle, Fmt};
use crate::types::MAX_NAME_LEN;

c_enum! {
    /// Kernel object types (`mx_obj_type_t`). 7, 8, 10 and 13 are unused.
    pub enum ObjType: u32, ConstStyle::Enum { typedef: Some("mx_obj_type_t") };
    {
        /// No object.
        None = 0 => "MX_OBJ_TYPE_NONE",
        /// A process.
        Process = 1 => "MX_OBJ_TYPE_PROCESS",
        /// A thread.
        Thread = 2 => "MX_OBJ_TYPE_THREAD",
        /// A virtual memory object.
        Vmo = 3 => "MX_OBJ_TYPE_VMO",
        /// A channel end.
        Channel = 4 => "MX_OBJ_TYPE_CHANNEL",
        /// An event.
        Event = 5 => "MX_OBJ_TYPE_EVENT",
        /// A port.
        Port = 6 => "MX_OBJ_TYPE_PORT",
        /// An interrupt.
        Interrupt = 9 => "MX_OBJ_TYPE_INTERRUPT",
        /// A PCI device.
        PciDevice = 11 => "MX_OBJ_TYPE_PCI_DEVICE",
        /// A debuglog.
        Log = 12 => "MX_OBJ_TYPE_LOG",
        /// A socket end.
        Socket = 14 => "MX_OBJ_TYPE_SOCKET",
        /// A resource.
        Resource = 15 => "MX_OBJ_TYPE_RESOURCE",
        /// An eventpair end.
        EventPair = 16 => "MX_OBJ_TYPE_EVENT_PAIR",
        /// A job.
        Job = 17 => "MX_OBJ_TYPE_JOB",
        /// A virtual memory address region.
        Vmar = 18 => "MX_OBJ_TYPE_VMAR",
        /// A FIFO end.
        Fifo = 19 => "MX_OBJ_TYPE_FIFO",
        /// A guest.
        Guest = 20 => "MX_OBJ_TYPE_GUEST",
        /// A virtual CPU.
        Vcpu = 21 => "MX_OBJ_TYPE_VCPU",
        /// A timer.
        Timer = 22 => "MX_OBJ_TYPE_TIMER",
    }
}

impl ObjType {
    /// True for objects with a state tracker: they can be waited on and
    /// signalled. Port, VMAR, guest, VCPU, interrupt and PCI device cannot
    /// (`NOT_SUPPORTED`), and their `MX_INFO_HANDLE_BASIC.props` is 0.
    pub const fn is_waitable(self) -> bool {
        matches!(
            self,
            Self::Channel
                | Self::Event
                | Self::EventPair
                | Self::Fifo
                | Self::Job
                | Self::Log
                | Self::Process
                | Self::Resource
                | Self::Socket
                | Self::Thread
                | Self::Timer
                | Self::Vmo
        )
    }

    /// True for objects with a peer (`mx_object_signal_peer`, `related_koid`).
    pub const fn has_peer(self) -> bool {
        matches!(self, Self::Channel | Self::EventPair | Self::Socket | Self::Fifo)
    }
}

c_enum! {
    /// Object properties reported in `mx_info_handle_basic_t.props`.
    pub enum ObjProps: u32, ConstStyle::Enum { typedef: Some("mx_obj_props_t") };
    {
        /// Not waitable.
        None = 0 => "MX_OBJ_PROP_NONE",
        /// Waitable.
        Waitable = 1 => "MX_OBJ_PROP_WAITABLE",
    }
}

c_enum! {
    /// `mx_object_get_info` topics (`mx_object_info_topic_t`).
    pub enum InfoTopic: u32, ConstStyle::Enum { typedef: Some("mx_object_info_topic_t") };
    {
        /// Not a topic: `NOT_SUPPORTED`.
        None = 0 => "MX_INFO_NONE",
        /// Any handle; no record: `MX_OK` or `BAD_HANDLE`.
        HandleValid = 1 => "MX_INFO_HANDLE_VALID",
        /// Any handle: `mx_info_handle_basic_t[1]`.
        HandleBasic = 2 => "MX_INFO_HANDLE_BASIC",
        /// Process, READ: `mx_info_process_t[1]`.
        Process = 3 => "MX_INFO_PROCESS",
        /// Process, ENUMERATE: `mx_koid_t[n]`.
        ProcessThreads = 4 => "MX_INFO_PROCESS_THREADS",
        /// VMAR: `mx_info_vmar_t[1]`.
        Vmar = 7 => "MX_INFO_VMAR",
        /// Job, ENUMERATE: `mx_koid_t[n]`.
        JobChildren = 8 => "MX_INFO_JOB_CHILDREN",
        /// Job, ENUMERATE: `mx_koid_t[n]`.
        JobProcesses = 9 => "MX_INFO_JOB_PROCESSES",
        /// Thread, READ: `mx_info_thread_t[1]`.
        Thread = 10 => "MX_INFO_THREAD",
        /// Thread, READ: `mx_exception_report_t[1]`.
        ThreadExceptionReport = 11 => "MX_INFO_THREAD_EXCEPTION_REPORT",
        /// Process, READ: `mx_info_task_stats_t[1]`.
        TaskStats = 12 => "MX_INFO_TASK_STATS",
        /// Another process, READ: `mx_info_maps_t[n]`.
        ProcessMaps = 13 => "MX_INFO_PROCESS_MAPS",
        /// Another process, READ: `mx_info_vmo_t[n]`.
        ProcessVmos = 14 => "MX_INFO_PROCESS_VMOS",
        /// Thread, READ: `mx_info_thread_stats_t[1]`.
        ThreadStats = 15 => "MX_INFO_THREAD_STATS",
        /// Root resource: `mx_info_cpu_stats_t[n]`.
        CpuStats = 16 => "MX_INFO_CPU_STATS",
        /// Root resource: `mx_info_kmem_stats_t[1]`.
        KmemStats = 17 => "MX_INFO_KMEM_STATS",
        /// Resource: `mx_info_resource_t[1]`.
        Resource = 18 => "MX_INFO_RESOURCE",
    }
}

c_consts! {
    /// One past the last value of each enumeration.
    pub const C_LAST: ConstGroup = ConstStyle::Define { fmt: Fmt::DecU, cast: None };
    {
        /// One past the last object type.
        pub const OBJ_TYPE_LAST: u32 = 23 => "MX_OBJ_TYPE_LAST";
        /// One past the last info topic.
        pub const INFO_LAST: u32 = 19 => "MX_INFO_LAST";
    }
}

c_struct! {
    /// `MX_INFO_HANDLE_BASIC`: what a handle refers to.
    pub struct InfoHandleBasic as mx_info_handle_basic_t, size 32;
    {
        /// The object's id.
        @0 pub koid: u64 as "mx_koid_t koid";
        /// The handle's rights.
        @8 pub rights: u32 as "mx_rights_t rights";
        /// The object type ([`ObjType`]).
        @12 pub obj_type: u32 as "uint32_t type";
        /// The peer's koid (channel, eventpair, socket, FIFO), a process's job,
        /// a thread's process; otherwise 0.
        @16 pub related_koid: u64 as "mx_koid_t related_koid";
        /// [`ObjProps`].
        @24 pub props: u32 as "uint32_t props";
    }
}

c_struct! {
    /// `MX_INFO_PROCESS`.
    pub struct InfoProcess as mx_info_process_t, size 8;
    {
        /// The return code; valid once `exited`.
        @0 pub return_code: i32 as "int return_code";
        /// The process has left its initial state (C `bool`).
        @4 pub started: u8 as "bool started";
        /// The process has exited (C `bool`).
        @5 pub exited: u8 as "bool exited";
        /// A debugger is attached (C `bool`).
        @6 pub debugger_attached: u8 as "bool debugger_attached";
    }
}

c_struct! {
    /// `MX_INFO_THREAD`.
    pub struct InfoThread as mx_info_thread_t, size 8;
    {
        /// [`ThreadState`].
        @0 pub state: u32 as "uint32_t state";
        /// The exception port type the thread waits on ([`crate::ExceptionPortType`]), or 0.
        @4 pub wait_exception_port_type: u32 as "uint32_t wait_exception_port_type";
    }
}

c_struct! {
    /// `MX_INFO_THREAD_STATS`.
    pub struct InfoThreadStats as mx_info_thread_stats_t, size 8;
    {
        /// Total run time in nanoseconds.
        @0 pub total_runtime: u64 as "mx_time_t total_runtime";
    }
}

c_struct! {
    /// `MX_INFO_TASK_STATS`: memory of a process.
    pub struct InfoTaskStats as mx_info_task_stats_t, size 32;
    {
        /// Bytes of mapped ranges.
        @0 pub mem_mapped_bytes: u64 as "size_t mem_mapped_bytes";
        /// Committed bytes mapped only here.
        @8 pub mem_private_bytes: u64 as "size_t mem_private_bytes";
        /// Committed bytes also mapped elsewhere.
        @16 pub mem_shared_bytes: u64 as "size_t mem_shared_bytes";
        /// This task's share of `mem_shared_bytes`.
        @24 pub mem_scaled_shared_bytes: u64 as "size_t mem_scaled_shared_bytes";
    }
}

c_struct! {
    /// `MX_INFO_VMAR`.
    pub struct InfoVmar as mx_info_vmar_t, size 16;
    {
        /// Base address.
        @0 pub base: u64 as "uintptr_t base";
        /// Length in bytes.
        @8 pub len: u64 as "size_t len";
    }
}

c_enum! {
    /// The kind of an `mx_info_maps_t` entry.
    pub enum InfoMapsType: u32, ConstStyle::Enum { typedef: Some("mx_info_maps_type_t") };
    {
        /// Nothing.
        None = 0 => "MX_INFO_MAPS_TYPE_NONE",
        /// An address space.
        Aspace = 1 => "MX_INFO_MAPS_TYPE_ASPACE",
        /// A VMAR.
        Vmar = 2 => "MX_INFO_MAPS_TYPE_VMAR",
        /// A mapping.
        Mapping = 3 => "MX_INFO_MAPS_TYPE_MAPPING",
    }
}

c_struct! {
    /// The mapping details of an `mx_info_maps_t` entry.
    pub struct InfoMapsMapping as mx_info_maps_mapping_t, size 24;
    {
        /// `MX_VM_FLAG_PERM_*` bits.
        @0 pub mmu_flags: u32 as "uint32_t mmu_flags";
        /// The mapped VMO.
        @8 pub vmo_koid: u64 as "mx_koid_t vmo_koid";
        /// Committed pages in the mapped range.
        @16 pub committed_pages: u64 as "size_t committed_pages";
    }
}

c_struct! {
    /// `MX_INFO_PROCESS_MAPS`: one node of the address-space tree, depth first.
    pub struct InfoMaps as mx_info_maps_t, size 88;
    {
        /// Name, NUL-terminated.
        @0 pub name: [u8; MAX_NAME_LEN] as "char name[MX_MAX_NAME_LEN]";
        /// Base address.
        @32 pub base: u64 as "mx_vaddr_t base";
        /// Size in bytes.
        @40 pub size: u64 as "size_t size";
        /// Depth in the tree.
        @48 pub depth: u64 as "size_t depth";
        /// [`InfoMapsType`].
        @56 pub maps_type: u32 as "uint32_t type";
        /// Details when `type` is MAPPING.
        @64 pub u: InfoMapsMapping as "union { mx_info_maps_mapping_t mapping; } u";
    }
}

c_consts! {
    /// `mx_info_vmo_t.flags`.
    pub const C_INFO_VMO: ConstGroup = ConstStyle::Define { fmt: Fmt::Shift, cast: None };
    {
        /// Backed by pages.
        pub const INFO_VMO_TYPE_PAGED: u32 = 1 << 0 => "MX_INFO_VMO_TYPE_PAGED";
        /// Backed by physical memory.
        pub const INFO_VMO_TYPE_PHYSICAL: u32 = 0 => "MX_INFO_VMO_TYPE_PHYSICAL";
        /// A copy-on-write clone.
        pub const INFO_VMO_IS_COW_CLONE: u32 = 1 << 2 => "MX_INFO_VMO_IS_COW_CLONE";
        /// Found through a handle.
        pub const INFO_VMO_VIA_HANDLE: u32 = 1 << 3 => "MX_INFO_VMO_VIA_HANDLE";
        /// Found through a mapping.
        pub const INFO_VMO_VIA_MAPPING: u32 = 1 << 4 => "MX_INFO_VMO_VIA_MAPPING";
    }
}

/// C spelling of `MX_INFO_VMO_TYPE(flags)`: `flags & INFO_VMO_TYPE_PAGED`.
pub const C_INFO_VMO_TYPE_MACRO: &str = "#define MX_INFO_VMO_TYPE(flags) ((flags) & (1u << 0))";

c_struct! {
    /// `MX_INFO_PROCESS_VMOS`: one VMO a process can reach.
    pub struct InfoVmo as mx_info_vmo_t, size 104;
    {
        /// The VMO's id.
        @0 pub koid: u64 as "mx_koid_t koid";
        /// Its name.
        @8 pub name: [u8; MAX_NAME_LEN] as "char name[MX_MAX_NAME_LEN]";
        /// Its size.
        @40 pub size_bytes: u64 as "uint64_t size_bytes";
        /// The parent of a clone, or 0.
        @48 pub parent_koid: u64 as "mx_koid_t parent_koid";
        /// Number of clones.
        @56 pub num_children: u64 as "size_t num_children";
        /// Number of mappings.
        @64 pub num_mappings: u64 as "size_t num_mappings";
        /// Number of address spaces mapping it.
        @72 pub share_count: u64 as "size_t share_count";
        /// `MX_INFO_VMO_*` bits.
        @80 pub flags: u32 as "uint32_t flags";
        /// Committed bytes (paged VMOs).
        @88 pub committed_bytes: u64 as "uint64_t committed_bytes";
        /// The handle's rights (VIA_HANDLE).
        @96 pub handle_rights: u32 as "mx_rights_t handle_rights";
    }
}

c_struct! {
    /// `MX_INFO_CPU_STATS`: one CPU's counters.
    pub struct InfoCpuStats as mx_info_cpu_stats_t, size 120;
    {
        /// CPU number.
        @0 pub cpu_number: u32 as "uint32_t cpu_number";
        /// `MX_INFO_CPU_STATS_FLAG_*`.
        @4 pub flags: u32 as "uint32_t flags";
        /// Idle time.
        @8 pub idle_time: u64 as "mx_time_t idle_time";
        /// Reschedules.
        @16 pub reschedules: u64 as "uint64_t reschedules";
        /// Context switches.
        @24 pub context_switches: u64 as "uint64_t context_switches";
        /// Preemptions by interrupts.
        @32 pub irq_preempts: u64 as "uint64_t irq_preempts";
        /// Preemptions.
        @40 pub preempts: u64 as "uint64_t preempts";
        /// Yields.
        @48 pub yields: u64 as "uint64_t yields";
        /// Hardware interrupts other than timer and IPIs.
        @56 pub ints: u64 as "uint64_t ints";
        /// Timer interrupts.
        @64 pub timer_ints: u64 as "uint64_t timer_ints";
        /// Timer callbacks.
        @72 pub timers: u64 as "uint64_t timers";
        /// Page faults.
        @80 pub page_faults: u64 as "uint64_t page_faults";
        /// Exceptions.
        @88 pub exceptions: u64 as "uint64_t exceptions";
        /// Syscalls.
        @96 pub syscalls: u64 as "uint64_t syscalls";
        /// Reschedule IPIs.
        @104 pub reschedule_ipis: u64 as "uint64_t reschedule_ipis";
        /// Other IPIs.
        @112 pub generic_ipis: u64 as "uint64_t generic_ipis";
    }
}

c_consts! {
    /// `mx_info_cpu_stats_t.flags`.
    pub const C_INFO_CPU_STATS: ConstGroup = ConstStyle::Define { fmt: Fmt::Shift, cast: None };
    {
        /// The CPU is online.
        pub const INFO_CPU_STATS_FLAG_ONLINE: u32 = 1 << 0 => "MX_INFO_CPU_STATS_FLAG_ONLINE";
    }
}

c_struct! {
    /// `MX_INFO_KMEM_STATS`: kernel memory use.
    pub struct InfoKmemStats as mx_info_kmem_stats_t, size 64;
    {
        /// Physical memory.
        @0 pub total_bytes: u64 as "uint64_t total_bytes";
        /// Unallocated memory.
        @8 pub free_bytes: u64 as "uint64_t free_bytes";
        /// Memory wired for other reasons.
        @16 pub wired_bytes: u64 as "uint64_t wired_bytes";
        /// Kernel heap.
        @24 pub total_heap_bytes: u64 as "uint64_t total_heap_bytes";
        /// Free kernel heap.
        @32 pub free_heap_bytes: u64 as "uint64_t free_heap_bytes";
        /// Committed to VMOs.
        @40 pub vmo_bytes: u64 as "uint64_t vmo_bytes";
        /// Page tables and other MMU data.
        @48 pub mmu_overhead_bytes: u64 as "uint64_t mmu_overhead_bytes";
        /// Everything else in use.
        @56 pub other_bytes: u64 as "uint64_t other_bytes";
    }
}

c_consts! {
    /// magnetar's accounting topic (not in Magenta): on the root resource,
    /// live kernel objects, handles and memory, so tests can check that
    /// everything a test process used came back.
    pub const C_INFO_KERNEL_COUNTS: ConstGroup = ConstStyle::Define { fmt: Fmt::HexU, cast: None };
    {
        /// `mx_object_get_info` topic returning one `mx_info_kernel_counts_t`.
        pub const INFO_KERNEL_COUNTS: u32 = 0x1000 => "MX_INFO_KERNEL_COUNTS";
    }
}

c_struct! {
    /// `MX_INFO_KERNEL_COUNTS`: what the kernel holds right now.
    pub struct InfoKernelCounts as mx_info_kernel_counts_t, size 64;
    {
        /// Live kernel objects of every type.
        @0 pub objects: u64 as "uint64_t objects";
        /// Live handles in every process and message.
        @8 pub handles: u64 as "uint64_t handles";
        /// Pages committed to VMOs.
        @16 pub committed_pages: u64 as "uint64_t committed_pages";
        /// Live VMOs.
        @24 pub vmos: u64 as "uint64_t vmos";
        /// Bytes allocated from the kernel heap.
        @32 pub heap_bytes: u64 as "uint64_t heap_bytes";
        /// Free physical frames.
        @40 pub free_frames: u64 as "uint64_t free_frames";
        /// Live processes.
        @48 pub processes: u64 as "uint64_t processes";
        /// Live threads.
        @56 pub threads: u64 as "uint64_t threads";
    }
}

c_struct! {
    /// `MX_INFO_RESOURCE`.
    pub struct InfoResource as mx_info_resource_t, size 24;
    {
        /// [`crate::ResourceKind`].
        @0 pub kind: u32 as "uint32_t kind";
        /// Low end of the range (inclusive).
        @8 pub low: u64 as "uint64_t low";
        /// High end of the range (inclusive).
        @16 pub high: u64 as "uint64_t high";
    }
}

c_enum! {
    /// Object properties (`mx_object_get_property`, `_set_property`).
    pub enum Property: u32, ConstStyle::Define { fmt: Fmt::DecU, cast: None };
    {
        /// Number of thread state kinds.
        NumStateKinds = 2 => "MX_PROP_NUM_STATE_KINDS",
        /// The object's name (`char[MX_MAX_NAME_LEN]`).
        Name = 3 => "MX_PROP_NAME",
        /// A thread's FS base (x86 only).
        RegisterFs = 4 => "MX_PROP_REGISTER_FS",
        /// A process's debug address.
        ProcessDebugAddr = 5 => "MX_PROP_PROCESS_DEBUG_ADDR",
        /// Where the vDSO is mapped in a process.
        ProcessVdsoBaseAddress = 6 => "MX_PROP_PROCESS_VDSO_BASE_ADDRESS",
        /// A job's importance.
        JobImportance = 7 => "MX_PROP_JOB_IMPORTANCE",
    }
}

c_consts! {
    /// Job importance values (`mx_job_importance_t`).
    pub const C_JOB_IMPORTANCE: ConstGroup = ConstStyle::Define { fmt: Fmt::Dec, cast: Some("mx_job_importance_t") };
    {
        /// Inherit the parent's importance.
        pub const JOB_IMPORTANCE_INHERITED: i32 = -1 => "MX_JOB_IMPORTANCE_INHERITED";
        /// Least important.
        pub const JOB_IMPORTANCE_MIN: i32 = 0 => "MX_JOB_IMPORTANCE_MIN";
        /// Most important.
        pub const JOB_IMPORTANCE_MAX: i32 = 255 => "MX_JOB_IMPORTANCE_MAX";
    }
}

c_enum! {
    /// Thread states (`mx_info_thread_t.state`).
    pub enum ThreadState: u32, ConstStyle::Define { fmt: Fmt::DecU, cast: None };
    {
        /// Created, not started.
        New = 0 => "MX_THREAD_STATE_NEW",
        /// Running.
        Running = 1 => "MX_THREAD_STATE_RUNNING",
        /// Suspended.
        Suspended = 2 => "MX_THREAD_STATE_SUSPENDED",
        /// Blocked.
        Blocked = 3 => "MX_THREAD_STATE_BLOCKED",
        /// Exiting.
        Dying = 4 => "MX_THREAD_STATE_DYING",
        /// Dead.
        Dead = 5 => "MX_THREAD_STATE_DEAD",
    }
}
