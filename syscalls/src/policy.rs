//! Job policy (`syscalls/policy.h`), contract §1.7 and §4.

use crate::meta::{ConstStyle, Fmt};

c_enum! {
    /// How `mx_job_set_policy` combines with the parent's policy.
    pub enum JobPolicyMode: u32, ConstStyle::Define { fmt: Fmt::DecU, cast: None };
    {
        /// Relative to the parent's.
        Relative = 0 => "MX_JOB_POL_RELATIVE",
        /// Absolute.
        Absolute = 1 => "MX_JOB_POL_ABSOLUTE",
    }
}

c_consts! {
    /// `mx_job_set_policy` topics.
    pub const C_JOB_POL_TOPIC: ConstGroup = ConstStyle::Define { fmt: Fmt::DecU, cast: None };
    {
        /// The policy is an array of `mx_policy_basic_t`.
        pub const JOB_POL_BASIC: u32 = 0 => "MX_JOB_POL_BASIC";
    }
}

c_struct! {
    /// One basic policy entry.
    pub struct PolicyBasic as mx_policy_basic_t, size 8;
    {
        /// A [`PolicyCondition`].
        @0 pub condition: u32 as "uint32_t condition";
        /// A [`PolicyAction`].
        @4 pub policy: u32 as "uint32_t policy";
    }
}

c_enum! {
    /// Policy conditions.
    pub enum PolicyCondition: u32, ConstStyle::Define { fmt: Fmt::DecU, cast: None };
    {
        /// A bad handle value was used.
        BadHandle = 0 => "MX_POL_BAD_HANDLE",
        /// A handle of the wrong object type was used.
        WrongObject = 1 => "MX_POL_WRONG_OBJECT",
        /// A mapping was both writable and executable.
        VmarWx = 2 => "MX_POL_VMAR_WX",
        /// Any object creation below.
        NewAny = 3 => "MX_POL_NEW_ANY",
        /// VMO creation.
        NewVmo = 4 => "MX_POL_NEW_VMO",
        /// Channel creation.
        NewChannel = 5 => "MX_POL_NEW_CHANNEL",
        /// Event creation.
        NewEvent = 6 => "MX_POL_NEW_EVENT",
        /// Eventpair creation.
        NewEvpair = 7 => "MX_POL_NEW_EVPAIR",
        /// Port creation.
        NewPort = 8 => "MX_POL_NEW_PORT",
        /// Socket creation.
        NewSocket = 9 => "MX_POL_NEW_SOCKET",
        /// FIFO creation.
        NewFifo = 10 => "MX_POL_NEW_FIFO",
        /// Timer creation.
        NewTimer = 11 => "MX_POL_NEW_TIMER",
    }
}

c_consts! {
    /// One past the last condition.
    pub const C_POL_MAX: ConstGroup = ConstStyle::Define { fmt: Fmt::DecU, cast: None };
    {
        /// Number of conditions.
        pub const POL_MAX_CONDITION: u32 = 12 => "MX_POL_MAX";
    }
}

c_enum! {
    /// Policy actions.
    pub enum PolicyAction: u32, ConstStyle::Define { fmt: Fmt::DecU, cast: None };
    {
        /// Allow.
        Allow = 0 => "MX_POL_ACTION_ALLOW",
        /// Fail with `MX_ERR_ACCESS_DENIED`.
        Deny = 1 => "MX_POL_ACTION_DENY",
        /// Raise `MX_EXCP_POLICY_ERROR` on the thread.
        Exception = 2 => "MX_POL_ACTION_EXCEPTION",
        /// Kill the process.
        Kill = 5 => "MX_POL_ACTION_KILL",
    }
}
