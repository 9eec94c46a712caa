//! The one RTP port allocator, used by SIP call legs (`sip::endpoint`), media sessions and
//! browser (WebRTC) legs.
//!
//! - Even ports only, from a configured inclusive range; the odd port above (RTCP) is inside the
//!   range too, so a range `10000-10005` holds 10000, 10002 and 10004.
//! - Round-robin: a port released by one call is not handed out again until the others have had
//!   their turn (late packets of the previous call would land in the new one), and never while it
//!   is still leased.
//! - [`SharedPorts::lease`] returns a [`PortLease`] that gives the port back when dropped; the
//!   plain [`PortAllocator`] is for an owner that releases explicitly.
//! - [`SharedPorts::lease_bindable`] skips ports that cannot be bound right now (with their RTCP
//!   neighbour): several listeners of one process (the appliance, the softphone gateway, the
//!   carrier simulator) or other software may use part of the range. Skipped ports stay free.
//! - Exhaustion is `None` (or [`PortRangeError::Exhausted`] from [`SharedPorts::try_lease`]); the
//!   SIP layer answers an INVITE it cannot give a port with 503 and fails an outbound call as
//!   congestion.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, UdpSocket};
use std::sync::{Arc, Mutex};

/// The allocator state (plain; wrap in [`SharedPorts`] to share between calls).
#[derive(Debug)]
pub struct PortAllocator {
    first: u16,
    last: u16,
    next: u16,
    in_use: BTreeSet<u16>,
}

/// Why a range is unusable, or no port could be had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PortRangeError {
    /// The range holds no even port with its odd neighbour.
    #[error("RTP port range {0}-{1} contains no even/odd port pair")]
    NoEvenPort(u16, u16),
    /// Every port of the range is leased (or cannot be bound).
    #[error("RTP port range exhausted ({0} ports in use)")]
    Exhausted(usize),
}

/// Whether `port` (RTP) and `port + 1` (RTCP) can be bound now.
pub fn bindable(port: u16) -> bool {
    let a = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, port));
    let b = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, port.wrapping_add(1)));
    a.is_ok() && b.is_ok()
}

impl PortAllocator {
    /// An allocator over `low..=high` (both inclusive), starting at the first even port.
    pub fn new(low: u16, high: u16) -> Result<Self, PortRangeError> {
        let low = low.max(1);
        let first = low.checked_add(low % 2);
        // The last even port whose odd neighbour is still in range.
        let last = high.checked_sub(1).map(|h| h - h % 2);
        match (first, last) {
            (Some(first), Some(last)) if first <= last => Ok(PortAllocator {
                first,
                last,
                next: first,
                in_use: BTreeSet::new(),
            }),
            _ => Err(PortRangeError::NoEvenPort(low, high)),
        }
    }

    /// An allocator with no port at all (every request is refused): what a SIP endpoint uses
    /// when handed a range without an even/odd pair.
    pub fn empty() -> Self {
        PortAllocator {
            first: 2,
            last: 0,
            next: 2,
            in_use: BTreeSet::new(),
        }
    }

    /// Starts the round-robin at a random even port of the range (several allocators over one
    /// range then rarely offer the same port at the same moment).
    pub fn with_random_start(mut self) -> Self {
        let offset = rand::random::<u32>() as usize % self.capacity().max(1);
        self.next = self.first + 2 * offset as u16;
        self
    }

    /// Number of even ports in the range.
    pub fn capacity(&self) -> usize {
        if self.first > self.last {
            return 0;
        }
        ((self.last - self.first) / 2 + 1) as usize
    }

    /// Ports currently handed out.
    pub fn in_use(&self) -> usize {
        self.in_use.len()
    }

    /// Ports not handed out.
    pub fn available(&self) -> usize {
        self.capacity() - self.in_use.len()
    }

    /// Takes the next free even port, or `None` when all are in use.
    pub fn allocate(&mut self) -> Option<u16> {
        self.allocate_with(|_| true)
    }

    /// Takes the next free even port accepted by `usable`; ports it refuses stay free for later.
    pub fn allocate_with(&mut self, usable: impl Fn(u16) -> bool) -> Option<u16> {
        let mut p = self.next;
        for _ in 0..self.capacity() {
            let after = if p >= self.last { self.first } else { p + 2 };
            if !self.in_use.contains(&p) && usable(p) {
                self.in_use.insert(p);
                self.next = after;
                return Some(p);
            }
            p = after;
        }
        None
    }

    /// Returns a port; unknown ports are ignored.
    pub fn release(&mut self, port: u16) {
        self.in_use.remove(&port);
    }
}

/// A thread-safe allocator shared by all calls.
#[derive(Debug, Clone)]
pub struct SharedPorts(Arc<Mutex<PortAllocator>>);

impl SharedPorts {
    /// Wraps an allocator.
    pub fn new(allocator: PortAllocator) -> Self {
        SharedPorts(Arc::new(Mutex::new(allocator)))
    }

    fn with<T>(&self, f: impl FnOnce(&mut PortAllocator) -> T) -> T {
        // A panic while holding the lock cannot leave the set half-updated: recover it.
        let mut guard = self.0.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut guard)
    }

    /// Takes a port; it returns to the pool when the lease is dropped.
    pub fn lease(&self) -> Option<PortLease> {
        self.lease_with(|_| true)
    }

    /// Takes a port that (with its RTCP neighbour) can be bound right now.
    pub fn lease_bindable(&self) -> Option<PortLease> {
        self.lease_with(bindable)
    }

    /// [`Self::lease_bindable`], with exhaustion as an error.
    pub fn try_lease(&self) -> Result<PortLease, PortRangeError> {
        self.lease_bindable()
            .ok_or_else(|| PortRangeError::Exhausted(self.in_use()))
    }

    /// Takes a port accepted by `usable` (ports it refuses stay free).
    pub fn lease_with(&self, usable: impl Fn(u16) -> bool) -> Option<PortLease> {
        let port = self.with(|a| a.allocate_with(usable))?;
        Some(PortLease {
            port,
            pool: self.clone(),
        })
    }

    /// Ports in use.
    pub fn in_use(&self) -> usize {
        self.with(|a| a.in_use())
    }

    /// Ports free.
    pub fn available(&self) -> usize {
        self.with(|a| a.available())
    }

    /// Total even ports.
    pub fn capacity(&self) -> usize {
        self.with(|a| a.capacity())
    }
}

/// An allocated port, released on drop.
#[derive(Debug)]
pub struct PortLease {
    port: u16,
    pool: SharedPorts,
}

impl PortLease {
    /// The even RTP port.
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for PortLease {
    fn drop(&mut self) {
        let port = self.port;
        self.pool.with(|a| a.release(port));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn even_ports_round_robin_and_exhaustion() {
        let mut a = PortAllocator::new(10001, 10009).unwrap();
        assert_eq!(a.capacity(), 4);
        let got: Vec<u16> = (0..4).map(|_| a.allocate().unwrap()).collect();
        assert_eq!(got, [10002, 10004, 10006, 10008]);
        assert_eq!(a.allocate(), None);
        a.release(10004);
        a.release(10002);
        // Round-robin continues from where it was; freed ports come back in turn.
        assert_eq!(a.allocate(), Some(10002));
        assert_eq!(a.allocate(), Some(10004));
        assert_eq!(a.allocate(), None);
    }

    #[test]
    fn the_rtcp_neighbour_stays_inside_the_range() {
        // 10008's RTCP port 10009 is outside 10001-10008.
        assert_eq!(PortAllocator::new(10001, 10008).unwrap().capacity(), 3);
        assert_eq!(PortAllocator::new(20000, 20010).unwrap().capacity(), 5);
        assert_eq!(PortAllocator::new(65534, 65535).unwrap().capacity(), 1);
    }

    #[test]
    fn freed_port_is_not_reused_immediately() {
        let mut a = PortAllocator::new(20000, 20010).unwrap();
        let p = a.allocate().unwrap();
        a.release(p);
        assert_ne!(a.allocate(), Some(p));
    }

    #[test]
    fn bad_ranges() {
        assert_eq!(
            PortAllocator::new(5001, 5001).unwrap_err(),
            PortRangeError::NoEvenPort(5001, 5001)
        );
        assert!(PortAllocator::new(5000, 5000).is_err(), "no room for RTCP");
        assert!(PortAllocator::new(0, 0).is_err());
        assert!(PortAllocator::new(6000, 5000).is_err());
        let mut none = PortAllocator::empty().with_random_start();
        assert_eq!((none.capacity(), none.allocate()), (0, None));
    }

    #[test]
    fn refused_ports_are_skipped_and_stay_free() {
        let mut a = PortAllocator::new(10000, 10005).unwrap();
        assert_eq!(a.allocate_with(|p| p == 10004), Some(10004));
        assert_eq!(
            a.available(),
            2,
            "10000 and 10002 were refused but stay free"
        );
        assert_eq!(a.allocate_with(|_| false), None);
        assert_eq!(a.allocate(), Some(10000));
    }

    #[test]
    fn random_start_stays_on_even_ports_in_range() {
        for _ in 0..50 {
            let mut a = PortAllocator::new(30001, 30011)
                .unwrap()
                .with_random_start();
            let mut got: Vec<u16> = (0..5).map(|_| a.allocate().unwrap()).collect();
            got.sort();
            assert_eq!(got, [30002, 30004, 30006, 30008, 30010]);
        }
    }

    #[test]
    fn leases_release_on_drop() {
        let pool = SharedPorts::new(PortAllocator::new(30000, 30003).unwrap());
        let a = pool.lease().unwrap();
        let b = pool.lease().unwrap();
        assert!(pool.lease().is_none());
        assert_ne!(a.port(), b.port());
        drop(a);
        assert_eq!(pool.in_use(), 1);
        assert!(pool.lease().is_some());
    }

    #[test]
    fn a_bound_port_is_not_leased_and_exhaustion_is_an_error() {
        let held = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).unwrap();
        let port = held.local_addr().unwrap().port();
        let even = port - port % 2;
        let pool = SharedPorts::new(PortAllocator::new(even, even + 1).unwrap());
        assert!(pool.lease_bindable().is_none(), "port {port} is in use");
        assert_eq!(pool.available(), 1, "the busy port stays free for later");
        assert!(matches!(
            pool.try_lease(),
            Err(PortRangeError::Exhausted(0))
        ));
    }
}
