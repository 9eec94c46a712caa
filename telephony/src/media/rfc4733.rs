//! RFC 4733 telephone-events (DTMF over RTP): payload parsing and building, a receiver that
//! reports each key press exactly once however many start/update/end packets (and retransmitted
//! end packets) arrive, and a sender that turns queued digits into the standard packet sequence.
//!
//! The telephone-event payload type is whatever SDP negotiated (96 from sipp's `play_dtmf`, 101
//! from most phones); the caller routes only that payload type here.

use bytes::Bytes;
use rtp::packet::Packet;
use std::collections::VecDeque;
use std::time::Instant;

use super::sender::{FRAME_SAMPLES, RtpSender};

/// The four-byte telephone-event payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventPayload {
    /// Event code: 0–9, 10 = `*`, 11 = `#`, 12–15 = A–D, 16 = flash.
    pub event: u8,
    /// The E bit: this packet ends the event.
    pub end: bool,
    /// Power level in -dBm0 (0–63).
    pub volume: u8,
    /// Duration so far, in timestamp units.
    pub duration: u16,
}

impl EventPayload {
    /// Parses a payload; `None` when shorter than four bytes.
    pub fn parse(b: &[u8]) -> Option<EventPayload> {
        if b.len() < 4 {
            return None;
        }
        Some(EventPayload {
            event: b[0],
            end: b[1] & 0x80 != 0,
            volume: b[1] & 0x3F,
            duration: u16::from_be_bytes([b[2], b[3]]),
        })
    }

    /// The wire form.
    pub fn to_bytes(self) -> [u8; 4] {
        let d = self.duration.to_be_bytes();
        [
            self.event,
            (if self.end { 0x80 } else { 0 }) | (self.volume & 0x3F),
            d[0],
            d[1],
        ]
    }
}

/// The keypad character for an event code (DTMF events 0–15 only).
pub fn event_to_digit(event: u8) -> Option<char> {
    Some(match event {
        0..=9 => (b'0' + event) as char,
        10 => '*',
        11 => '#',
        12..=15 => (b'A' + event - 12) as char,
        _ => return None,
    })
}

/// The event code for a keypad character.
pub fn digit_to_event(digit: char) -> Option<u8> {
    Some(match digit.to_ascii_uppercase() {
        c @ '0'..='9' => c as u8 - b'0',
        '*' => 10,
        '#' => 11,
        c @ 'A'..='D' => c as u8 - b'A' + 12,
        _ => return None,
    })
}

/// One key press, reported once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DtmfDigit {
    /// The key.
    pub digit: char,
    /// SSRC of the stream that carried it.
    pub ssrc: u32,
    /// The event's RTP timestamp (its identity within the stream).
    pub timestamp: u32,
    /// When the first packet of the event arrived.
    pub at: Instant,
}

/// Receives telephone-event packets; reports each event once, when its first packet arrives.
#[derive(Debug, Default)]
pub struct DtmfReceiver {
    // Events already reported, most recent last: (ssrc, timestamp, event, ended).
    seen: VecDeque<(u32, u32, u8, bool)>,
    ignored: u64,
}

const SEEN_MEMORY: usize = 32;

impl DtmfReceiver {
    /// A receiver with no history.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds one telephone-event packet (already known to carry the negotiated event PT).
    pub fn on_packet(
        &mut self,
        ssrc: u32,
        timestamp: u32,
        payload: &[u8],
        now: Instant,
    ) -> Option<DtmfDigit> {
        let Some(ev) = EventPayload::parse(payload) else {
            self.ignored += 1;
            return None;
        };
        let Some(digit) = event_to_digit(ev.event) else {
            self.ignored += 1;
            return None;
        };
        if let Some(entry) = self
            .seen
            .iter_mut()
            .find(|(s, t, e, _)| *s == ssrc && *t == timestamp && *e == ev.event)
        {
            entry.3 |= ev.end;
            return None;
        }
        if self.seen.len() == SEEN_MEMORY {
            self.seen.pop_front();
        }
        self.seen.push_back((ssrc, timestamp, ev.event, ev.end));
        Some(DtmfDigit {
            digit,
            ssrc,
            timestamp,
            at: now,
        })
    }

    /// Packets that were not DTMF events (too short, or flash and other non-keypad events).
    pub fn ignored(&self) -> u64 {
        self.ignored
    }

    /// Whether the most recently reported event has seen its end packet.
    pub fn last_ended(&self) -> Option<bool> {
        self.seen.back().map(|e| e.3)
    }
}

/// How the sender shapes each digit.
#[derive(Debug, Clone, Copy)]
pub struct DtmfSendConfig {
    /// The negotiated telephone-event payload type.
    pub payload_type: u8,
    /// Tone length.
    pub duration_ms: u32,
    /// Pause after each digit, during which audio flows again.
    pub gap_ms: u32,
    /// Power level in -dBm0.
    pub volume: u8,
}

impl Default for DtmfSendConfig {
    fn default() -> Self {
        DtmfSendConfig {
            payload_type: 101,
            duration_ms: 160,
            gap_ms: 80,
            volume: 10,
        }
    }
}

#[derive(Debug)]
enum SendState {
    Idle,
    Event {
        event: u8,
        start_ts: u32,
        elapsed: u32,
        target: u32,
    },
    Gap {
        ticks: u32,
    },
}

/// Turns queued digits into RFC 4733 packets, one call to [`DtmfSender::tick`] per 20 ms.
#[derive(Debug)]
pub struct DtmfSender {
    config: DtmfSendConfig,
    queue: VecDeque<u8>,
    state: SendState,
}

impl DtmfSender {
    /// An idle sender.
    pub fn new(config: DtmfSendConfig) -> Self {
        DtmfSender {
            config,
            queue: VecDeque::new(),
            state: SendState::Idle,
        }
    }

    /// Queues digits; characters that are not keypad keys are rejected.
    pub fn queue(&mut self, digits: &str) -> Result<(), char> {
        let codes: Vec<u8> = digits
            .chars()
            .map(|c| digit_to_event(c).ok_or(c))
            .collect::<Result<_, _>>()?;
        self.queue.extend(codes);
        Ok(())
    }

    /// True while digits are being sent or waiting.
    pub fn busy(&self) -> bool {
        !self.queue.is_empty() || !matches!(self.state, SendState::Idle)
    }

    /// Advances 20 ms. Returns the packets to send in this interval; empty means "send audio
    /// as usual". While an event is playing, the stream's media clock is advanced here.
    pub fn tick(&mut self, rtp: &mut RtpSender) -> Vec<Packet> {
        let frame = FRAME_SAMPLES as u32;
        loop {
            match self.state {
                SendState::Idle => {
                    let Some(event) = self.queue.pop_front() else {
                        return Vec::new();
                    };
                    let target = (self.config.duration_ms * 8)
                        .max(frame)
                        .min(u16::MAX as u32);
                    self.state = SendState::Event {
                        event,
                        start_ts: rtp.timestamp(),
                        elapsed: 0,
                        target,
                    };
                }
                SendState::Gap { ticks } => {
                    if ticks == 0 {
                        self.state = SendState::Idle;
                        continue;
                    }
                    self.state = SendState::Gap { ticks: ticks - 1 };
                    return Vec::new();
                }
                SendState::Event {
                    event,
                    start_ts,
                    elapsed,
                    target,
                } => {
                    let elapsed = elapsed + frame;
                    rtp.skip(frame);
                    let end = elapsed >= target;
                    let payload = EventPayload {
                        event,
                        end,
                        volume: self.config.volume,
                        duration: elapsed as u16,
                    };
                    let bytes = Bytes::copy_from_slice(&payload.to_bytes());
                    let pt = self.config.payload_type;
                    let out = if end {
                        // The end packet is sent three times (RFC 4733 §2.5.1.4), same sequence
                        // space, so each copy takes its own sequence number.
                        let gap = self.config.gap_ms.div_ceil(20);
                        self.state = SendState::Gap { ticks: gap };
                        (0..3)
                            .map(|_| rtp.packet(pt, false, start_ts, bytes.clone()))
                            .collect()
                    } else {
                        self.state = SendState::Event {
                            event,
                            start_ts,
                            elapsed,
                            target,
                        };
                        vec![rtp.packet(pt, elapsed == frame, start_ts, bytes)]
                    };
                    return out;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_round_trip() {
        let p = EventPayload {
            event: 11,
            end: true,
            volume: 10,
            duration: 1280,
        };
        assert_eq!(p.to_bytes(), [11, 0x8A, 0x05, 0x00]);
        assert_eq!(EventPayload::parse(&p.to_bytes()), Some(p));
        assert_eq!(EventPayload::parse(&[1, 2, 3]), None);
        assert_eq!(digit_to_event('#'), Some(11));
        assert_eq!(event_to_digit(10), Some('*'));
        assert_eq!(digit_to_event('x'), None);
    }

    #[test]
    fn sender_output_received_once_per_digit_including_repeats() {
        let mut rtp = RtpSender::new(7, 100, 5000);
        let mut tx = DtmfSender::new(DtmfSendConfig {
            payload_type: 96,
            duration_ms: 100,
            gap_ms: 40,
            volume: 10,
        });
        tx.queue("1223#").unwrap();
        let mut rx = DtmfReceiver::new();
        let now = Instant::now();
        let mut got = String::new();
        let mut packets = 0;
        let mut ticks = 0;
        while tx.busy() {
            ticks += 1;
            for p in tx.tick(&mut rtp) {
                packets += 1;
                assert_eq!(p.header.payload_type, 96);
                if let Some(d) = rx.on_packet(p.header.ssrc, p.header.timestamp, &p.payload, now) {
                    got.push(d.digit);
                }
            }
        }
        assert_eq!(got, "1223#");
        // 100 ms = 5 packets, the last of them sent three times: 7 per digit.
        assert_eq!(packets, 5 * 7);
        // 5 event ticks + 2 gap ticks per digit, plus the final idle tick.
        assert_eq!(ticks, 5 * 7 + 1);
        assert_eq!(rx.last_ended(), Some(true));
        // The media clock kept running through the events: 25 event frames of 160 samples.
        assert_eq!(rtp.timestamp(), 5000 + 25 * 160);
    }

    #[test]
    fn first_packet_has_marker_and_timestamps_identify_events() {
        let mut rtp = RtpSender::new(7, 0, 0);
        let mut tx = DtmfSender::new(DtmfSendConfig {
            duration_ms: 60,
            ..Default::default()
        });
        tx.queue("5").unwrap();
        let first = tx.tick(&mut rtp);
        assert!(first[0].header.marker);
        let second = tx.tick(&mut rtp);
        assert!(!second[0].header.marker);
        assert_eq!(first[0].header.timestamp, second[0].header.timestamp);
        let last = tx.tick(&mut rtp);
        assert_eq!(last.len(), 3);
        let ev = EventPayload::parse(&last[2].payload).unwrap();
        assert!(ev.end);
        assert_eq!(ev.duration, 480);
    }

    #[test]
    fn receiver_ignores_non_keypad_and_short_payloads() {
        let mut rx = DtmfReceiver::new();
        let now = Instant::now();
        assert_eq!(rx.on_packet(1, 0, &[16, 0, 0, 160], now), None);
        assert_eq!(rx.on_packet(1, 0, &[1, 0], now), None);
        assert_eq!(rx.ignored(), 2);
        // An event seen only through its end packets is still reported, once.
        let end = EventPayload {
            event: 3,
            end: true,
            volume: 10,
            duration: 800,
        }
        .to_bytes();
        assert_eq!(rx.on_packet(1, 160, &end, now).map(|d| d.digit), Some('3'));
        assert_eq!(rx.on_packet(1, 160, &end, now), None);
        // Same timestamp on another SSRC is another event.
        assert_eq!(rx.on_packet(2, 160, &end, now).map(|d| d.digit), Some('3'));
    }
}
