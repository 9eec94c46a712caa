//! RTP port allocation from a configured inclusive range: even ports only (RTP on even, RTCP on
//! the odd port above), handed out round-robin so a just-freed port is not reused at once (late
//! packets of the previous call would land in the new one).

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

/// The allocator state (plain; wrap in [`SharedPorts`] to share between calls).
#[derive(Debug)]
pub struct PortAllocator {
    first: u16,
    last: u16,
    next: u16,
    in_use: BTreeSet<u16>,
}

/// Why a range is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PortRangeError {
    /// The range holds no even port.
    #[error("RTP port range {0}-{1} contains no even port")]
    NoEvenPort(u16, u16),
}

impl PortAllocator {
    /// An allocator over `low..=high` (both inclusive).
    pub fn new(low: u16, high: u16) -> Result<Self, PortRangeError> {
        let low = low.max(1);
        let first = low.checked_add(low % 2).filter(|f| *f <= high);
        let Some(first) = first else {
            return Err(PortRangeError::NoEvenPort(low, high));
        };
        let last = high - high % 2;
        Ok(PortAllocator {
            first,
            last,
            next: first,
            in_use: BTreeSet::new(),
        })
    }

    /// Number of even ports in the range.
    pub fn capacity(&self) -> usize {
        ((self.last - self.first) / 2 + 1) as usize
    }

    /// Ports currently handed out.
    pub fn in_use(&self) -> usize {
        self.in_use.len()
    }

    /// Takes the next free even port, or `None` when all are in use.
    pub fn allocate(&mut self) -> Option<u16> {
        if self.in_use.len() >= self.capacity() {
            return None;
        }
        loop {
            let p = self.next;
            self.next = if p >= self.last { self.first } else { p + 2 };
            if self.in_use.insert(p) {
                return Some(p);
            }
        }
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

    /// Takes a port; it returns to the pool when the lease is dropped.
    pub fn lease(&self) -> Option<PortLease> {
        let port = self.0.lock().expect("port allocator poisoned").allocate()?;
        Some(PortLease {
            port,
            pool: self.clone(),
        })
    }

    /// Ports in use.
    pub fn in_use(&self) -> usize {
        self.0.lock().expect("port allocator poisoned").in_use()
    }

    /// Total even ports.
    pub fn capacity(&self) -> usize {
        self.0.lock().expect("port allocator poisoned").capacity()
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
        if let Ok(mut a) = self.pool.0.lock() {
            a.release(self.port);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn even_ports_round_robin_and_exhaustion() {
        let mut a = PortAllocator::new(10001, 10008).unwrap();
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
        assert!(PortAllocator::new(0, 0).is_err());
        assert_eq!(PortAllocator::new(65534, 65535).unwrap().capacity(), 1);
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
}
