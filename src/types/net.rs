//! `inet` and `cidr` as [`IpNet`] (address and prefix length), `inet` as `IpAddr`,
//! `macaddr`/`macaddr8` as [`MacAddr`]/[`MacAddr8`].
//!
//! Binary form (network_send): family (2 = IPv4, 3 = IPv6), prefix bits, is-cidr flag,
//! address length, address bytes.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use bytes::{BufMut, BytesMut};

use super::datetime::fixed;
use super::{BoxError, Type, invalid};

/// An `inet` or `cidr` value: an address and its prefix length in bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    /// An address with a prefix length; `None` if the prefix is longer than the address.
    pub fn new(addr: IpAddr, prefix: u8) -> Option<IpNet> {
        (prefix <= max_prefix(&addr)).then_some(IpNet { addr, prefix })
    }

    /// The address.
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length in bits.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }
}

impl From<IpAddr> for IpNet {
    fn from(addr: IpAddr) -> IpNet {
        IpNet {
            addr,
            prefix: max_prefix(&addr),
        }
    }
}

impl fmt::Display for IpNet {
    /// The server's `inet` form: the address alone for a host, else `addr/prefix`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.prefix == max_prefix(&self.addr) {
            true => write!(f, "{}", self.addr),
            false => write!(f, "{}/{}", self.addr, self.prefix),
        }
    }
}

fn max_prefix(addr: &IpAddr) -> u8 {
    match addr {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

fn encode(net: &IpNet, ty: &Type, out: &mut BytesMut) -> Result<(), BoxError> {
    let (family, bytes): (u8, Vec<u8>) = match net.addr {
        IpAddr::V4(a) => (2, a.octets().to_vec()),
        IpAddr::V6(a) => (3, a.octets().to_vec()),
    };
    let is_cidr = u8::from(*ty == Type::CIDR);
    out.put_slice(&[family, net.prefix, is_cidr, bytes.len() as u8]);
    out.put_slice(&bytes);
    Ok(())
}

fn decode(ty: &Type, raw: &[u8]) -> Result<IpNet, BoxError> {
    let bad = |why: &str| invalid(ty, why.to_owned());
    let [family, prefix, _cidr, len, rest @ ..] = raw else {
        return Err(bad("shorter than the 4-byte header"));
    };
    if usize::from(*len) != rest.len() {
        return Err(bad("address length does not match"));
    }
    let addr = match (family, rest.len()) {
        (2, 4) => IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(rest).expect("4 bytes"))),
        (3, 16) => IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(rest).expect("16"))),
        _ => return Err(bad("unknown address family")),
    };
    IpNet::new(addr, *prefix).ok_or_else(|| bad("prefix longer than the address"))
}

sql_impl!(IpNet, INET, [INET, CIDR], encode, decode);

sql_impl!(
    IpAddr,
    INET,
    [INET],
    |v, ty, out| encode(&IpNet::from(*v), ty, out),
    |ty, raw| {
        let net = decode(ty, raw)?;
        match net.prefix == max_prefix(&net.addr) {
            true => Ok(net.addr),
            false => Err(invalid(
                ty,
                format!(
                    "{net} has a netmask that IpAddr would drop; read it as pgkeel::types::IpNet"
                ),
            )),
        }
    }
);

/// A `macaddr` (6 bytes); `Display` is the server's `08:00:2b:01:02:03`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct MacAddr(pub [u8; 6]);

/// A `macaddr8` (8 bytes, EUI-64); `Display` is the server's `08:00:2b:01:02:03:04:05`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct MacAddr8(pub [u8; 8]);

/// Writes bytes as lowercase hex pairs joined by colons.
fn colon_hex(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 {
            f.write_str(":")?;
        }
        write!(f, "{b:02x}")?;
    }
    Ok(())
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        colon_hex(f, &self.0)
    }
}

impl fmt::Display for MacAddr8 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        colon_hex(f, &self.0)
    }
}

sql_impl!(
    MacAddr,
    MACADDR,
    [MACADDR],
    |v, _ty, out| {
        out.put_slice(&v.0);
        Ok(())
    },
    |ty, raw| fixed(ty, raw).map(MacAddr)
);

sql_impl!(
    MacAddr8,
    MACADDR8,
    [MACADDR8],
    |v, _ty, out| {
        out.put_slice(&v.0);
        Ok(())
    },
    |ty, raw| fixed(ty, raw).map(MacAddr8)
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::test_enc as enc;
    use crate::types::{FromSql, ToSql};

    #[test]
    fn inet_and_cidr_bytes() {
        let v4: IpAddr = "10.1.2.3".parse().unwrap();
        assert_eq!(enc(&v4, &Type::INET), [2, 32, 0, 4, 10, 1, 2, 3]);
        assert_eq!(
            IpAddr::from_sql(&Type::INET, &[2, 32, 0, 4, 10, 1, 2, 3]).unwrap(),
            v4
        );
        let net = IpNet::new("10.0.0.0".parse().unwrap(), 8).unwrap();
        assert_eq!(enc(&net, &Type::CIDR), [2, 8, 1, 4, 10, 0, 0, 0]);
        assert_eq!(net.to_string(), "10.0.0.0/8");
        let masked = [2, 8, 0, 4, 10, 1, 2, 3];
        let err = IpAddr::from_sql(&Type::INET, &masked).unwrap_err();
        assert!(err.to_string().contains("IpNet"), "{err}");
        assert_eq!(IpNet::from_sql(&Type::INET, &masked).unwrap().prefix(), 8);
        let v6: IpAddr = "::1".parse().unwrap();
        let bytes = enc(&v6, &Type::INET);
        assert_eq!(&bytes[..4], &[3, 128, 0, 16]);
        assert_eq!(IpAddr::from_sql(&Type::INET, &bytes).unwrap(), v6);
        assert!(IpNet::from_sql(&Type::INET, &[2, 33, 0, 4, 1, 2, 3, 4]).is_err());
        assert!(IpNet::from_sql(&Type::INET, &[2, 32, 0, 5, 1, 2, 3, 4]).is_err());
        assert!(IpNet::from_sql(&Type::INET, &[2]).is_err());
        assert!(!<IpAddr as ToSql>::accepts(&Type::CIDR));
        let mac = MacAddr([8, 0, 0x2b, 1, 2, 3]);
        assert_eq!(mac.to_string(), "08:00:2b:01:02:03");
        assert_eq!(enc(&mac, &Type::MACADDR), [8, 0, 0x2b, 1, 2, 3]);
        assert!(MacAddr::from_sql(&Type::MACADDR8, &[0; 8]).is_err());
        let mac8 = MacAddr8::from_sql(&Type::MACADDR8, &[1, 2, 3, 4, 5, 6, 7, 8]).unwrap();
        assert_eq!(mac8.to_string(), "01:02:03:04:05:06:07:08");
    }
}
