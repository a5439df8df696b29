//! Safe conversion between ABI structs and their C byte layout.
//!
//! The kernel copies a user buffer into a `[u8; N]` and decodes it with
//! `T::from_bytes`; it encodes results with `to_bytes` (padding zeroed, so no
//! kernel bytes leak). No transmutes, no `unsafe`: every bit pattern decodes to
//! a valid value because struct fields are plain integers (C `bool` is `u8`).

/// A value with a fixed little-endian C layout.
pub trait Wire: Sized {
    /// Size of the C layout in bytes.
    const SIZE: usize;
    /// Decodes from the start of `bytes`; `None` if it is too short.
    fn read(bytes: &[u8]) -> Option<Self>;
    /// Encodes into the start of `out`; `None` if it is too short.
    fn write(&self, out: &mut [u8]) -> Option<()>;
}

macro_rules! wire_int {
    ($($t:ty),*) => {$(
        impl Wire for $t {
            const SIZE: usize = core::mem::size_of::<$t>();
            fn read(bytes: &[u8]) -> Option<Self> {
                Some(<$t>::from_le_bytes(bytes.get(..Self::SIZE)?.try_into().ok()?))
            }
            fn write(&self, out: &mut [u8]) -> Option<()> {
                out.get_mut(..Self::SIZE)?.copy_from_slice(&self.to_le_bytes());
                Some(())
            }
        }
    )*};
}

wire_int!(u8, u16, u32, u64, usize, i32, i64);

impl<T: Wire + Copy + Default, const N: usize> Wire for [T; N] {
    const SIZE: usize = T::SIZE * N;
    fn read(bytes: &[u8]) -> Option<Self> {
        let mut out = [T::default(); N];
        for (i, slot) in out.iter_mut().enumerate() {
            *slot = T::read(bytes.get(i * T::SIZE..)?)?;
        }
        Some(out)
    }
    fn write(&self, out: &mut [u8]) -> Option<()> {
        for (i, v) in self.iter().enumerate() {
            v.write(out.get_mut(i * T::SIZE..)?)?;
        }
        Some(())
    }
}

/// Re-reads the bytes of one `Wire` value as another of the same size (the
/// safe form of viewing a C union member as another).
pub fn recast<A: Wire, B: Wire>(a: &A) -> Option<B> {
    let mut buf = [0u8; 64];
    let buf = buf.get_mut(..A::SIZE.max(B::SIZE))?;
    a.write(buf)?;
    B::read(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ints_are_little_endian() {
        let mut b = [0u8; 4];
        0x0403_0201u32.write(&mut b).unwrap();
        assert_eq!(b, [1, 2, 3, 4]);
        assert_eq!(u16::read(&b[2..]), Some(0x0403));
        assert_eq!(u64::read(&b), None, "too short");
    }

    #[test]
    fn arrays_round_trip() {
        let v = [1u16, 2, 0xffff];
        let mut b = [0u8; 6];
        v.write(&mut b).unwrap();
        assert_eq!(<[u16; 3]>::read(&b), Some(v));
    }
}
