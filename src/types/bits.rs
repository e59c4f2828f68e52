//! `bit` and `varbit` as [`BitString`]: a length in bits and the bits, first bit in the
//! high bit of the first byte (bit_send's form after its 4-byte length).

use std::fmt;
use std::str::FromStr;

use bytes::BufMut;

use super::{BoxError, Type, invalid};

/// A `bit(n)` or `bit varying` value.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct BitString {
    len: usize,
    bytes: Vec<u8>,
}

impl BitString {
    /// The bits of `bools`, in order.
    pub fn from_bools(bools: impl IntoIterator<Item = bool>) -> BitString {
        let mut b = BitString::default();
        for bit in bools {
            if b.len % 8 == 0 {
                b.bytes.push(0);
            }
            if bit {
                b.bytes[b.len / 8] |= 0x80 >> (b.len % 8);
            }
            b.len += 1;
        }
        b
    }

    /// The number of bits.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are no bits.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The bit at `i`, if there is one.
    pub fn get(&self, i: usize) -> Option<bool> {
        (i < self.len).then(|| self.bytes[i / 8] & (0x80 >> (i % 8)) != 0)
    }

    /// The bits in order.
    pub fn iter(&self) -> impl Iterator<Item = bool> + '_ {
        (0..self.len).map(|i| self.bytes[i / 8] & (0x80 >> (i % 8)) != 0)
    }
}

impl fmt::Display for BitString {
    /// The server's form: `10110`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.iter()
            .try_for_each(|b| f.write_str(if b { "1" } else { "0" }))
    }
}

impl FromStr for BitString {
    type Err = BoxError;

    fn from_str(s: &str) -> Result<BitString, BoxError> {
        let bits = s.bytes().map(|c| match c {
            b'0' => Ok(false),
            b'1' => Ok(true),
            _ => Err(invalid(&Type::VARBIT, format!("not a bit string: {s:?}"))),
        });
        Ok(BitString::from_bools(bits.collect::<Result<Vec<_>, _>>()?))
    }
}

sql_impl!(
    BitString,
    VARBIT,
    [VARBIT, BIT],
    |v, ty, out| {
        let len = i32::try_from(v.len).map_err(|_| invalid(ty, "too many bits".into()))?;
        out.put_i32(len);
        out.put_slice(&v.bytes);
        Ok(())
    },
    |ty, raw| {
        let (len, bytes) = raw
            .split_first_chunk::<4>()
            .ok_or_else(|| invalid(ty, "shorter than the 4-byte length".into()))?;
        let len = usize::try_from(i32::from_be_bytes(*len))
            .map_err(|_| invalid(ty, "negative bit count".into()))?;
        if bytes.len() != len.div_ceil(8) {
            return Err(invalid(ty, "bit count does not match the bytes".into()));
        }
        let mut bytes = bytes.to_vec();
        if len % 8 != 0 {
            // Padding bits are zero on the server; make equality independent of them.
            let last = bytes.len() - 1;
            bytes[last] &= 0xffu8 << (8 - len % 8);
        }
        Ok(BitString { len, bytes })
    }
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{FromSql, ToSql};
    use bytes::BytesMut;

    #[test]
    fn bit_strings() {
        let b: BitString = "101100001".parse().unwrap();
        assert_eq!(b.len(), 9);
        assert_eq!(b.to_string(), "101100001");
        let mut out = BytesMut::new();
        b.to_sql(&Type::VARBIT, &mut out).unwrap();
        assert_eq!(&out[..], &[0, 0, 0, 9, 0b1011_0000, 0b1000_0000]);
        assert_eq!(BitString::from_sql(&Type::BIT, &out).unwrap(), b);
        let empty = BitString::from_sql(&Type::VARBIT, &[0, 0, 0, 0]).unwrap();
        assert!(empty.is_empty() && empty.to_string().is_empty());
        assert!(BitString::from_sql(&Type::VARBIT, &[0, 0, 0, 9, 1]).is_err());
        assert!(BitString::from_sql(&Type::VARBIT, &[0xff, 0, 0, 0]).is_err());
        assert!("102".parse::<BitString>().is_err());
        assert_eq!(b.get(0), Some(true));
        assert_eq!(b.get(9), None);
    }
}
