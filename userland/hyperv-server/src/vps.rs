//! VPs (TLFS 2.0A §10), their registers, intercepts (§9) and what a child's
//! VP does that the server serves: synthetic MSRs, the Hyper-V CPUID
//! leaves, hypercalls, intercepted accesses.
//!
//! A VP's thread runs the VCPU and reports every exit; the VP is then
//! *stopped* and the manager owns its registers until it lets it run on.
//! It runs only while neither ExplicitSuspend nor InterceptSuspend is set.

use hv::abi::*;

use crate::manager::{cost, Call, Caller, Manager, Outcome, Space, State, Vp, VpSynic, MAX_VPS, PAGE};
use crate::platform::{GuestExit, Platform, Trap, VcpuRegs, R8, RAX, RBX, RCX, RDX};

const VECTOR_UD: u32 = 6;
const VECTOR_GP: u32 = 13;
/// CPUID is `0F A2`.
const CPUID_LEN: u8 = 2;

/// What a register name reads as, and whether it may be written.
#[derive(Clone, Copy, PartialEq, Eq)]
enum RegKind {
    ExplicitSuspend,
    InterceptSuspend,
    Gpr(usize),
    Rip,
    Rflags,
    Cr0,
    Cr2,
    Cr3,
    Cr4,
    Efer,
    Cs,
}

fn reg_kind(name: u32) -> Option<RegKind> {
    Some(match name {
        reg::EXPLICIT_SUSPEND => RegKind::ExplicitSuspend,
        reg::INTERCEPT_SUSPEND => RegKind::InterceptSuspend,
        reg::RAX..=reg::R15 => RegKind::Gpr((name - reg::RAX) as usize),
        reg::RIP => RegKind::Rip,
        reg::RFLAGS => RegKind::Rflags,
        reg::CR0 => RegKind::Cr0,
        reg::CR2 => RegKind::Cr2,
        reg::CR3 => RegKind::Cr3,
        reg::CR4 => RegKind::Cr4,
        reg::EFER => RegKind::Efer,
        reg::CS => RegKind::Cs,
        _ => return None,
    })
}

/// RFLAGS bits a guest may not have: reserved 3, 5, 15, 22-63 (and bit 1 is fixed at 1).
const RFLAGS_RESERVED: u64 = !0x003f_7fd7;

impl<P: Platform> Manager<P> {
    fn vp(&self, id: u64, index: u32) -> Result<&Vp<P>, HvStatus> {
        self.part(id)?.vps.get(&index).map(|v| &**v).ok_or(HvStatus::INVALID_VP_INDEX)
    }

    pub(crate) fn vp_mut(&mut self, id: u64, index: u32) -> Result<&mut Vp<P>, HvStatus> {
        self.part_mut(id)?.vps.get_mut(&index).map(|v| &mut **v).ok_or(HvStatus::INVALID_VP_INDEX)
    }

    pub(crate) fn create_vp(&mut self, call: Call<'_>) -> Result<(), HvStatus> {
        let input = CreateVpIn::read(call.input).ok_or(HvStatus::INVALID_ALIGNMENT)?;
        let id = self.target(&call.caller, input.partition_id)?;
        if !self.is_parent(call.caller.partition, id) {
            return Err(HvStatus::ACCESS_DENIED);
        }
        self.check_state(id, &[State::Active])?;
        if input.vp_index >= MAX_VPS || self.part(id)?.vps.contains_key(&input.vp_index) {
            return Err(HvStatus::INVALID_VP_INDEX);
        }
        if input.flags != 0 || !input.proximity_domain_info.is_acceptable() {
            return Err(HvStatus::INVALID_PARAMETER);
        }
        self.part_mut(id)?.pool.charge(cost::VP)?;
        let key = self.new_vp_key();
        let p = self.part_mut(id)?;
        let guest = p.guest.take();
        let created = match guest.as_ref() {
            Some(g) => self.platform.vp_create(g, key),
            None => Err(HvStatus::INVALID_PARTITION_STATE),
        };
        let p = self.part_mut(id)?;
        p.guest = guest;
        let (handle, regs) = match created {
            Ok(c) => c,
            Err(s) => {
                p.pool.refund(cost::VP);
                return Err(s);
            }
        };
        let vp = Vp {
            index: input.vp_index,
            explicit_suspend: true,
            intercept_suspend: false,
            stopped: true,
            regs,
            synic: VpSynic::default(),
            handle: Some(handle),
            key,
        };
        p.vps.insert(input.vp_index, alloc::boxed::Box::new(vp));
        self.vp_keys.insert(key, (id, input.vp_index));
        Ok(())
    }

    pub(crate) fn delete_vp(&mut self, call: Call<'_>) -> Result<(), HvStatus> {
        let input = DeleteVpIn::read(call.input).ok_or(HvStatus::INVALID_ALIGNMENT)?;
        let id = self.target(&call.caller, input.partition_id)?;
        if !self.is_parent(call.caller.partition, id) {
            return Err(HvStatus::ACCESS_DENIED);
        }
        self.check_state(id, &[State::Active])?;
        let p = self.part_mut(id)?;
        let vp = p.vps.remove(&input.vp_index).ok_or(HvStatus::INVALID_VP_INDEX)?;
        p.pool.refund(cost::VP);
        self.vp_keys.remove(&vp.key);
        if let Some(h) = vp.handle {
            self.platform.vp_destroy(h);
        }
        Ok(())
    }

    /// The VP a register call names: the parent's child, or (Get only) the
    /// calling guest's own VP.
    fn regs_target(&self, caller: &Caller, id: u64, index: u32, get: bool) -> Result<(u64, u32), HvStatus> {
        let id = self.target(caller, id)?;
        let own = id == caller.partition && caller.vp.is_some();
        if !(self.is_parent(caller.partition, id) || (get && own)) {
            return Err(HvStatus::ACCESS_DENIED);
        }
        self.check_state(id, &[State::Active])?;
        let index = match (index, caller.vp) {
            (VP_INDEX_SELF, Some(me)) if own => me,
            (i, _) => i,
        };
        self.vp(id, index)?;
        Ok((id, index))
    }

    pub(crate) fn get_vp_registers(&mut self, call: Call<'_>) -> Outcome {
        let Some(input) = VpRegistersIn::read(call.input) else { return HvStatus::INVALID_ALIGNMENT.into() };
        let (id, index) = match self.regs_target(&call.caller, input.partition_id, input.vp_index, true) {
            Ok(t) => t,
            Err(s) => return s.into(),
        };
        let Ok(vp) = self.vp(id, index) else { return HvStatus::INVALID_VP_INDEX.into() };
        let mut done = 0u16;
        for i in call.reps() {
            let at = VpRegistersIn::SIZE + 4 * i;
            let name = call.input.get(at..at + 4).map(u32::get).unwrap_or(u32::MAX);
            let Some(kind) = reg_kind(name) else { return Outcome { status: HvStatus::INVALID_PARAMETER, done } };
            let suspend = matches!(kind, RegKind::ExplicitSuspend | RegKind::InterceptSuspend);
            if !vp.stopped && !suspend {
                return Outcome { status: HvStatus::INVALID_VP_STATE, done };
            }
            let r = &vp.regs;
            let value: u128 = match kind {
                RegKind::ExplicitSuspend => u128::from(vp.explicit_suspend),
                RegKind::InterceptSuspend => u128::from(vp.intercept_suspend),
                RegKind::Gpr(n) => u128::from(r.gprs[n]),
                RegKind::Rip => u128::from(r.rip),
                RegKind::Rflags => u128::from(r.rflags),
                RegKind::Cr0 => u128::from(r.cr0),
                RegKind::Cr2 => u128::from(r.cr2),
                RegKind::Cr3 => u128::from(r.cr3),
                RegKind::Cr4 => u128::from(r.cr4),
                RegKind::Efer => u128::from(r.efer),
                RegKind::Cs => u128::from_le_bytes(r.cs.to_bytes()),
            };
            if let Some(slot) = call.output.get_mut(16 * i..16 * i + 16) {
                slot.copy_from_slice(&value.to_le_bytes());
            }
            done += 1;
        }
        Outcome { status: HvStatus::SUCCESS, done }
    }

    pub(crate) fn set_vp_registers(&mut self, call: Call<'_>) -> Outcome {
        let Some(input) = VpRegistersIn::read(call.input) else { return HvStatus::INVALID_ALIGNMENT.into() };
        let (id, index) = match self.regs_target(&call.caller, input.partition_id, input.vp_index, false) {
            Ok(t) => t,
            Err(s) => return s.into(),
        };
        let mut done = 0u16;
        let mut status = HvStatus::SUCCESS;
        for i in call.reps() {
            let at = VpRegistersIn::SIZE + RegisterAssoc::SIZE * i;
            let Some(assoc) = call.input.get(at..).and_then(RegisterAssoc::read) else {
                status = HvStatus::INVALID_PARAMETER;
                break;
            };
            let Ok(vp) = self.vp_mut(id, index) else { return HvStatus::INVALID_VP_INDEX.into() };
            if let Err(s) = set_register(vp, assoc) {
                status = s;
                break;
            }
            done += 1;
        }
        self.maybe_run(id, index);
        Outcome { status, done }
    }

    /// Lets a stopped VP run when nothing holds it.
    pub(crate) fn maybe_run(&mut self, id: u64, index: u32) {
        let Some(vp) = self.parts.get_mut(&id).and_then(|p| p.vps.get_mut(&index)) else { return };
        if vp.stopped && !vp.explicit_suspend && !vp.intercept_suspend {
            vp.stopped = false;
            if let Some(h) = vp.handle.as_ref() {
                self.platform.vp_resume(h, &vp.regs);
            }
        }
    }

    // ------------------------------------------------------------ intercepts

    pub(crate) fn install_intercept(&mut self, call: Call<'_>) -> Result<(), HvStatus> {
        let input = InstallInterceptIn::read(call.input).ok_or(HvStatus::INVALID_ALIGNMENT)?;
        let id = self.target(&call.caller, input.partition_id)?;
        if !self.is_parent(call.caller.partition, id) {
            return Err(HvStatus::ACCESS_DENIED);
        }
        self.check_state(id, &[State::Active])?;
        let (ty, mask, param) = (input.intercept_type, input.access_type, input.intercept_parameter);
        if !matches!(ty, intercept::X64_IO_PORT | intercept::X64_MSR | intercept::X64_CPUID | intercept::X64_EXCEPTION)
        {
            return Err(HvStatus::INVALID_PARAMETER);
        }
        if mask != intercept::ACCESS_NONE && !intercept::access_valid(ty, mask) {
            return Err(HvStatus::INVALID_PARAMETER);
        }
        let param_ok = match ty {
            intercept::X64_IO_PORT => param <= 0xFFFF,
            intercept::X64_MSR => param == 0,
            intercept::X64_CPUID => param <= u64::from(u32::MAX),
            _ => param < 32,
        };
        if !param_ok {
            return Err(HvStatus::INVALID_PARAMETER);
        }
        let p = self.part_mut(id)?;
        let guest = p.guest.take();
        let result = self.install(id, guest.as_ref(), ty, mask, param);
        if let Ok(p) = self.part_mut(id) {
            p.guest = guest;
        }
        result
    }

    fn install(&mut self, id: u64, guest: Option<&P::Guest>, ty: u32, mask: u32, param: u64) -> Result<(), HvStatus> {
        let guest = guest.ok_or(HvStatus::INVALID_PARTITION_STATE)?;
        match ty {
            intercept::X64_IO_PORT => {
                let port = param as u16;
                if mask != 0 && !self.part(id)?.intercepts.io_trapped.contains(&port) {
                    self.platform.guest_trap(guest, Trap::Io, u64::from(port), 1)?;
                    self.part_mut(id)?.intercepts.io_trapped.insert(port);
                }
                let i = &mut self.part_mut(id)?.intercepts;
                if mask == 0 {
                    i.io.remove(&port);
                } else {
                    i.io.insert(port, mask);
                }
            }
            intercept::X64_MSR => self.part_mut(id)?.intercepts.msr = mask,
            intercept::X64_CPUID => {
                let leaf = param as u32;
                let p = self.part_mut(id)?;
                let had = p.intercepts.cpuid.contains(&leaf);
                if mask == 0 && had {
                    p.intercepts.cpuid.remove(&leaf);
                    p.pool.refund(cost::CPUID_INTERCEPT);
                } else if mask != 0 && !had {
                    p.pool.charge(cost::CPUID_INTERCEPT)?;
                    p.intercepts.cpuid.insert(leaf);
                }
            }
            _ => {
                let vector = param as u8;
                if mask != 0 && !self.part(id)?.intercepts.exception_trapped.contains(&vector) {
                    self.platform.guest_trap(guest, Trap::Exception, u64::from(vector), 1)?;
                    self.part_mut(id)?.intercepts.exception_trapped.insert(vector);
                }
                let i = &mut self.part_mut(id)?.intercepts;
                if mask == 0 {
                    i.exception.remove(&vector);
                } else {
                    i.exception.insert(vector, mask);
                }
            }
        }
        Ok(())
    }

    // ------------------------------------------------------------ exits

    /// A VP's thread stopped with `regs` for `exit`; `key` names the VP.
    pub fn vp_exit(&mut self, key: u64, regs: VcpuRegs, exit: GuestExit) {
        let Some(&(id, index)) = self.vp_keys.get(&key) else { return };
        let Ok(vp) = self.vp_mut(id, index) else { return };
        vp.stopped = true;
        vp.regs = regs;
        match exit {
            GuestExit::Created => {}
            GuestExit::Io { port, size, input, data } => self.io_exit(id, index, port, size, input, data),
            GuestExit::Msr { msr, write, value, inst_len } => self.msr_exit(id, index, msr, write, value, inst_len),
            GuestExit::Cpuid { leaf, subleaf } => self.cpuid_exit(id, index, leaf, subleaf),
            GuestExit::Exception { vector, error_code, cr2 } => self.exception_exit(id, index, vector, error_code, cr2),
            GuestExit::Vmcall { inst_len } => self.vmcall_exit(id, index, inst_len),
            GuestExit::Failed(_) => {
                let header = self.intercept_header(id, index, 0, intercept::ACCESS_TYPE_EXECUTE);
                let mut payload = [0u8; MESSAGE_PAYLOAD_SIZE];
                header.write(&mut payload);
                self.intercept(id, index, message_type::UNRECOVERABLE_EXCEPTION, &payload[..InterceptHeader::SIZE]);
            }
        }
        self.maybe_run(id, index);
    }

    fn regs_mut(&mut self, id: u64, index: u32) -> Option<&mut VcpuRegs> {
        self.vp_mut(id, index).ok().map(|v| &mut v.regs)
    }

    fn regs(&self, id: u64, index: u32) -> VcpuRegs {
        self.vp(id, index).map(|v| v.regs).unwrap_or_default()
    }

    /// Moves RIP back by `len` and raises `vector` (#GP, #UD) at the instruction.
    fn fault(&mut self, id: u64, index: u32, len: u8, vector: u32) {
        if let Some(r) = self.regs_mut(id, index) {
            r.rip = r.rip.wrapping_sub(u64::from(len));
        }
        self.raise(id, index, vector);
    }

    pub(crate) fn raise(&mut self, id: u64, index: u32, vector: u32) {
        if let Some(h) = self.parts.get(&id).and_then(|p| p.vps.get(&index)).and_then(|v| v.handle.as_ref()) {
            self.platform.vp_interrupt(h, vector);
        }
    }

    fn intercept_header(&self, id: u64, index: u32, len: u8, access: u8) -> InterceptHeader {
        let r = self.regs(id, index);
        let mut state = u16::from(r.cpl & 3);
        if r.cr0 & 1 != 0 {
            state |= InterceptHeader::EXEC_CR0_PE;
        }
        if r.cr0 & (1 << 18) != 0 {
            state |= InterceptHeader::EXEC_CR0_AM;
        }
        if r.efer & (1 << 10) != 0 {
            state |= InterceptHeader::EXEC_EFER_LMA;
        }
        InterceptHeader {
            vp_index: index,
            instruction_length: len,
            intercept_access_type: access,
            execution_state: state,
            cs: r.cs,
            rip: r.rip,
            rflags: r.rflags,
        }
    }

    /// Suspends the VP and sends an intercept message to the parent's SINT0.
    fn intercept(&mut self, id: u64, index: u32, message_type: u32, payload: &[u8]) {
        let Ok(vp) = self.vp_mut(id, index) else { return };
        vp.intercept_suspend = true;
        let Some(parent) = self.parts.get(&id).and_then(|p| p.parent) else { return };
        let mut message = HvMessage::default();
        message.header.message_type = message_type;
        message.header.payload_size = payload.len().min(MESSAGE_PAYLOAD_SIZE) as u8;
        message.header.origination_id = id;
        message.payload[..payload.len().min(MESSAGE_PAYLOAD_SIZE)]
            .copy_from_slice(&payload[..payload.len().min(MESSAGE_PAYLOAD_SIZE)]);
        self.send(parent, 0, 0, crate::manager::Queued { message, port: None });
    }

    fn io_exit(&mut self, id: u64, index: u32, port: u16, size: u8, input: bool, data: u32) {
        let mask = self.part(id).ok().and_then(|p| p.intercepts.io.get(&port).copied()).unwrap_or(0);
        let wanted = if input { intercept::ACCESS_READ } else { intercept::ACCESS_WRITE };
        if mask & wanted == 0 {
            // No intercept (any more): an IN reads all ones, an OUT is dropped.
            if input {
                if let Some(r) = self.regs_mut(id, index) {
                    let bits = u64::MAX >> (64 - 8 * u32::from(size.clamp(1, 4)));
                    r.gprs[RAX] |= bits;
                }
            }
            return;
        }
        let len = self.io_length(id, index, port, size, input);
        let mut r = self.regs(id, index);
        r.rip = r.rip.wrapping_sub(u64::from(len));
        if let Some(regs) = self.regs_mut(id, index) {
            *regs = r;
        }
        let access = if input { intercept::ACCESS_TYPE_READ } else { intercept::ACCESS_TYPE_WRITE };
        let header = self.intercept_header(id, index, len, access);
        let rax = if input { r.gprs[RAX] } else { u64::from(data) };
        let msg = IoPortIntercept {
            header,
            port_number: port,
            access_info: IoPortIntercept::access_size_bits(size),
            rax,
            rcx: r.gprs[RCX],
            rsi: r.gprs[6],
            rdi: r.gprs[7],
            ..Default::default()
        };
        self.intercept(id, index, message_type::X64_IO_PORT_INTERCEPT, &msg.to_bytes());
    }

    /// The length of the IN/OUT that just ran (RIP is past it), from the
    /// code bytes before RIP: `[66] E4-E7 imm8` or `[66] EC-EF`.
    fn io_length(&self, id: u64, index: u32, port: u16, size: u8, input: bool) -> u8 {
        let r = self.regs(id, index);
        let mut b = [0u8; 3];
        if !self.virt_read(id, &r, r.rip.wrapping_sub(3), &mut b) {
            return 1;
        }
        let wide = |op: u8, prefix: u8| match op & 1 {
            0 => 1,
            _ if prefix == 0x66 => 2,
            _ => 4,
        };
        let dir_in = |op: u8| op & 2 == 0;
        let prefix_len = |prefix: u8, op: u8| u8::from(prefix == 0x66 && op & 1 == 1);
        let dx = (r.gprs[RDX] & 0xffff) as u16;
        let (op1, p1) = (b[2], b[1]);
        let dx_form = (0xEC..=0xEF).contains(&op1) && dir_in(op1) == input && wide(op1, p1) == size && dx == port;
        let (op2, p2) = (b[1], b[0]);
        let imm_form =
            (0xE4..=0xE7).contains(&op2) && dir_in(op2) == input && wide(op2, p2) == size && u16::from(b[2]) == port;
        if dx_form {
            1 + prefix_len(p1, op1)
        } else if imm_form {
            2 + prefix_len(p2, op2)
        } else {
            1
        }
    }

    /// Reads guest-virtual memory of the VP whose registers are `r`
    /// (identity without paging; 4-level tables in long mode).
    fn virt_read(&self, id: u64, r: &VcpuRegs, gva: u64, out: &mut [u8]) -> bool {
        let paging = r.cr0 & (1 << 31) != 0;
        if !paging {
            return self.guest_read(id, gva, out);
        }
        if r.efer & (1 << 10) == 0 {
            return false;
        }
        let mut done = 0;
        while done < out.len() {
            let va = gva.wrapping_add(done as u64);
            let Some(pa) = self.translate(id, r.cr3, va) else { return false };
            let n = ((PAGE - va % PAGE) as usize).min(out.len() - done);
            if !self.guest_read(id, pa, &mut out[done..done + n]) {
                return false;
            }
            done += n;
        }
        true
    }

    fn translate(&self, id: u64, cr3: u64, va: u64) -> Option<u64> {
        const ADDR: u64 = 0x000f_ffff_ffff_f000;
        let mut table = cr3 & ADDR;
        for level in (0..4).rev() {
            let idx = (va >> (12 + 9 * level)) & 0x1ff;
            let mut e = [0u8; 8];
            if !self.guest_read(id, table + idx * 8, &mut e) {
                return None;
            }
            let e = u64::from_le_bytes(e);
            if e & 1 == 0 {
                return None;
            }
            if level > 0 && level < 3 && e & (1 << 7) != 0 {
                let span = 1u64 << (12 + 9 * level);
                return Some((e & ADDR & !(span - 1)) | (va & (span - 1)));
            }
            table = e & ADDR;
        }
        Some(table | (va & 0xfff))
    }

    fn msr_exit(&mut self, id: u64, index: u32, msr: u32, write: bool, value: u64, len: u8) {
        let handled = if (msr::GUEST_OS_ID..=msr::SINT15).contains(&msr) {
            self.synthetic_msr(id, index, msr, write, value)
        } else {
            None
        };
        match handled {
            Some(Ok(read)) => {
                if !write {
                    if let Some(r) = self.regs_mut(id, index) {
                        r.gprs[RAX] = read & 0xffff_ffff;
                        r.gprs[RDX] = read >> 32;
                    }
                }
            }
            Some(Err(())) => self.fault(id, index, len, VECTOR_GP),
            None => {
                let mask = self.part(id).map_or(0, |p| p.intercepts.msr);
                let wanted = if write { intercept::ACCESS_WRITE } else { intercept::ACCESS_READ };
                if mask & wanted == 0 {
                    self.fault(id, index, len, VECTOR_GP);
                    return;
                }
                if let Some(r) = self.regs_mut(id, index) {
                    r.rip = r.rip.wrapping_sub(u64::from(len));
                }
                let r = self.regs(id, index);
                let access = if write { intercept::ACCESS_TYPE_WRITE } else { intercept::ACCESS_TYPE_READ };
                let msg = MsrIntercept {
                    header: self.intercept_header(id, index, len, access),
                    msr_number: msr,
                    reserved: 0,
                    rdx: r.gprs[RDX],
                    rax: r.gprs[RAX],
                };
                self.intercept(id, index, message_type::X64_MSR_INTERCEPT, &msg.to_bytes());
            }
        }
    }

    /// A Hyper-V MSR: `Some(Ok(value read))`, `Some(Err)` for #GP, `None`
    /// when it is not one the server implements.
    fn synthetic_msr(&mut self, id: u64, index: u32, msr: u32, write: bool, value: u64) -> Option<Result<u64, ()>> {
        let privs = self.privileges(id);
        let need = match msr {
            msr::GUEST_OS_ID | msr::HYPERCALL => privilege::ACCESS_HYPERCALL_MSRS,
            msr::VP_INDEX => privilege::ACCESS_VP_INDEX,
            msr::SCONTROL..=msr::EOM | msr::SINT0..=msr::SINT15 => privilege::ACCESS_SYNIC_MSRS,
            _ => return None,
        };
        if privs & need == 0 {
            return Some(Err(()));
        }
        let p = self.parts.get_mut(&id)?;
        Some(match (msr, write) {
            (msr::GUEST_OS_ID, false) => Ok(p.guest_os_id),
            (msr::GUEST_OS_ID, true) => {
                p.guest_os_id = value;
                if value == 0 {
                    p.hypercall_msr &= !msr::HYPERCALL_ENABLE;
                }
                Ok(0)
            }
            (msr::HYPERCALL, false) => Ok(p.hypercall_msr),
            (msr::HYPERCALL, true) => self.write_hypercall_msr(id, value),
            (msr::VP_INDEX, false) => Ok(u64::from(index)),
            (msr::VP_INDEX, true) | (msr::SVERSION, true) => Err(()),
            (msr::SVERSION, false) => Ok(msr::SVERSION_VALUE),
            (msr::EOM, false) => Ok(0),
            (msr::EOM, true) => {
                self.vp_end_of_message(id, index);
                Ok(0)
            }
            (m, w) => self.synic_msr(id, index, m, w, value),
        })
    }

    fn write_hypercall_msr(&mut self, id: u64, value: u64) -> Result<u64, ()> {
        let p = self.parts.get_mut(&id).ok_or(())?;
        let mut value = value & !0x2; // Locked is not implemented.
        if p.guest_os_id == 0 {
            value &= !msr::HYPERCALL_ENABLE;
        }
        if value & msr::HYPERCALL_ENABLE != 0 {
            let gpa = value & !(PAGE - 1);
            if !self.guest_write(id, gpa, &HYPERCALL_PAGE_CODE) {
                return Err(());
            }
        }
        if let Some(p) = self.parts.get_mut(&id) {
            p.hypercall_msr = value;
        }
        Ok(0)
    }

    fn synic_msr(&mut self, id: u64, index: u32, m: u32, write: bool, value: u64) -> Result<u64, ()> {
        let vp = self.vp_mut(id, index).map_err(|_| ())?;
        let s = &mut vp.synic;
        let slot = match m {
            msr::SCONTROL => &mut s.scontrol,
            msr::SIEFP => &mut s.siefp,
            msr::SIMP => &mut s.simp,
            msr::SINT0..=msr::SINT15 => &mut s.sints[(m - msr::SINT0) as usize],
            _ => return Err(()),
        };
        if !write {
            return Ok(*slot);
        }
        if (msr::SINT0..=msr::SINT15).contains(&m) && (value & msr::SINT_VECTOR_MASK) < 16 {
            return Err(());
        }
        *slot = value;
        // A SIM page or SINT just enabled may take a queued message.
        self.vp_end_of_message(id, index);
        Ok(0)
    }

    fn cpuid_exit(&mut self, id: u64, index: u32, leaf: u32, subleaf: u32) {
        let privs = self.privileges(id);
        let Some(r) = self.regs_mut(id, index) else { return };
        let mut result = [r.gprs[RAX] as u32, r.gprs[RBX] as u32, r.gprs[RCX] as u32, r.gprs[RDX] as u32];
        match leaf {
            1 => result[2] |= cpuid::HYPERVISOR_PRESENT,
            cpuid::VENDOR => result = [cpuid::MAX_LEAF, cpuid::VENDOR_EBX, cpuid::VENDOR_ECX, cpuid::VENDOR_EDX],
            cpuid::INTERFACE => result = [cpuid::INTERFACE_SIGNATURE, 0, 0, 0],
            cpuid::VERSION => result = [1, 0x0001_0000, 0, 0],
            cpuid::FEATURES => result = [privs as u32, (privs >> 32) as u32, 0, 0],
            cpuid::ENLIGHTENMENTS => result = [0, u32::MAX, 0, 0],
            cpuid::LIMITS => result = [MAX_VPS, MAX_VPS, 0, 0],
            0x4000_0006..=0x4000_00FF => result = [0; 4],
            _ => {}
        }
        let intercepted = self.part(id).is_ok_and(|p| p.intercepts.cpuid.contains(&leaf));
        let Some(r) = self.regs_mut(id, index) else { return };
        if !intercepted {
            r.gprs[RAX] = u64::from(result[0]);
            r.gprs[RBX] = u64::from(result[1]);
            r.gprs[RCX] = u64::from(result[2]);
            r.gprs[RDX] = u64::from(result[3]);
            return;
        }
        // Back to the state before the instruction: the kernel already put
        // its result in EAX-EDX; the leaf and subleaf go back (EBX and EDX
        // keep the kernel's result: CPUID overwrites them anyway).
        r.rip = r.rip.wrapping_sub(u64::from(CPUID_LEN));
        r.gprs[RAX] = u64::from(leaf);
        r.gprs[RCX] = u64::from(subleaf);
        let r = *r;
        let msg = CpuidIntercept {
            header: self.intercept_header(id, index, CPUID_LEN, intercept::ACCESS_TYPE_EXECUTE),
            rax: r.gprs[RAX],
            rcx: r.gprs[RCX],
            rdx: r.gprs[RDX],
            rbx: r.gprs[RBX],
            default_result_rax: u64::from(result[0]),
            default_result_rcx: u64::from(result[2]),
            default_result_rdx: u64::from(result[3]),
            default_result_rbx: u64::from(result[1]),
        };
        self.intercept(id, index, message_type::X64_CPUID_INTERCEPT, &msg.to_bytes());
    }

    fn exception_exit(&mut self, id: u64, index: u32, vector: u8, error_code: Option<u32>, cr2: u64) {
        let intercepted = self.part(id).is_ok_and(|p| p.intercepts.exception.contains_key(&vector));
        // #BP (INT3) and #OF (INTO) come back at their 1-byte instruction.
        let len = u8::from(matches!(vector, 3 | 4));
        if !intercepted {
            // The intercept was removed: deliver the exception as if there
            // were none (a trap-type one after its instruction).
            if let Some(r) = self.regs_mut(id, index) {
                r.rip = r.rip.wrapping_add(u64::from(len));
            }
            self.raise(id, index, u32::from(vector));
            return;
        }
        let r = self.regs(id, index);
        let g = r.gprs;
        let msg = ExceptionIntercept {
            header: self.intercept_header(id, index, len, intercept::ACCESS_TYPE_EXECUTE),
            exception_vector: u16::from(vector),
            exception_info: u8::from(error_code.is_some()),
            error_code: error_code.unwrap_or(0),
            exception_parameter: if vector == 14 { cr2 } else { 0 },
            rax: g[0],
            rcx: g[1],
            rdx: g[2],
            rbx: g[3],
            rsp: g[4],
            rbp: g[5],
            rsi: g[6],
            rdi: g[7],
            r8: g[8],
            r9: g[9],
            r10: g[10],
            r11: g[11],
            r12: g[12],
            r13: g[13],
            r14: g[14],
            r15: g[15],
            ..Default::default()
        };
        self.intercept(id, index, message_type::X64_EXCEPTION_INTERCEPT, &msg.to_bytes());
    }

    /// A hypercall from a child's VP: #UD from CPL > 0, real mode, or
    /// without the hypercall page enabled; else served with the partition's
    /// privileges, RAX = the result value.
    fn vmcall_exit(&mut self, id: u64, index: u32, len: u8) {
        let r = self.regs(id, index);
        let enabled = self.part(id).is_ok_and(|p| p.hypercall_msr & msr::HYPERCALL_ENABLE != 0);
        if r.cpl != 0 || !r.protected() || !enabled {
            self.fault(id, index, len, VECTOR_UD);
            return;
        }
        let caller = Caller { partition: id, vp: Some(index), space: Space::Guest };
        let result = self.hypercall(caller, r.gprs[RCX], r.gprs[RDX], r.gprs[R8]);
        if let Some(r) = self.regs_mut(id, index) {
            r.gprs[RAX] = result.raw();
        }
    }
}

/// Writes one register of a VP (`HvSetVpRegisters` element).
fn set_register<P: Platform>(vp: &mut Vp<P>, assoc: RegisterAssoc) -> Result<(), HvStatus> {
    let kind = reg_kind(assoc.name).ok_or(HvStatus::INVALID_PARAMETER)?;
    let value = assoc.value;
    match kind {
        RegKind::ExplicitSuspend => {
            if value > 1 {
                return Err(HvStatus::INVALID_PARAMETER);
            }
            vp.explicit_suspend = value == 1;
            return Ok(());
        }
        RegKind::InterceptSuspend => {
            // Only the hypervisor sets it.
            if value > u128::from(vp.intercept_suspend) {
                return Err(HvStatus::INVALID_PARAMETER);
            }
            vp.intercept_suspend = value == 1;
            return Ok(());
        }
        _ => {}
    }
    if !vp.stopped {
        return Err(HvStatus::INVALID_VP_STATE);
    }
    let v = u64::try_from(value).map_err(|_| HvStatus::INVALID_PARAMETER)?;
    let r = &mut vp.regs;
    match kind {
        RegKind::Gpr(n) => r.gprs[n] = v,
        RegKind::Rip => r.rip = v,
        RegKind::Rflags => {
            if v & RFLAGS_RESERVED != 0 || v & 2 == 0 {
                return Err(HvStatus::INVALID_PARAMETER);
            }
            r.rflags = v;
        }
        RegKind::Cr3 => {
            if v >= crate::manager::CHILD_GPA_PAGES * PAGE {
                return Err(HvStatus::INVALID_PARAMETER);
            }
            r.cr3 = v;
        }
        // The kernel applies RIP, RFLAGS and CR3 only: the others keep
        // their value (writing the same value is accepted).
        RegKind::Cr0 if v == r.cr0 => {}
        RegKind::Cr2 if v == r.cr2 => {}
        RegKind::Cr4 if v == r.cr4 => {}
        RegKind::Efer if v == r.efer => {}
        _ => return Err(HvStatus::INVALID_PARAMETER),
    }
    Ok(())
}
