//! RTP port allocation: one even port per call leg from the configured range (RTCP takes +1).
//!
//! Ports are handed out from a random point of the free set, and only when the port and its RTCP
//! neighbour can actually be bound right now, so that several endpoints in one process (tests)
//! or other software using part of the range do not collide with the media layer binding the
//! port we advertised.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, UdpSocket};

#[derive(Debug)]
pub struct RtpPorts {
    free: BTreeSet<u16>,
}

/// Whether `port` and `port + 1` are bindable now.
pub fn bindable(port: u16) -> bool {
    let a = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, port));
    let b = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, port.wrapping_add(1)));
    a.is_ok() && b.is_ok()
}

impl RtpPorts {
    /// All even ports in `lo..=hi` whose odd neighbour is also in range.
    pub fn new((lo, hi): (u16, u16)) -> Self {
        let start = lo + (lo % 2);
        let free = (start..hi).step_by(2).collect();
        Self { free }
    }

    /// A free port that can be bound now.
    pub fn allocate(&mut self) -> Option<u16> {
        self.allocate_with(bindable)
    }

    /// A free port accepted by `usable`, searching from a random point of the free set; ports
    /// refused by `usable` stay free for later.
    pub fn allocate_with(&mut self, usable: impl Fn(u16) -> bool) -> Option<u16> {
        if self.free.is_empty() {
            return None;
        }
        let pivot = self
            .free
            .iter()
            .nth(rand::random::<u32>() as usize % self.free.len())
            .copied()?;
        let port = self
            .free
            .range(pivot..)
            .chain(self.free.range(..pivot))
            .copied()
            .find(|p| usable(*p))?;
        self.free.remove(&port);
        Some(port)
    }

    pub fn release(&mut self, port: u16) {
        self.free.insert(port);
    }

    pub fn available(&self) -> usize {
        self.free.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn even_ports_reused_after_release() {
        let mut p = RtpPorts::new((10001, 10006));
        assert_eq!(p.available(), 2);
        let a = p.allocate_with(|_| true).unwrap();
        let b = p.allocate_with(|_| true).unwrap();
        let mut got = [a, b];
        got.sort();
        assert_eq!(got, [10002, 10004]);
        assert_eq!(p.allocate_with(|_| true), None);
        p.release(a);
        assert_eq!(p.allocate_with(|_| true), Some(a));
    }

    #[test]
    fn ports_in_use_are_skipped_and_stay_free() {
        let mut p = RtpPorts::new((10000, 10005));
        assert_eq!(p.allocate_with(|port| port == 10004), Some(10004));
        assert_eq!(
            p.available(),
            2,
            "10000 and 10002 were refused but stay in the pool"
        );
        assert_eq!(p.allocate_with(|_| false), None);
    }

    #[test]
    fn a_bound_port_is_not_handed_out() {
        let held = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).unwrap();
        let port = held.local_addr().unwrap().port();
        let even = port - port % 2;
        let mut p = RtpPorts::new((even, even + 1));
        assert_eq!(p.allocate(), None, "port {port} is in use");
    }
}
