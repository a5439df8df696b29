//! The vDSO constants block: data the kernel writes into its copy of the
//! vDSO at boot and the vDSO-only calls read (`mx_ticks_per_second`,
//! `mx_system_get_num_cpus`, `mx_system_get_physmem`,
//! `mx_system_get_version`, `mx_cache_flush`).
//!
//! The block sits at the start of the vDSO's constants page, whose offset in
//! the image is `VDSO_CONSTANTS_OFFSET` in the generated `build/vdso-layout.rs`
//! (see `sysroot/vdso/README.md`). abigen emits its field offsets into
//! `syscalls/generated/vdso.S`, and the image ships with
//! [`VdsoConstants::UNSET`] until the kernel overwrites it.

c_struct! {
    /// The constants the kernel fills in before any process maps the vDSO.
    pub struct VdsoConstants as vdso_constants_t, size 64;
    {
        /// Number of CPUs (`mx_system_get_num_cpus`).
        @0 pub max_num_cpus: u32 as "uint32_t max_num_cpus";
        /// Data cache line size in bytes, a power of two (`mx_cache_flush`); 0 means 64.
        @4 pub dcache_line_size: u32 as "uint32_t dcache_line_size";
        /// Instruction cache line size in bytes.
        @8 pub icache_line_size: u32 as "uint32_t icache_line_size";
        /// Length of `version` without its NUL (at most 31).
        @12 pub version_len: u32 as "uint32_t version_len";
        /// TSC frequency (`mx_ticks_per_second`).
        @16 pub ticks_per_second: u64 as "uint64_t ticks_per_second";
        /// Physical memory in bytes (`mx_system_get_physmem`).
        @24 pub physmem: u64 as "uint64_t physmem";
        /// The kernel version string, NUL-terminated (`mx_system_get_version`).
        @32 pub version: [u8; 32] as "char version[32]";
    }
}

/// Size of the constants page in the vDSO image.
pub const VDSO_CONSTANTS_PAGE: usize = 4096;

impl VdsoConstants {
    /// What the image holds before the kernel fills the block in.
    pub const UNSET: VdsoConstants = VdsoConstants {
        max_num_cpus: 1,
        dcache_line_size: 64,
        icache_line_size: 64,
        version_len: 5,
        ticks_per_second: 0,
        physmem: 0,
        version: *b"unset\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0",
    };

    /// A block with `version` (cut to 31 bytes) and the other fields given.
    pub fn new(max_num_cpus: u32, ticks_per_second: u64, physmem: u64, version: &str) -> Self {
        let mut c = VdsoConstants { max_num_cpus, ticks_per_second, physmem, ..Self::UNSET };
        c.version = [0; 32];
        let len = version.len().min(31);
        c.version[..len].copy_from_slice(&version.as_bytes()[..len]);
        c.version_len = len as u32;
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_version() {
        let c = VdsoConstants::new(4, 2_600_000_000, 1 << 30, "magnetar 0.1");
        let b = c.to_bytes();
        assert_eq!(&b[0..4], &4u32.to_le_bytes());
        assert_eq!(&b[12..16], &12u32.to_le_bytes());
        assert_eq!(&b[32..44], b"magnetar 0.1");
        assert_eq!(b[44], 0);
        assert_eq!(VdsoConstants::from_bytes(&b), c);
        assert_eq!(VdsoConstants::new(1, 0, 0, &"x".repeat(40)).version_len, 31);
    }
}
