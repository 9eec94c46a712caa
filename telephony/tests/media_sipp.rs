//! Media against a real third-party peer, sipp (Debian package `sip-tester`):
//! - `play_dtmf` (telephone-event PT 96, PT 97 filler packets, its own SSRC) into an `RtpSession`:
//!   every digit, repeated ones included, arrives exactly once;
//! - `play_pcap_audio` of the shipped `dtmf_2833_*.pcap` captures (PT 101) in one call: each digit
//!   once;
//! - sipp replaying its `g711a.pcap` (PCMA, 30 ms packets) is heard bit-exact;
//! - a µ-law prompt played by an `RtpSession` to sipp's `-rtp_echo` comes back bit-exact.
//!
//! sipp's `play_dtmf` and `play_pcap_audio` use raw sockets (root or CAP_NET_RAW); those tests
//! skip without them.

mod media_support;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::{Command, Stdio};
use std::time::Duration;

use media_support::{Kill, Scratch, free_udp_port};
use telephony::media::g711::{Codec, linear_to_ulaw};
use telephony::media::prompt::Prompt;
use telephony::media::receiver::ReceiverConfig;
use telephony::media::session::{MediaEvent, RtpSession, SessionConfig};
use telephony::media::wav::{Wav, WavEncoding, wav_from_raw};
use tokio::time::timeout;

const LO: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

const UAS: &str = r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="UAS answering with the test's RTP port">
  <recv request="INVITE" crlf="true"/>
  <send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:];tag=[pid]SIPpTag01[call_number]
[last_Call-ID:]
[last_CSeq:]
Contact: <sip:[local_ip]:[local_port];transport=[transport]>
Content-Type: application/sdp
Content-Length: [len]

v=0
o=user1 53655765 2353687637 IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [rtpport] RTP/AVP 0 96
a=rtpmap:0 PCMU/8000
a=rtpmap:96 telephone-event/8000

]]></send>
  <recv request="ACK" crlf="true"/>
  <recv request="BYE"/>
  <send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]></send>
</scenario>
"#;

const PLAY_DTMF: &str = r#"  <nop><action><exec play_dtmf="[digits],120"/></action></nop>
  <pause milliseconds="3000"/>"#;

const UAC: &str = r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="UAC sending DTMF with play_dtmf">
  <send retrans="500"><![CDATA[
INVITE sip:ivr@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:ivr@[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: 1 INVITE
Contact: sip:sipp@[local_ip]:[local_port]
Max-Forwards: 70
Content-Type: application/sdp
Content-Length: [len]

v=0
o=user1 53655765 2353687637 IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 0 96
a=rtpmap:0 PCMU/8000
a=rtpmap:96 telephone-event/8000

]]></send>
  <recv response="100" optional="true"/>
  <recv response="200"/>
  <send><![CDATA[
ACK sip:ivr@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:ivr@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 1 ACK
Contact: sip:sipp@[local_ip]:[local_port]
Max-Forwards: 70
Content-Length: 0

]]></send>
MEDIA_ACTIONS
  <send retrans="500"><![CDATA[
BYE sip:ivr@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:ivr@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 2 BYE
Contact: sip:sipp@[local_ip]:[local_port]
Max-Forwards: 70
Content-Length: 0

]]></send>
  <recv response="200" crlf="true"/>
</scenario>
"#;

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0\n"))
        .unwrap_or(false)
}

/// Runs a sipp UAS (answering with the session's RTP port) and a sipp UAC whose scenario sends
/// `media_actions` after the ACK; returns the digits the session reported and its counters.
async fn call_from_sipp(
    name: &str,
    telephone_event: u8,
    media_actions: &str,
    digits_key: &str,
) -> (String, telephony::media::session::SessionStats, Vec<u8>) {
    let dir = Scratch::new(name);
    std::fs::write(dir.path("uas.xml"), UAS).unwrap();
    std::fs::write(
        dir.path("uac.xml"),
        UAC.replace("MEDIA_ACTIONS", media_actions),
    )
    .unwrap();
    let mut cfg = SessionConfig::pcmu(LO);
    cfg.receive = ReceiverConfig {
        audio: vec![(0, Codec::Pcmu), (8, Codec::Pcma)],
        telephone_event: vec![telephone_event],
    };
    let mut session = RtpSession::bind(cfg, None).await.unwrap();
    let mut tap = session.tap(10_000);
    let rtp_port = session.local_addr().port().to_string();
    let (uas_port, uas_mp, uac_port, uac_mp) = (
        free_udp_port(),
        free_udp_port(),
        free_udp_port(),
        free_udp_port(),
    );
    let uas = Kill(
        Command::new("sipp")
            .current_dir(&dir.0)
            .args(["-sf", "uas.xml", "-i", "127.0.0.1", "-mi", "127.0.0.1"])
            .args(["-p", &uas_port.to_string(), "-mp", &uas_mp.to_string()])
            .args(["-key", "rtpport", &rtp_port, "-nostdin", "-m", "1"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let d = dir.0.clone();
    let key = digits_key.to_owned();
    let uac = tokio::task::spawn_blocking(move || {
        Command::new("sipp")
            .current_dir(&d)
            .args(["-sf", "uac.xml", &format!("127.0.0.1:{uas_port}")])
            .args(["-i", "127.0.0.1", "-mi", "127.0.0.1"])
            .args(["-p", &uac_port.to_string(), "-mp", &uac_mp.to_string()])
            .args(["-key", "digits", &key])
            .args(["-m", "1", "-nostdin", "-timeout", "20s", "-timeout_error"])
            .output()
            .unwrap()
    });
    let mut got = String::new();
    let mut uac = uac;
    let out = loop {
        tokio::select! {
            out = &mut uac => break out.unwrap(),
            Some(e) = session.next_event() => {
                if let MediaEvent::Dtmf { digit, inband } = e {
                    assert!(!inband);
                    got.push(digit);
                }
            }
        }
    };
    // Let the jitter buffer play out what is left.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        out.status.success(),
        "sipp uac failed: {}",
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .rev()
            .take(15)
            .collect::<Vec<_>>()
            .join("\n")
    );
    drop(uas);
    let st = session.stats().await;
    session.close().await;
    // What the session heard, as A-law (lossless for A-law input).
    let mut heard = Vec::new();
    while let Ok(f) = tap.try_recv() {
        if f.direction == telephony::media::recorder::Direction::Inbound {
            heard.extend(
                f.pcm
                    .iter()
                    .map(|&x| telephony::media::g711::linear_to_alaw(x)),
            );
        }
    }
    (got, st, heard)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sipp_play_dtmf_digits_arrive_exactly_once() {
    if !foundation::testing::require_tool("sipp", "sip-tester") {
        return;
    }
    if !is_root() {
        eprintln!("SKIP: sipp play_dtmf needs raw sockets (root or CAP_NET_RAW)");
        return;
    }
    let digits = "1223#0";
    let (got, st, _) = call_from_sipp("sipp-dtmf", 96, PLAY_DTMF, digits).await;
    assert_eq!(got, digits);
    assert!(
        st.receiver.unknown_payload_type >= 1,
        "sipp's PT 97 filler was not seen: {st:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sipp_replaying_the_dtmf_captures_gives_each_digit_once() {
    if !foundation::testing::require_tool("sipp", "sip-tester") {
        return;
    }
    if !is_root() {
        eprintln!("SKIP: sipp play_pcap_audio needs raw sockets (root or CAP_NET_RAW)");
        return;
    }
    // One capture per distinct digit (they share SSRC, sequence numbers and timestamps).
    let actions: String = ["5", "9", "pound", "star"]
        .iter()
        .map(|d| {
            format!(
                "  <nop><action><exec play_pcap_audio=\"/usr/share/sip-tester/dtmf_2833_{d}.pcap\"/></action></nop>\n  <pause milliseconds=\"600\"/>\n"
            )
        })
        .collect();
    let (got, st, _) = call_from_sipp("sipp-pcap", 101, &actions, "-").await;
    assert_eq!(got, "59#*");
    assert_eq!(st.receiver.events, 40);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sipp_pcma_capture_is_heard_bit_exact() {
    if !foundation::testing::require_tool("sipp", "sip-tester") {
        return;
    }
    if !is_root() {
        eprintln!("SKIP: sipp play_pcap_audio needs raw sockets (root or CAP_NET_RAW)");
        return;
    }
    // sipp's g711a.pcap: PCMA with 30 ms packets (240 bytes), about 7 s.
    let path = "/usr/share/sip-tester/g711a.pcap";
    let want: Vec<u8> = telephony::media::pcap::udp_datagrams(&std::fs::read(path).unwrap())
        .unwrap()
        .iter()
        .filter_map(|d| {
            let mut b = &d.payload[..];
            let p =
                <rtp::packet::Packet as webrtc_util::marshal::Unmarshal>::unmarshal(&mut b).ok()?;
            (p.header.payload_type == 8).then(|| p.payload.to_vec())
        })
        .flatten()
        .collect();
    assert!(want.len() > 50_000);
    let actions = format!(
        "  <nop><action><exec play_pcap_audio=\"{path}\"/></action></nop>\n  <pause milliseconds=\"7800\"/>\n"
    );
    let (_, st, heard) = call_from_sipp("sipp-pcma", 101, &actions, "-").await;
    assert_eq!(st.receiver.audio, 236, "{st:?}");
    assert_eq!(heard.len(), want.len());
    assert!(heard == want, "A-law audio altered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prompt_echoed_by_sipp_comes_back_bit_exact() {
    if !foundation::testing::require_tool("sipp", "sip-tester") {
        return;
    }
    let echo_port = free_udp_port();
    let sip_port = free_udp_port();
    let _echo = Kill(
        Command::new("sipp")
            .args([
                "-sn",
                "uas",
                "-i",
                "127.0.0.1",
                "-mi",
                "127.0.0.1",
                "-p",
                &sip_port.to_string(),
            ])
            .args(["-mp", &echo_port.to_string(), "-rtp_echo", "-nostdin"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Two seconds of µ-law covering every code except 0x7F (which decodes like 0xFF and so cannot
    // be told apart after the tap's decoding).
    let raw: Vec<u8> = (0..16000u32)
        .map(|i| (i * 29 % 255) as u8)
        .map(|b| if b == 0x7F { 0xFF } else { b })
        .collect();
    let prompt = Prompt::from_wav(Wav::parse(&wav_from_raw(WavEncoding::Ulaw, 1, &raw)).unwrap());
    let mut s = RtpSession::bind(SessionConfig::pcmu(LO), None)
        .await
        .unwrap();
    s.set_remote(SocketAddr::new(LO, echo_port));
    let mut tap = s.tap(1000);
    s.play(Box::new(prompt.player()));
    let finished = timeout(Duration::from_secs(5), async {
        // The echo is our own stream coming back: SourceChanged first, then the end of playback.
        while let Some(e) = s.next_event().await {
            if e == MediaEvent::PlaybackFinished {
                return true;
            }
        }
        false
    });
    assert!(finished.await.unwrap(), "playback did not finish");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut back = Vec::new();
    while let Ok(f) = tap.try_recv() {
        if f.direction == telephony::media::recorder::Direction::Inbound {
            back.extend(f.pcm.iter().map(|&x| linear_to_ulaw(x)));
        }
    }
    assert_eq!(back.len(), raw.len(), "frames echoed");
    assert!(back == raw, "echoed µ-law differs from the prompt");
    let st = s.stats().await;
    assert_eq!(st.receiver.audio, 100);
    assert_eq!(st.jitter.lost, 0);
    s.close().await;
}
