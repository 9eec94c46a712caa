//! RTP port allocation: one even port per call leg from the configured range (RTCP takes +1).

use std::collections::BTreeSet;

#[derive(Debug)]
pub struct RtpPorts {
    free: BTreeSet<u16>,
}

impl RtpPorts {
    /// All even ports in `lo..=hi` whose odd neighbour is also in range.
    pub fn new((lo, hi): (u16, u16)) -> Self {
        let start = lo + (lo % 2);
        let free = (start..hi).step_by(2).collect();
        Self { free }
    }

    pub fn allocate(&mut self) -> Option<u16> {
        self.free.pop_first()
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
        assert_eq!(p.allocate(), Some(10002));
        assert_eq!(p.allocate(), Some(10004));
        assert_eq!(p.allocate(), None);
        p.release(10002);
        assert_eq!(p.allocate(), Some(10002));
    }
}
