//! RFC 4733 reception from the captures shipped with sipp (`/usr/share/sip-tester/dtmf_2833_*.pcap`,
//! PT 101): every file yields its digit exactly once, and all twelve in one stream yield all twelve.

use std::time::{Duration, Instant};

use telephony::media::g711::Codec;
use telephony::media::pcap::udp_datagrams;
use telephony::media::receiver::{Received, ReceiverConfig, RtpReceiver};

const FILES: [(&str, char); 12] = [
    ("0", '0'),
    ("1", '1'),
    ("2", '2'),
    ("3", '3'),
    ("4", '4'),
    ("5", '5'),
    ("6", '6'),
    ("7", '7'),
    ("8", '8'),
    ("9", '9'),
    ("star", '*'),
    ("pound", '#'),
];

fn capture(name: &str) -> Option<Vec<u8>> {
    let path = format!("/usr/share/sip-tester/dtmf_2833_{name}.pcap");
    match std::fs::read(&path) {
        Ok(b) => Some(b),
        Err(_) => {
            // Shipped by the sip-tester package; the helper skips (or fails on CI) without it.
            assert!(
                !foundation::testing::require_tool("sipp", "sip-tester"),
                "sipp installed but {path} missing"
            );
            None
        }
    }
}

fn receive(rx: &mut RtpReceiver, file: &[u8], t0: Instant) -> String {
    let mut digits = String::new();
    for d in udp_datagrams(file).expect("pcap parses") {
        for r in rx.on_datagram(
            &d.payload,
            t0 + Duration::from_millis(d.time.as_millis() as u64 % 100_000),
        ) {
            if let Received::Dtmf(x) = r {
                digits.push(x.digit);
            }
        }
    }
    digits
}

fn receiver() -> RtpReceiver {
    RtpReceiver::new(ReceiverConfig {
        audio: vec![(8, Codec::Pcma)],
        telephone_event: vec![101],
    })
}

#[test]
fn each_capture_gives_its_digit_exactly_once() {
    let t0 = Instant::now();
    for (name, digit) in FILES {
        let Some(file) = capture(name) else { return };
        let pkts = udp_datagrams(&file).unwrap();
        assert_eq!(pkts.len(), 10, "{name}");
        let mut rx = receiver();
        assert_eq!(receive(&mut rx, &file, t0), digit.to_string(), "{name}");
        assert_eq!(rx.stats().events, 10);
        // Replaying the same capture again (retransmission) adds nothing.
        assert_eq!(receive(&mut rx, &file, t0), "", "{name} replayed");
    }
}

#[test]
fn all_captures_in_one_stream() {
    let t0 = Instant::now();
    let mut rx = receiver();
    let mut got = String::new();
    for (name, _) in FILES {
        let Some(file) = capture(name) else { return };
        got += &receive(&mut rx, &file, t0);
    }
    assert_eq!(got, "0123456789*#");
}

#[test]
fn wrong_event_payload_type_is_ignored() {
    let Some(file) = capture("5") else { return };
    // Negotiated telephone-event as 96: PT 101 is then an unknown type.
    let mut rx = RtpReceiver::new(ReceiverConfig {
        audio: vec![(0, Codec::Pcmu)],
        telephone_event: vec![96],
    });
    assert_eq!(receive(&mut rx, &file, Instant::now()), "");
    assert_eq!(rx.stats().unknown_payload_type, 10);
}
