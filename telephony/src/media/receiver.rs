//! The receiving half of an RTP session: parses datagrams with the `rtp` crate, routes them by
//! payload type (negotiated audio codecs, the negotiated telephone-event type, anything else
//! ignored, e.g. sipp's PT 97 filler), validates audio sources with RFC 3550 A.1 (a new or
//! changed SSRC must send two packets in sequence before it replaces the current one) and turns
//! telephone-events into digits.
//!
//! Sans-IO: `on_datagram(bytes, now)` returns what happened; the caller owns socket and clock.

use bytes::Bytes;
use rtp::packet::Packet;
use std::time::Instant;
use webrtc_util::marshal::Unmarshal;

use super::g711::Codec;
use super::rfc4733::{DtmfDigit, DtmfReceiver};
use super::source::{SeqVerdict, SourceState};

/// What the SDP negotiation said about incoming payload types.
#[derive(Debug, Clone)]
pub struct ReceiverConfig {
    /// Audio payload types and their codecs (usually 0 → PCMU and/or 8 → PCMA).
    pub audio: Vec<(u8, Codec)>,
    /// The telephone-event payload type(s) accepted (96 and 101 are both common).
    pub telephone_event: Vec<u8>,
}

impl Default for ReceiverConfig {
    fn default() -> Self {
        ReceiverConfig {
            audio: vec![(0, Codec::Pcmu), (8, Codec::Pcma)],
            telephone_event: vec![101],
        }
    }
}

/// One received audio packet, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioPacket {
    /// SSRC of the stream.
    pub ssrc: u32,
    /// Extended sequence number (for ordering in the jitter buffer).
    pub seq: u64,
    /// RTP timestamp.
    pub timestamp: u32,
    /// The marker bit.
    pub marker: bool,
    /// The codec of this payload type.
    pub codec: Codec,
    /// Encoded payload.
    pub payload: Bytes,
}

/// Output of the receiver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    /// Audio to play out / relay / record.
    Audio(AudioPacket),
    /// A key press.
    Dtmf(DtmfDigit),
    /// The audio source changed SSRC (or restarted its sequence numbers): reset playout state.
    SourceChanged {
        /// The new SSRC.
        ssrc: u32,
    },
}

/// Counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReceiverStats {
    /// Datagrams that did not parse as RTP version 2.
    pub malformed: u64,
    /// Packets with a payload type we did not negotiate.
    pub unknown_payload_type: u64,
    /// Audio packets held back by A.1 (probation, or a jump awaiting confirmation) and dropped.
    pub rejected_sequence: u64,
    /// Audio packets accepted.
    pub audio: u64,
    /// Telephone-event packets seen.
    pub events: u64,
}

#[derive(Debug)]
struct Track {
    ssrc: u32,
    state: SourceState,
    held: Option<Packet>,
}

/// Receiver state for one RTP session.
#[derive(Debug)]
pub struct RtpReceiver {
    config: ReceiverConfig,
    current: Option<Track>,
    candidate: Option<Track>,
    dtmf: DtmfReceiver,
    epoch: Option<Instant>,
    last_packet: Option<Instant>,
    stats: ReceiverStats,
}

impl RtpReceiver {
    /// A receiver for the negotiated payload types.
    pub fn new(config: ReceiverConfig) -> Self {
        RtpReceiver {
            config,
            current: None,
            candidate: None,
            dtmf: DtmfReceiver::new(),
            epoch: None,
            last_packet: None,
            stats: ReceiverStats::default(),
        }
    }

    /// Replaces the payload-type map (after a re-INVITE).
    pub fn set_config(&mut self, config: ReceiverConfig) {
        self.config = config;
    }

    /// Counters.
    pub fn stats(&self) -> ReceiverStats {
        self.stats
    }

    /// When the last valid RTP packet (of any negotiated type) arrived: for inactivity timeouts.
    pub fn last_packet(&self) -> Option<Instant> {
        self.last_packet
    }

    /// The SSRC and A.1 state of the current audio source.
    pub fn source(&self) -> Option<(u32, &SourceState)> {
        self.current.as_ref().map(|t| (t.ssrc, &t.state))
    }

    /// Feeds one UDP payload.
    pub fn on_datagram(&mut self, datagram: &[u8], now: Instant) -> Vec<Received> {
        let mut buf = datagram;
        let packet = match Packet::unmarshal(&mut buf) {
            Ok(p) if p.header.version == 2 => p,
            _ => {
                self.stats.malformed += 1;
                return Vec::new();
            }
        };
        self.on_packet(packet, now)
    }

    /// Feeds one parsed packet.
    pub fn on_packet(&mut self, packet: Packet, now: Instant) -> Vec<Received> {
        let pt = packet.header.payload_type;
        if self.config.telephone_event.contains(&pt) {
            self.stats.events += 1;
            self.last_packet = Some(now);
            let h = &packet.header;
            return self
                .dtmf
                .on_packet(h.ssrc, h.timestamp, &packet.payload, now)
                .map(Received::Dtmf)
                .into_iter()
                .collect();
        }
        let Some(codec) = self
            .config
            .audio
            .iter()
            .find(|(p, _)| *p == pt)
            .map(|(_, c)| *c)
        else {
            self.stats.unknown_payload_type += 1;
            return Vec::new();
        };
        self.last_packet = Some(now);
        let epoch = *self.epoch.get_or_insert(now);
        let arrival = (now.duration_since(epoch).as_micros() as u64) * 8 / 1000;
        let ssrc = packet.header.ssrc;
        let mut out = Vec::new();

        if self.current.as_ref().is_some_and(|t| t.ssrc == ssrc) {
            let track = self.current.as_mut().expect("checked");
            match track.state.update(packet.header.sequence_number) {
                SeqVerdict::Accept(seq) => {
                    track.state.update_jitter(packet.header.timestamp, arrival);
                    out.push(audio(ssrc, seq, codec, packet));
                }
                SeqVerdict::Resynced(seq) => {
                    out.push(Received::SourceChanged { ssrc });
                    out.push(audio(ssrc, seq, codec, packet));
                }
                SeqVerdict::Jump | SeqVerdict::Probation => self.stats.rejected_sequence += 1,
                SeqVerdict::Validated { .. } => unreachable!("current source is already valid"),
            }
        } else {
            if self.candidate.as_ref().is_none_or(|t| t.ssrc != ssrc) {
                if let Some(old) = self.candidate.take().and_then(|t| t.held) {
                    let _ = old;
                    self.stats.rejected_sequence += 1;
                }
                self.candidate = Some(Track {
                    ssrc,
                    state: SourceState::new(packet.header.sequence_number),
                    held: None,
                });
            }
            let track = self.candidate.as_mut().expect("just set");
            match track.state.update(packet.header.sequence_number) {
                SeqVerdict::Validated { previous, this } => {
                    let mut track = self.candidate.take().expect("present");
                    out.push(Received::SourceChanged { ssrc });
                    if let Some(held) = track.held.take() {
                        let held_codec = self.codec_of(held.header.payload_type).unwrap_or(codec);
                        out.push(audio(ssrc, previous, held_codec, held));
                    }
                    track.state.update_jitter(packet.header.timestamp, arrival);
                    out.push(audio(ssrc, this, codec, packet));
                    self.current = Some(track);
                }
                _ => {
                    if track.held.replace(packet).is_some() {
                        self.stats.rejected_sequence += 1;
                    }
                }
            }
        }
        self.stats.audio += out
            .iter()
            .filter(|r| matches!(r, Received::Audio(_)))
            .count() as u64;
        out
    }

    fn codec_of(&self, pt: u8) -> Option<Codec> {
        self.config
            .audio
            .iter()
            .find(|(p, _)| *p == pt)
            .map(|(_, c)| *c)
    }
}

fn audio(ssrc: u32, seq: u64, codec: Codec, p: Packet) -> Received {
    Received::Audio(AudioPacket {
        ssrc,
        seq,
        timestamp: p.header.timestamp,
        marker: p.header.marker,
        codec,
        payload: p.payload,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::rfc4733::EventPayload;
    use crate::media::sender::RtpSender;
    use webrtc_util::marshal::Marshal;

    fn wire(p: &Packet) -> Vec<u8> {
        p.marshal().unwrap().to_vec()
    }

    fn seqs(out: &[Received]) -> Vec<u64> {
        out.iter()
            .filter_map(|r| match r {
                Received::Audio(a) => Some(a.seq & 0xFFFF),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn first_two_packets_are_both_delivered_after_validation() {
        let mut rx = RtpReceiver::new(ReceiverConfig::default());
        let mut tx = RtpSender::new(42, 10, 0);
        let now = Instant::now();
        let p1 = tx.audio(0, Bytes::from(vec![1u8; 160]));
        let p2 = tx.audio(0, Bytes::from(vec![2u8; 160]));
        assert!(rx.on_datagram(&wire(&p1), now).is_empty());
        let out = rx.on_datagram(&wire(&p2), now);
        assert_eq!(out[0], Received::SourceChanged { ssrc: 42 });
        assert_eq!(seqs(&out), [10, 11]);
        match &out[1] {
            Received::Audio(a) => {
                assert_eq!((a.codec, a.payload[0], a.marker), (Codec::Pcmu, 1, true))
            }
            r => panic!("{r:?}"),
        }
    }

    #[test]
    fn unknown_payload_types_and_garbage_are_ignored() {
        let mut rx = RtpReceiver::new(ReceiverConfig {
            audio: vec![(0, Codec::Pcmu)],
            telephone_event: vec![96],
        });
        let mut filler = RtpSender::new(0x01020305, 0, 0);
        let now = Instant::now();
        for _ in 0..5 {
            let p = filler.packet(97, false, 0, Bytes::from_static(&[0; 4]));
            assert!(rx.on_datagram(&wire(&p), now).is_empty());
        }
        assert!(rx.on_datagram(b"not rtp", now).is_empty());
        assert!(
            rx.on_datagram(&[0x40, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0], now)
                .is_empty()
        ); // version 1
        let st = rx.stats();
        assert_eq!((st.unknown_payload_type, st.malformed), (5, 2));
    }

    #[test]
    fn events_on_their_own_ssrc_do_not_disturb_audio() {
        let mut rx = RtpReceiver::new(ReceiverConfig {
            audio: vec![(0, Codec::Pcmu)],
            telephone_event: vec![96],
        });
        let mut audio_tx = RtpSender::new(1, 100, 0);
        let mut ev_tx = RtpSender::new(2, 7, 999);
        let now = Instant::now();
        let mut digits = String::new();
        let mut audio_seqs = Vec::new();
        for i in 0..10u16 {
            let a = audio_tx.audio(0, Bytes::from(vec![0xFF; 160]));
            audio_seqs.extend(seqs(&rx.on_datagram(&wire(&a), now)));
            let end = i >= 4;
            let pl = EventPayload {
                event: 9,
                end,
                volume: 10,
                duration: 160 * (i.min(4) + 1),
            };
            let e = ev_tx.packet(96, i == 0, 999, Bytes::copy_from_slice(&pl.to_bytes()));
            for r in rx.on_datagram(&wire(&e), now) {
                if let Received::Dtmf(d) = r {
                    digits.push(d.digit);
                }
            }
        }
        assert_eq!(digits, "9");
        assert_eq!(audio_seqs, (100..110).collect::<Vec<u64>>());
        assert_eq!(rx.source().unwrap().0, 1);
    }

    #[test]
    fn ssrc_change_switches_after_two_packets_and_strays_are_dropped() {
        let mut rx = RtpReceiver::new(ReceiverConfig::default());
        let mut a = RtpSender::new(1, 0, 0);
        let mut b = RtpSender::new(2, 5000, 0);
        let now = Instant::now();
        for _ in 0..3 {
            rx.on_datagram(&wire(&a.audio(0, Bytes::from(vec![0; 160]))), now);
        }
        // One stray packet from another SSRC: held, not delivered.
        assert!(
            rx.on_datagram(&wire(&b.audio(8, Bytes::from(vec![0; 160]))), now)
                .is_empty()
        );
        // The current source keeps flowing.
        assert_eq!(
            seqs(&rx.on_datagram(&wire(&a.audio(0, Bytes::from(vec![0; 160]))), now)),
            [3]
        );
        let out = rx.on_datagram(&wire(&b.audio(8, Bytes::from(vec![0; 160]))), now);
        assert_eq!(out[0], Received::SourceChanged { ssrc: 2 });
        assert_eq!(seqs(&out), [5000, 5001]);
        // Now the old one is the stranger.
        assert!(
            rx.on_datagram(&wire(&a.audio(0, Bytes::from(vec![0; 160]))), now)
                .is_empty()
        );
    }

    #[test]
    fn sequence_restart_resynchronises() {
        let mut rx = RtpReceiver::new(ReceiverConfig::default());
        let mut a = RtpSender::new(1, 0, 0);
        let now = Instant::now();
        for _ in 0..5 {
            rx.on_datagram(&wire(&a.audio(0, Bytes::from(vec![0; 160]))), now);
        }
        let mut restarted = RtpSender::new(1, 40000, 0);
        assert!(
            rx.on_datagram(&wire(&restarted.audio(0, Bytes::from(vec![0; 160]))), now)
                .is_empty()
        );
        let out = rx.on_datagram(&wire(&restarted.audio(0, Bytes::from(vec![0; 160]))), now);
        assert_eq!(out[0], Received::SourceChanged { ssrc: 1 });
        assert_eq!(seqs(&out), [40001]);
        assert_eq!(rx.stats().rejected_sequence, 1);
    }
}
