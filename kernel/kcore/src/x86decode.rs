//! An x86 instruction-length decoder, for guest MMIO exits.
//!
//! When a guest touches a trapped guest-physical page, the kernel hands the
//! VMM the faulting instruction's bytes and must first move the guest RIP
//! past that instruction. The CPU (without AMD's NRIPS and DecodeAssists,
//! as under QEMU's emulator) does not say how long the instruction is, so
//! the kernel decodes it: legacy prefixes (operand size, address size,
//! segment, LOCK, REP), REX in 64-bit mode, one- and two-byte opcodes,
//! ModRM with SIB and displacements (16-bit addressing too), and immediates.
//!
//! The opcode set is the one MMIO code uses: MOV in all its forms (register,
//! immediate, `moffs`), MOVZX/MOVSX/MOVSXD, TEST, the ALU group (ADD, OR,
//! ADC, SBB, AND, SUB, XOR, CMP, with register and immediate forms), INC,
//! DEC, NOT, NEG and the other group 3/4/5 forms, shifts, XCHG, CMPXCHG,
//! XADD, BT*, SETcc, CMOVcc, the string instructions (STOS, MOVS, LODS,
//! CMPS, SCAS) and the common SSE moves (MOVD, MOVQ, MOVAPS/MOVUPS,
//! MOVDQA/MOVDQU, MOVNTI). Anything else is [`DecodeError::Unsupported`], so
//! the kernel never guesses a length.

/// The code size the guest runs at (CS.L, CS.D and CR0.PE decide it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Real mode or a 16-bit code segment.
    Bits16,
    /// A 32-bit code segment (also compatibility mode).
    Bits32,
    /// 64-bit mode (EFER.LMA and CS.L).
    Bits64,
}

impl Mode {
    /// The mode for a guest's `cr0`, `efer` and code-segment `l` and `d` bits.
    pub fn from_state(cr0_pe: bool, efer_lma: bool, cs_l: bool, cs_d: bool) -> Mode {
        if !cr0_pe {
            Mode::Bits16
        } else if efer_lma && cs_l {
            Mode::Bits64
        } else if cs_d {
            Mode::Bits32
        } else {
            Mode::Bits16
        }
    }
}

/// The longest legal x86 instruction.
pub const MAX_LEN: usize = 15;

/// What the decoder learnt about one instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Instruction {
    /// Bytes it occupies (1 to 15).
    pub len: u8,
    /// The opcode: `0x00..=0xFF` for one-byte opcodes, `0x0F00 | b` for
    /// two-byte ones.
    pub opcode: u16,
    /// The ModRM byte, if the instruction has one.
    pub modrm: Option<u8>,
    /// The REX byte (0 if none).
    pub rex: u8,
    /// Operand size in bytes for the instruction's "v" operands (2, 4 or 8).
    pub operand_size: u8,
    /// Address size in bytes (2, 4 or 8).
    pub address_size: u8,
    /// An F3 (REP/REPE) or F2 (REPNE) prefix was present.
    pub rep: bool,
    /// An F0 (LOCK) prefix was present.
    pub lock: bool,
}

impl Instruction {
    /// The general register (0 = RAX ... 15 = R15, in encoding order) a
    /// MOV to CR8 reads: `[REX.R] 0F 22 /r` naming control register 8, or
    /// AMD's `F0 0F 22 /r` naming 0 (CR8 outside 64-bit mode). `None` for
    /// any other instruction. MOV to a control register always takes a
    /// register operand, whatever ModRM.mod says.
    pub fn mov_to_cr8_source(&self) -> Option<usize> {
        let modrm = self.modrm?;
        if self.opcode != 0x0f22 {
            return None;
        }
        let control = ((modrm >> 3) & 7) | if self.rex & 0x4 != 0 { 8 } else { 0 };
        if control != 8 && !(self.lock && control == 0) {
            return None;
        }
        Some(usize::from(modrm & 7) | if self.rex & 0x1 != 0 { 8 } else { 0 })
    }
}

/// Why an instruction could not be decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// The bytes ended before the instruction did (fetch more, up to 15).
    Truncated,
    /// The instruction would be longer than 15 bytes.
    TooLong,
    /// An opcode outside the supported set (the value as in
    /// [`Instruction::opcode`]).
    Unsupported(u16),
}

/// What follows an opcode.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Operands {
    None,
    ModRm,
    ModRmImm8,
    /// ModRM then an immediate of the operand size (at most 4 bytes).
    ModRmImmZ,
    Imm8,
    ImmZ,
    /// MOV r, imm: the full operand size (8 bytes with REX.W).
    ImmV,
    /// A memory offset of the address size (MOV A0-A3).
    Moffs,
    /// Group 3 (F6/F7): an immediate only for TEST (/0 and /1).
    Group3Byte,
    Group3Full,
    /// A ModRM that always names registers (MOV to or from a control or
    /// debug register): no SIB or displacement, whatever its mod says.
    ModRmRegisters,
}

fn one_byte(op: u8, mode: Mode) -> Option<Operands> {
    use Operands::*;
    Some(match op {
        // The ALU rows: op r/m,r; op r,r/m (byte and full); op AL,imm8; op eAX,immz.
        0x00..=0x3f if op & 7 <= 3 => ModRm,
        0x00..=0x3f if op & 7 == 4 => Imm8,
        0x00..=0x3f if op & 7 == 5 => ImmZ,
        0x63 if mode == Mode::Bits64 => ModRm,
        0x69 => ModRmImmZ,
        0x6b => ModRmImm8,
        0x80 | 0x83 => ModRmImm8,
        0x81 => ModRmImmZ,
        0x84..=0x8b | 0x8c | 0x8e | 0x8f => ModRm,
        0x90 => None,
        0xa0..=0xa3 => Moffs,
        0xa4..=0xa7 | 0xaa..=0xaf => None,
        0xa8 => Imm8,
        0xa9 => ImmZ,
        0xb0..=0xb7 => Imm8,
        0xb8..=0xbf => ImmV,
        0xc0 | 0xc1 => ModRmImm8,
        0xc6 => ModRmImm8,
        0xc7 => ModRmImmZ,
        0xd0..=0xd3 => ModRm,
        0xf6 => Group3Byte,
        0xf7 => Group3Full,
        0xfe | 0xff => ModRm,
        _ => return Option::None,
    })
}

fn two_byte(op: u8) -> Option<Operands> {
    use Operands::*;
    Some(match op {
        // SSE moves: MOVUPS/MOVUPD/MOVSS/MOVSD, MOVAPS/MOVAPD, MOVNTPS.
        0x10 | 0x11 | 0x28 | 0x29 | 0x2b => ModRm,
        // Hint NOPs and prefetches.
        0x0d | 0x18..=0x1f => ModRm,
        // MOV from/to control and debug registers.
        0x20..=0x23 => ModRmRegisters,
        0x40..=0x4f => ModRm,
        // MOVD/MOVQ, MOVQ/MOVDQA/MOVDQU.
        0x6e | 0x6f | 0x7e | 0x7f | 0xd6 | 0xe7 => ModRm,
        0x90..=0x9f => ModRm,
        0xa3 | 0xab | 0xb3 | 0xbb => ModRm,
        0xb0 | 0xb1 | 0xb6 | 0xb7 | 0xbe | 0xbf => ModRm,
        0xba => ModRmImm8,
        0xc0 | 0xc1 | 0xc3 | 0xc7 => ModRm,
        _ => return Option::None,
    })
}

/// A byte cursor that fails with `Truncated` at the end of the input and
/// `TooLong` past 15 bytes.
struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Cursor<'_> {
    fn next(&mut self) -> Result<u8, DecodeError> {
        if self.at >= MAX_LEN {
            return Err(DecodeError::TooLong);
        }
        let b = *self.bytes.get(self.at).ok_or(DecodeError::Truncated)?;
        self.at += 1;
        Ok(b)
    }

    fn skip(&mut self, n: usize) -> Result<(), DecodeError> {
        for _ in 0..n {
            self.next()?;
        }
        Ok(())
    }
}

/// Decodes the instruction at the start of `bytes` (pass up to 15 bytes).
pub fn decode(bytes: &[u8], mode: Mode) -> Result<Instruction, DecodeError> {
    let mut c = Cursor { bytes, at: 0 };
    let (mut opsize_prefix, mut addr_prefix, mut rep, mut lock) = (false, false, false, false);
    let mut rex = 0u8;
    let mut b = c.next()?;
    loop {
        match b {
            0x66 => opsize_prefix = true,
            0x67 => addr_prefix = true,
            0xf2 | 0xf3 => rep = true,
            0xf0 => lock = true,
            0x26 | 0x2e | 0x36 | 0x3e | 0x64 | 0x65 => {}
            0x40..=0x4f if mode == Mode::Bits64 => {
                // REX counts only right before the opcode: read on, and
                // forget it if a legacy prefix follows.
                rex = b;
                b = c.next()?;
                if matches!(b, 0x66 | 0x67 | 0xf2 | 0xf3 | 0xf0 | 0x26 | 0x2e | 0x36 | 0x3e | 0x64 | 0x65)
                    || (0x40..=0x4f).contains(&b)
                {
                    rex = 0;
                    continue;
                }
                break;
            }
            _ => break,
        }
        b = c.next()?;
    }
    let rex_w = rex & 0x08 != 0;
    let operand_size: u8 = match mode {
        Mode::Bits64 if rex_w => 8,
        Mode::Bits64 | Mode::Bits32 => {
            if opsize_prefix {
                2
            } else {
                4
            }
        }
        Mode::Bits16 => {
            if opsize_prefix {
                4
            } else {
                2
            }
        }
    };
    let address_size: u8 = match (mode, addr_prefix) {
        (Mode::Bits64, false) => 8,
        (Mode::Bits64, true) | (Mode::Bits32, false) | (Mode::Bits16, true) => 4,
        (Mode::Bits32, true) | (Mode::Bits16, false) => 2,
    };
    let (opcode, operands) = if b == 0x0f {
        let b2 = c.next()?;
        let opcode = 0x0f00 | u16::from(b2);
        (opcode, two_byte(b2).ok_or(DecodeError::Unsupported(opcode))?)
    } else {
        (u16::from(b), one_byte(b, mode).ok_or(DecodeError::Unsupported(u16::from(b)))?)
    };
    let immz = if operand_size == 2 { 2 } else { 4 };
    let mut modrm = None;
    let has_modrm =
        !matches!(operands, Operands::None | Operands::Imm8 | Operands::ImmZ | Operands::ImmV | Operands::Moffs);
    if has_modrm {
        let m = c.next()?;
        modrm = Some(m);
        if !matches!(operands, Operands::ModRmRegisters) {
            skip_modrm_tail(&mut c, m, address_size == 2)?;
        }
    }
    let imm = match operands {
        Operands::None | Operands::ModRm | Operands::ModRmRegisters => 0,
        Operands::ModRmImm8 | Operands::Imm8 => 1,
        Operands::ModRmImmZ | Operands::ImmZ => immz,
        Operands::ImmV => usize::from(operand_size),
        Operands::Moffs => usize::from(address_size),
        Operands::Group3Byte | Operands::Group3Full => {
            let reg = modrm.map_or(0, |m| (m >> 3) & 7);
            match (reg, operands) {
                (0 | 1, Operands::Group3Byte) => 1,
                (0 | 1, _) => immz,
                _ => 0,
            }
        }
    };
    c.skip(imm)?;
    Ok(Instruction { len: c.at as u8, opcode, modrm, rex, operand_size, address_size, rep, lock })
}

/// Skips the SIB byte and displacement a ModRM byte calls for.
fn skip_modrm_tail(c: &mut Cursor, modrm: u8, addr16: bool) -> Result<(), DecodeError> {
    let (md, rm) = (modrm >> 6, modrm & 7);
    if md == 3 {
        return Ok(());
    }
    if addr16 {
        let disp = match md {
            0 if rm == 6 => 2,
            0 => 0,
            1 => 1,
            _ => 2,
        };
        return c.skip(disp);
    }
    let mut disp = match md {
        0 => 0,
        1 => 1,
        _ => 4,
    };
    if rm == 4 {
        let sib = c.next()?;
        if md == 0 && sib & 7 == 5 {
            disp = 4;
        }
    } else if md == 0 && rm == 5 {
        // disp32 (RIP-relative in 64-bit mode).
        disp = 4;
    }
    c.skip(disp)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn len64(bytes: &[u8]) -> Result<u8, DecodeError> {
        decode(bytes, Mode::Bits64).map(|i| i.len)
    }

    #[test]
    fn mov_to_cr8_names_its_source() {
        let source = |bytes: &[u8], mode| decode(bytes, mode).ok().and_then(|i| i.mov_to_cr8_source());
        // mov cr8, rax / mov cr8, r9 / mov cr8, rdx
        assert_eq!(source(&[0x44, 0x0f, 0x22, 0xc0], Mode::Bits64), Some(0));
        assert_eq!(source(&[0x45, 0x0f, 0x22, 0xc1], Mode::Bits64), Some(9));
        assert_eq!(source(&[0x44, 0x0f, 0x22, 0xc2], Mode::Bits64), Some(2));
        // lock mov cr0, ecx: AMD's CR8 form, also in 32-bit mode
        assert_eq!(source(&[0xf0, 0x0f, 0x22, 0xc1], Mode::Bits32), Some(1));
        // mov cr0, rax; mov cr3, rax; mov rax, cr8; mov cr0 with REX.R but not 8 (cr12 does not exist)
        assert_eq!(source(&[0x0f, 0x22, 0xc0], Mode::Bits64), None);
        assert_eq!(source(&[0x0f, 0x22, 0xd8], Mode::Bits64), None);
        assert_eq!(source(&[0x44, 0x0f, 0x20, 0xc0], Mode::Bits64), None);
        assert_eq!(source(&[0x44, 0x0f, 0x22, 0xe0], Mode::Bits64), None);
        // a memory-looking ModRM still names a register, with no SIB or displacement
        assert_eq!(source(&[0x44, 0x0f, 0x22, 0x03], Mode::Bits64), Some(3));
        assert_eq!(len64(&[0x44, 0x0f, 0x22, 0x84, 0x90]), Ok(4));
        assert_eq!(len64(&[0x0f, 0x20, 0xd8]), Ok(3));
    }

    #[test]
    fn mov_forms_in_64_bit_mode() {
        // mov [rax], eax
        assert_eq!(len64(&[0x89, 0x00]), Ok(2));
        // mov [rbx+rcx*4+8], rax
        assert_eq!(len64(&[0x48, 0x89, 0x44, 0x8b, 0x08]), Ok(5));
        // mov dword [0x400010], 0x12345678 (SIB, no base, disp32, imm32)
        let i = decode(&[0xc7, 0x04, 0x25, 0x10, 0x00, 0x40, 0x00, 0x78, 0x56, 0x34, 0x12], Mode::Bits64).unwrap();
        assert_eq!((i.len, i.opcode, i.modrm, i.operand_size), (11, 0xc7, Some(0x04), 4));
        // mov word [rdi], 0x1234 (66 prefix: imm16)
        assert_eq!(len64(&[0x66, 0xc7, 0x07, 0x34, 0x12]), Ok(5));
        // mov qword [rdi], imm32 sign-extended (REX.W keeps imm32)
        assert_eq!(len64(&[0x48, 0xc7, 0x07, 1, 2, 3, 4]), Ok(7));
        // mov byte [rip+0x100], 7
        assert_eq!(len64(&[0xc6, 0x05, 0x00, 0x01, 0, 0, 7]), Ok(7));
        // mov eax, [rbp+0x10] (mod 1 disp8), mov r9, [r13] (mod 1 forced by base 13)
        assert_eq!(len64(&[0x8b, 0x45, 0x10]), Ok(3));
        assert_eq!(len64(&[0x4d, 0x8b, 0x4d, 0x00]), Ok(4));
        // mov eax, [rsp+0x12345678] (SIB, mod 2 disp32)
        assert_eq!(len64(&[0x8b, 0x84, 0x24, 0x78, 0x56, 0x34, 0x12]), Ok(7));
        // mov eax, [rbp*2] : SIB base 5 with mod 0 takes disp32
        assert_eq!(len64(&[0x8b, 0x04, 0x6d, 0, 0, 0, 0]), Ok(7));
        // movabs eax, [moffs64]; with 67: moffs32
        assert_eq!(len64(&[0xa1, 1, 2, 3, 4, 5, 6, 7, 8]), Ok(9));
        assert_eq!(len64(&[0x67, 0xa1, 1, 2, 3, 4]), Ok(6));
        // movabs rax, imm64
        assert_eq!(len64(&[0x48, 0xb8, 1, 2, 3, 4, 5, 6, 7, 8]), Ok(10));
        // mov reg, reg
        assert_eq!(len64(&[0x89, 0xc0]), Ok(2));
    }

    #[test]
    fn movzx_movsx_test_stos() {
        // movzx eax, byte [rdi]; movzx eax, word [rdi+4]; movsx rax, word [rsi]
        assert_eq!(len64(&[0x0f, 0xb6, 0x07]), Ok(3));
        assert_eq!(len64(&[0x0f, 0xb7, 0x47, 0x04]), Ok(4));
        assert_eq!(len64(&[0x48, 0x0f, 0xbf, 0x06]), Ok(4));
        // movsxd rax, dword [rdi]
        assert_eq!(len64(&[0x48, 0x63, 0x07]), Ok(3));
        // test byte [rdi], 1; test dword [rdi], 0x100; test [rdi], eax
        assert_eq!(len64(&[0xf6, 0x07, 0x01]), Ok(3));
        assert_eq!(len64(&[0xf7, 0x07, 0, 1, 0, 0]), Ok(6));
        assert_eq!(len64(&[0x85, 0x07]), Ok(2));
        // not dword [rdi] (group 3 /2 has no immediate)
        assert_eq!(len64(&[0xf7, 0x17]), Ok(2));
        // stosb, rep stosq, rep movsb
        assert_eq!(len64(&[0xaa]), Ok(1));
        let i = decode(&[0xf3, 0x48, 0xab], Mode::Bits64).unwrap();
        assert_eq!((i.len, i.rep, i.operand_size), (3, true, 8));
        assert_eq!(len64(&[0xf3, 0xa4]), Ok(2));
        // lock xadd [rdi], eax; lock cmpxchg [rdi], ecx
        assert_eq!(len64(&[0xf0, 0x0f, 0xc1, 0x07]), Ok(4));
        assert_eq!(len64(&[0xf0, 0x0f, 0xb1, 0x0f]), Ok(4));
        // or dword [rdi+8], 0x10 (83 /1 ib); add dword [rdi], 0x1000 (81 /0 id)
        assert_eq!(len64(&[0x83, 0x4f, 0x08, 0x10]), Ok(4));
        assert_eq!(len64(&[0x81, 0x07, 0, 0x10, 0, 0]), Ok(6));
        // movd [rdi], xmm0; movdqu xmm1, [rsi]
        assert_eq!(len64(&[0x66, 0x0f, 0x7e, 0x07]), Ok(4));
        assert_eq!(len64(&[0xf3, 0x0f, 0x6f, 0x0e]), Ok(4));
    }

    #[test]
    fn prefixes_and_rex_placement() {
        // A REX followed by a legacy prefix is ignored: 48 66 89 07 is a 16-bit store.
        let i = decode(&[0x48, 0x66, 0x89, 0x07], Mode::Bits64).unwrap();
        assert_eq!((i.len, i.rex, i.operand_size), (4, 0, 2));
        // Segment override plus REX.
        assert_eq!(len64(&[0x65, 0x48, 0x8b, 0x04, 0x25, 0, 0, 0, 0]), Ok(9));
        // In 32-bit mode 0x40-0x4F are INC/DEC, not REX.
        assert_eq!(decode(&[0x48, 0x89, 0x07], Mode::Bits32), Err(DecodeError::Unsupported(0x48)));
        // 15 prefixes then an opcode is too long.
        let mut long = [0x66u8; 16];
        long[15] = 0x90;
        assert_eq!(len64(&long), Err(DecodeError::TooLong));
        // 14 prefixes and a one-byte opcode is exactly 15.
        let mut ok = [0x66u8; 15];
        ok[14] = 0x90;
        assert_eq!(len64(&ok), Ok(15));
    }

    #[test]
    fn addressing_in_16_and_32_bit_modes() {
        // 32-bit: mov [0x1000], eax (mod 0 rm 5 = disp32, no RIP)
        assert_eq!(decode(&[0x89, 0x05, 0, 0x10, 0, 0], Mode::Bits32).map(|i| i.len), Ok(6));
        // 32-bit with 67: 16-bit addressing, mov [0x1234], ax -> 66 67 89 06 34 12
        assert_eq!(decode(&[0x66, 0x67, 0x89, 0x06, 0x34, 0x12], Mode::Bits32).map(|i| i.len), Ok(6));
        // 16-bit: mov word [bx+si+0x10], 0x55aa -> c7 40 10 aa 55
        let i = decode(&[0xc7, 0x40, 0x10, 0xaa, 0x55], Mode::Bits16).unwrap();
        assert_eq!((i.len, i.operand_size, i.address_size), (5, 2, 2));
        // 16-bit with 66: imm32
        assert_eq!(decode(&[0x66, 0xc7, 0x06, 0, 0x10, 1, 2, 3, 4], Mode::Bits16).map(|i| i.len), Ok(9));
        // moffs in 32-bit: 4 bytes
        assert_eq!(decode(&[0xa3, 1, 2, 3, 4], Mode::Bits32).map(|i| i.len), Ok(5));
        assert_eq!(Mode::from_state(true, true, true, false), Mode::Bits64);
        assert_eq!(Mode::from_state(true, true, false, true), Mode::Bits32);
        assert_eq!(Mode::from_state(false, false, false, true), Mode::Bits16);
    }

    #[test]
    fn truncated_and_unknown() {
        assert_eq!(len64(&[]), Err(DecodeError::Truncated));
        assert_eq!(len64(&[0xc7, 0x04, 0x25, 0x10]), Err(DecodeError::Truncated));
        assert_eq!(len64(&[0x0f]), Err(DecodeError::Truncated));
        assert_eq!(len64(&[0x0f, 0x0b]), Err(DecodeError::Unsupported(0x0f0b)));
        assert_eq!(len64(&[0xcc]), Err(DecodeError::Unsupported(0xcc)));
        // Segment-override "opcodes" in the ALU rows are prefixes, not ALU ops.
        assert_eq!(len64(&[0x26, 0x89, 0x07]), Ok(3));
    }

    #[test]
    fn never_panics_on_any_input() {
        let mut rng = crate::test_rng::Rng(0x1234_5678_9abc_def1);
        for _ in 0..200_000 {
            let mut bytes = [0u8; 16];
            for b in &mut bytes {
                *b = rng.next() as u8;
            }
            let n = (rng.next() % 17) as usize;
            for mode in [Mode::Bits16, Mode::Bits32, Mode::Bits64] {
                if let Ok(i) = decode(&bytes[..n], mode) {
                    assert!(i.len >= 1 && usize::from(i.len) <= n.min(MAX_LEN));
                }
            }
        }
    }
}
