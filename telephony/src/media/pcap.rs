//! A minimal pcap (libpcap classic format) reader that yields the UDP datagrams of a capture, for
//! replaying captured RTP (e.g. sipp's `dtmf_2833_*.pcap`) through the receiver in tests and tools.
//! Handles both byte orders, micro- and nanosecond timestamps, and Ethernet (with VLAN tags),
//! Linux cooked (SLL, SLL2), BSD loopback and raw-IP link types; IPv4 and IPv6.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

/// One UDP datagram from a capture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UdpDatagram {
    /// Capture time (since the epoch).
    pub time: Duration,
    /// Source address.
    pub src: SocketAddr,
    /// Destination address.
    pub dst: SocketAddr,
    /// UDP payload.
    pub payload: Vec<u8>,
}

/// Why a capture could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PcapError {
    /// Not a classic pcap file.
    #[error("not a pcap file (magic {0:#010x})")]
    BadMagic(u32),
    /// Unsupported link type.
    #[error("unsupported pcap link type {0}")]
    LinkType(u32),
    /// The file ends inside a record.
    #[error("truncated pcap record")]
    Truncated,
}

/// Parses a capture and returns its UDP datagrams in file order (non-UDP packets are skipped).
pub fn udp_datagrams(file: &[u8]) -> Result<Vec<UdpDatagram>, PcapError> {
    if file.len() < 24 {
        return Err(PcapError::Truncated);
    }
    let magic = u32::from_le_bytes(file[0..4].try_into().expect("4 bytes"));
    let (le, nanos) = match magic {
        0xa1b2c3d4 => (true, false),
        0xa1b23c4d => (true, true),
        0xd4c3b2a1 => (false, false),
        0x4d3cb2a1 => (false, true),
        m => return Err(PcapError::BadMagic(m)),
    };
    let u32at = |b: &[u8], at: usize| {
        let x: [u8; 4] = b[at..at + 4].try_into().expect("4 bytes");
        if le {
            u32::from_le_bytes(x)
        } else {
            u32::from_be_bytes(x)
        }
    };
    let link = u32at(file, 20) & 0x0FFF_FFFF;
    if ![0, 1, 101, 113, 276, 228].contains(&link) {
        return Err(PcapError::LinkType(link));
    }
    let mut out = Vec::new();
    let mut pos = 24;
    while pos < file.len() {
        if pos + 16 > file.len() {
            return Err(PcapError::Truncated);
        }
        let sec = u32at(file, pos) as u64;
        let frac = u32at(file, pos + 4) as u64;
        let incl = u32at(file, pos + 8) as usize;
        let body = pos + 16;
        if body + incl > file.len() {
            return Err(PcapError::Truncated);
        }
        let time = Duration::from_secs(sec)
            + if nanos {
                Duration::from_nanos(frac)
            } else {
                Duration::from_micros(frac)
            };
        if let Some(d) = parse_frame(link, &file[body..body + incl], time) {
            out.push(d);
        }
        pos = body + incl;
    }
    Ok(out)
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

fn parse_frame(link: u32, f: &[u8], time: Duration) -> Option<UdpDatagram> {
    let (mut ethertype, mut off) = match link {
        1 => (be16(f, 12)?, 14),
        113 => (be16(f, 14)?, 16),
        276 => (be16(f, 0)?, 20),
        0 => {
            let fam = u32::from_le_bytes(f.get(0..4)?.try_into().ok()?);
            (if fam == 2 { 0x0800 } else { 0x86DD }, 4)
        }
        _ => (if f.first()? >> 4 == 4 { 0x0800 } else { 0x86DD }, 0),
    };
    while ethertype == 0x8100 || ethertype == 0x88A8 {
        ethertype = be16(f, off + 2)?;
        off += 4;
    }
    let ip = f.get(off..)?;
    let (src_ip, dst_ip, udp) = match ethertype {
        0x0800 => {
            let ihl = ((ip.first()? & 0x0F) as usize) * 4;
            if ip.len() < 20 || ihl < 20 || ip[9] != 17 {
                return None;
            }
            let s = Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]);
            let d = Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]);
            (IpAddr::V4(s), IpAddr::V4(d), ip.get(ihl..)?)
        }
        0x86DD => {
            if *ip.get(6)? != 17 {
                return None;
            }
            let s: [u8; 16] = ip.get(8..24)?.try_into().ok()?;
            let d: [u8; 16] = ip.get(24..40)?.try_into().ok()?;
            (
                IpAddr::V6(Ipv6Addr::from(s)),
                IpAddr::V6(Ipv6Addr::from(d)),
                ip.get(40..)?,
            )
        }
        _ => return None,
    };
    let sport = be16(udp, 0)?;
    let dport = be16(udp, 2)?;
    let len = be16(udp, 4)? as usize;
    let payload = udp.get(8..len.max(8).min(udp.len()))?.to_vec();
    Some(UdpDatagram {
        time,
        src: SocketAddr::new(src_ip, sport),
        dst: SocketAddr::new(dst_ip, dport),
        payload,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn capture(link: u32, frames: &[Vec<u8>]) -> Vec<u8> {
        let mut f = Vec::new();
        for v in [0xa1b2c3d4u32, 0x0004_0002, 0, 0, 65535, link] {
            if v == 0x0004_0002 {
                f.extend_from_slice(&2u16.to_le_bytes());
                f.extend_from_slice(&4u16.to_le_bytes());
            } else {
                f.extend_from_slice(&v.to_le_bytes());
            }
        }
        for (i, fr) in frames.iter().enumerate() {
            for v in [1000u32, i as u32 * 20_000, fr.len() as u32, fr.len() as u32] {
                f.extend_from_slice(&v.to_le_bytes());
            }
            f.extend_from_slice(fr);
        }
        f
    }

    fn eth_udp(payload: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&[0x08, 0x00]);
        let total = 20 + 8 + payload.len();
        f.extend_from_slice(&[
            0x45,
            0,
            (total >> 8) as u8,
            total as u8,
            0,
            0,
            0,
            0,
            64,
            17,
            0,
            0,
            127,
            0,
            0,
            1,
            127,
            0,
            0,
            2,
        ]);
        let ulen = 8 + payload.len();
        f.extend_from_slice(&[0x17, 0x70, 0x3e, 0x80, (ulen >> 8) as u8, ulen as u8, 0, 0]);
        f.extend_from_slice(payload);
        f.extend_from_slice(&[0, 0]); // Ethernet padding must not leak into the payload
        f
    }

    #[test]
    fn reads_udp_from_ethernet_frames() {
        let cap = capture(1, &[eth_udp(b"hello"), eth_udp(b"world!")]);
        let d = udp_datagrams(&cap).unwrap();
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].payload, b"hello");
        assert_eq!(d[1].payload, b"world!");
        assert_eq!(d[0].src, "127.0.0.1:6000".parse().unwrap());
        assert_eq!(d[0].dst, "127.0.0.2:16000".parse().unwrap());
        assert_eq!(d[1].time, Duration::from_millis(1_000_020));
    }

    #[test]
    fn rejects_garbage_and_truncation() {
        assert_eq!(udp_datagrams(&[0u8; 30]), Err(PcapError::BadMagic(0)));
        let mut cap = capture(1, &[eth_udp(b"hello")]);
        cap.truncate(cap.len() - 3);
        assert_eq!(udp_datagrams(&cap), Err(PcapError::Truncated));
        assert_eq!(
            udp_datagrams(&capture(147, &[])),
            Err(PcapError::LinkType(147))
        );
    }
}
