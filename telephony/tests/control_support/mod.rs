//! Shared by the `control_*` tests and the `control_bench` example: a SIP listener with call
//! control on loopback, sipp scenarios generated per test (sipp 3.6.1 does not interpolate file
//! names), an RTP capture socket, and deterministic test audio.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use foundation::lifecycle::Lifecycle;
use telephony::control::{Calls, ControlConfig, IncomingCalls};
use telephony::media::g711::Codec;
use telephony::sip::listener::{self, SipListeners, SipOptions};
use tokio::net::UdpSocket;
use tokio::sync::oneshot;

pub struct Sut {
    pub sip: SipListeners,
    pub lifecycle: Lifecycle,
    pub calls: Calls,
    pub incoming: Option<IncomingCalls>,
}

/// SIP (auto-answer) plus call control; `rtp_base`: a range of 200 ports of its own per test so
/// tests running in parallel never share RTP ports.
pub async fn start(rtp_base: u16, inactivity: Option<Duration>) -> Sut {
    let config = telephony::Config {
        udp: "127.0.0.1:0".parse().unwrap(),
        tcp: "127.0.0.1:0".parse().unwrap(),
        advertised_address: Some("127.0.0.1".into()),
        rtp_ports: (rtp_base, rtp_base + 199),
        max_message_bytes: 8192,
    };
    let lifecycle = Lifecycle::new();
    let sip = listener::start_with(&config, SipOptions::default(), lifecycle.clone())
        .await
        .expect("SIP starts");
    let cc = ControlConfig {
        media_ip: "127.0.0.1".parse().unwrap(),
        inactivity_timeout: inactivity,
        inband_dtmf: true,
        jitter_depth: 3,
    };
    let (calls, incoming) = Calls::start(sip.handle.clone(), cc);
    Sut {
        sip,
        lifecycle,
        calls,
        incoming: Some(incoming),
    }
}

pub fn scratch(name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("dialbridge-control-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A free loopback port (UDP and TCP) for sipp's SIP or media socket.
pub fn free_port() -> u16 {
    loop {
        let u = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = u.local_addr().unwrap().port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
            && std::net::UdpSocket::bind(("127.0.0.1", port + 2)).is_ok()
        {
            return port;
        }
    }
}

pub struct SippOut {
    pub rc: i32,
    pub stdout: String,
    pub errors: String,
}

/// Runs sipp in `dir` (killed on drop); `wait` gives its exit code and output.
pub fn spawn_sipp(dir: &Path, args: &[String]) -> tokio::process::Child {
    tokio::process::Command::new("sipp")
        .current_dir(dir)
        .args(args)
        .args([
            "-nostdin",
            "-trace_err",
            "-error_file",
            "errors.log",
            "-timeout",
            "40s",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("sipp starts")
}

pub async fn wait_sipp(dir: &Path, child: tokio::process::Child) -> SippOut {
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("sipp finishes within a minute")
        .expect("sipp runs");
    let tail = |b: &[u8]| {
        let s = String::from_utf8_lossy(b);
        s.chars()
            .rev()
            .take(2500)
            .collect::<String>()
            .chars()
            .rev()
            .collect::<String>()
    };
    SippOut {
        rc: out.status.code().unwrap_or(-1),
        stdout: tail(&out.stdout) + &tail(&out.stderr),
        errors: std::fs::read_to_string(dir.join("errors.log"))
            .unwrap_or_default()
            .chars()
            .take(3000)
            .collect(),
    }
}

/// SDP audio lines for a codec list like `[(0, "PCMU"), (96, "telephone-event")]`.
fn sdp_media(port: &str, codecs: &[(u8, &str)]) -> String {
    let pts: Vec<String> = codecs.iter().map(|(pt, _)| pt.to_string()).collect();
    let mut s = format!("m=audio {port} RTP/AVP {}\n", pts.join(" "));
    for (pt, name) in codecs {
        s += &format!("a=rtpmap:{pt} {name}/8000\n");
    }
    s
}

/// How a generated sipp caller ends its call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// Sends BYE after the given pause.
    ByeAfter(u32),
    /// Waits (up to this long) for the SUT's BYE.
    WaitBye(u32),
}

/// A sipp caller: INVITE whose SDP points at `[rtpport]` on 127.0.0.1 (a capture socket of the
/// test, or sipp's own media port), then optionally streams a headerless G.711 file from sipp's
/// media socket, plays RFC 4733 digits, sends a SIP INFO digit, and ends.
pub struct Uac<'a> {
    pub codecs: &'a [(u8, &'a str)],
    pub stream: Option<(&'a Path, u8)>,
    pub play_dtmf: Option<&'a str>,
    pub info_digit: Option<char>,
    pub end: End,
}

const UAC_HEAD: &str = r#"      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      Max-Forwards: 70
"#;

impl Uac<'_> {
    pub fn xml(&self) -> String {
        let mut x = String::from(
            "<?xml version=\"1.0\" encoding=\"ISO-8859-1\" ?>\n<scenario name=\"control uac\">\n",
        );
        x += &format!(
            "  <send retrans=\"500\"><![CDATA[\n      INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0\n{UAC_HEAD}      CSeq: 1 INVITE\n      Contact: sip:sipp@[local_ip]:[local_port]\n      Content-Type: application/sdp\n      Content-Length: [len]\n\n      v=0\n      o=user1 1 1 IN IP4 [local_ip]\n      s=-\n      c=IN IP4 127.0.0.1\n      t=0 0\n{}\n    ]]></send>\n",
            sdp_media("[rtpport]", self.codecs)
                .lines()
                .map(|l| format!("      {l}\n"))
                .collect::<String>()
        );
        x += "  <recv response=\"100\" optional=\"true\"/>\n  <recv response=\"180\" optional=\"true\"/>\n  <recv response=\"200\"/>\n";
        x += &format!(
            "  <send><![CDATA[\n      ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0\n{UAC_HEAD}      CSeq: 1 ACK\n      Content-Length: 0\n\n    ]]></send>\n"
        );
        if let Some((file, pt)) = self.stream {
            x += &format!(
                "  <nop><action><exec rtp_stream=\"{},-1,{pt}\"/></action></nop>\n",
                file.display()
            );
        }
        x += "  <pause milliseconds=\"300\"/>\n";
        if let Some(d) = self.play_dtmf {
            x += &format!(
                "  <nop><action><exec play_dtmf=\"{d},160\"/></action></nop>\n  <pause milliseconds=\"{}\"/>\n",
                d.len() as u32 * 300 + 500
            );
        }
        if let Some(d) = self.info_digit {
            x += &format!(
                "  <send retrans=\"500\"><![CDATA[\n      INFO sip:[service]@[remote_ip]:[remote_port] SIP/2.0\n{UAC_HEAD}      CSeq: 2 INFO\n      Content-Type: application/dtmf-relay\n      Content-Length: [len]\n\n      Signal={d}\n      Duration=160\n\n    ]]></send>\n  <recv response=\"200\"/>\n"
            );
        }
        match self.end {
            End::ByeAfter(ms) => {
                x += &format!("  <pause milliseconds=\"{ms}\"/>\n");
                if self.stream.is_some() {
                    x += "  <nop><action><exec rtp_stream=\"pause\"/></action></nop>\n";
                }
                x += &format!(
                    "  <send retrans=\"500\"><![CDATA[\n      BYE sip:[service]@[remote_ip]:[remote_port] SIP/2.0\n{UAC_HEAD}      CSeq: 3 BYE\n      Content-Length: 0\n\n    ]]></send>\n  <recv response=\"200\" crlf=\"true\"/>\n"
                );
            }
            End::WaitBye(ms) => {
                x += &format!("  <recv request=\"BYE\" timeout=\"{ms}\"/>\n");
                x += OK_TO_BYE;
            }
        }
        x + "</scenario>\n"
    }
}

const OK_TO_BYE: &str = "  <send><![CDATA[\n      SIP/2.0 200 OK\n      [last_Via:]\n      [last_From:]\n      [last_To:]\n      [last_Call-ID:]\n      [last_CSeq:]\n      Content-Length: 0\n\n    ]]></send>\n";

/// A sipp callee: answers with only `codecs` (SDP media at `[rtpport]`), streams a headerless
/// file from its media socket after the ACK, and waits for the caller's BYE.
pub fn uas_xml(codecs: &[(u8, &str)], stream: Option<(&Path, u8)>, wait_bye_ms: u32) -> String {
    let mut x = String::from(
        "<?xml version=\"1.0\" encoding=\"ISO-8859-1\" ?>\n<scenario name=\"control uas\">\n  <recv request=\"INVITE\" crlf=\"true\"/>\n",
    );
    x += &format!(
        "  <send><![CDATA[\n      SIP/2.0 200 OK\n      [last_Via:]\n      [last_From:]\n      [last_To:];tag=[pid]SIPpTag01[call_number]\n      [last_Call-ID:]\n      [last_CSeq:]\n      Contact: <sip:[local_ip]:[local_port];transport=[transport]>\n      Content-Type: application/sdp\n      Content-Length: [len]\n\n      v=0\n      o=user1 1 1 IN IP4 [local_ip]\n      s=-\n      c=IN IP4 127.0.0.1\n      t=0 0\n{}\n    ]]></send>\n  <recv request=\"ACK\" crlf=\"true\"/>\n",
        sdp_media("[rtpport]", codecs)
            .lines()
            .map(|l| format!("      {l}\n"))
            .collect::<String>()
    );
    if let Some((file, pt)) = stream {
        x += &format!(
            "  <nop><action><exec rtp_stream=\"{},-1,{pt}\"/></action></nop>\n",
            file.display()
        );
    }
    x += &format!("  <recv request=\"BYE\" timeout=\"{wait_bye_ms}\"/>\n");
    if stream.is_some() {
        x += "  <nop><action><exec rtp_stream=\"pause\"/></action></nop>\n";
    }
    x + OK_TO_BYE + "</scenario>\n"
}

/// One captured RTP packet.
#[derive(Debug, Clone)]
pub struct Rtp {
    /// Where it came from, and when.
    pub from: std::net::SocketAddr,
    pub at: std::time::Instant,
    pub pt: u8,
    pub marker: bool,
    pub seq: u16,
    pub ts: u32,
    pub ssrc: u32,
    pub payload: Vec<u8>,
}

pub fn parse_rtp(b: &[u8], from: std::net::SocketAddr) -> Option<Rtp> {
    if b.len() < 12 || b[0] >> 6 != 2 {
        return None;
    }
    let cc = (b[0] & 0x0f) as usize;
    let mut off = 12 + 4 * cc;
    if b[0] & 0x10 != 0 {
        let len = u16::from_be_bytes([*b.get(off + 2)?, *b.get(off + 3)?]) as usize;
        off += 4 + 4 * len;
    }
    Some(Rtp {
        from,
        at: std::time::Instant::now(),
        pt: b[1] & 0x7f,
        marker: b[1] & 0x80 != 0,
        seq: u16::from_be_bytes([b[2], b[3]]),
        ts: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
        ssrc: u32::from_be_bytes([b[8], b[9], b[10], b[11]]),
        payload: b.get(off..)?.to_vec(),
    })
}

/// A UDP socket standing for a peer's media address: records every RTP packet it receives.
pub struct Capture {
    pub port: u16,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Vec<Rtp>>,
}

impl Capture {
    pub async fn start() -> Capture {
        let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let port = sock.local_addr().unwrap().port();
        let (stop, mut stopped) = oneshot::channel();
        let task = tokio::spawn(async move {
            let mut got = Vec::new();
            let mut buf = vec![0u8; 2048];
            loop {
                tokio::select! {
                    _ = &mut stopped => break,
                    r = sock.recv_from(&mut buf) => {
                        if let Ok((n, from)) = r && let Some(p) = parse_rtp(&buf[..n], from) {
                            got.push(p);
                        }
                    }
                }
            }
            got
        });
        Capture {
            port,
            stop: Some(stop),
            task,
        }
    }

    pub async fn finish(mut self) -> Vec<Rtp> {
        let _ = self.stop.take().unwrap().send(());
        self.task.await.unwrap()
    }
}

/// What the SUT sent (from its RTP port range starting at `rtp_base`) with one payload type, in
/// sequence order (seq unwrapped from the first packet). Anything else that reaches a capture
/// socket on this shared machine is not ours to judge.
pub fn stream_of(pkts: &[Rtp], rtp_base: u16, pt: u8) -> Vec<Rtp> {
    let mut v: Vec<Rtp> = pkts
        .iter()
        .filter(|p| p.pt == pt && (rtp_base..rtp_base + 200).contains(&p.from.port()))
        .cloned()
        .collect();
    let foreign = pkts
        .iter()
        .filter(|p| !(rtp_base..rtp_base + 200).contains(&p.from.port()))
        .count();
    if foreign > 0 {
        eprintln!("capture: {foreign} packets from outside the SUT's RTP range ignored");
    }
    if let Some(first) = v.first().map(|p| p.seq) {
        v.sort_by_key(|p| p.seq.wrapping_sub(first));
    }
    v
}

/// Deterministic speech-like test audio: a few drifting partials with a syllable envelope and a
/// little noise, `ms` long.
pub fn test_audio(ms: usize, seed: u32) -> Vec<i16> {
    let n = ms * 8;
    let mut rng = seed.wrapping_mul(2_654_435_761).max(1);
    (0..n)
        .map(|i| {
            let t = i as f64 / 8000.0;
            let env =
                0.55 + 0.45 * (2.0 * std::f64::consts::PI * (3.0 + seed as f64 % 2.0) * t).sin();
            let f0 =
                180.0 + 60.0 * (2.0 * std::f64::consts::PI * 0.7 * t).sin() + seed as f64 * 7.0;
            let v = (2.0 * std::f64::consts::PI * f0 * t).sin() * 0.5
                + (2.0 * std::f64::consts::PI * f0 * 2.3 * t).sin() * 0.25
                + (2.0 * std::f64::consts::PI * f0 * 4.1 * t).sin() * 0.12;
            rng ^= rng << 13;
            rng ^= rng >> 17;
            rng ^= rng << 5;
            let noise = (rng % 2001) as f64 / 1000.0 - 1.0;
            ((v * env + noise * 0.02) * 12_000.0) as i16
        })
        .collect()
}

/// Writes a headerless G.711 file (what sipp's `rtp_stream` sends) and returns its bytes.
pub fn write_raw(path: &Path, codec: Codec, pcm: &[i16]) -> Vec<u8> {
    let bytes = codec.encode(pcm);
    std::fs::write(path, &bytes).unwrap();
    bytes
}

/// Normalised correlation at lag 0.
pub fn correlation(a: &[i16], b: &[i16]) -> f64 {
    let n = a.len().min(b.len());
    let (mut ab, mut aa, mut bb) = (0.0, 0.0, 0.0);
    for i in 0..n {
        let (x, y) = (a[i] as f64, b[i] as f64);
        ab += x * y;
        aa += x * x;
        bb += y * y;
    }
    if aa == 0.0 || bb == 0.0 {
        0.0
    } else {
        ab / (aa * bb).sqrt()
    }
}

/// Where a received run of 20 ms frames sits in a looped source: the frame offset whose
/// correlation with the first `probe` received frames is highest, and that correlation over the
/// whole run (the source repeated as needed).
pub fn best_alignment(source: &[i16], received: &[i16]) -> (usize, f64) {
    let frames = source.len() / 160;
    let probe = &received[..received.len().min(160 * 10)];
    let looped = |k: usize, len: usize| -> Vec<i16> {
        (0..len)
            .map(|i| source[(k * 160 + i) % source.len()])
            .collect()
    };
    let best = (0..frames)
        .map(|k| (k, correlation(&looped(k, probe.len()), probe)))
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .unwrap();
    (
        best.0,
        correlation(&looped(best.0, received.len()), received),
    )
}

/// A sipp caller that holds the call (re-INVITE `a=sendonly`), resumes it (`a=sendrecv`) and
/// hangs up: `hold_ms` on hold, `talk_ms` before and after.
pub fn hold_xml(talk_ms: u32, hold_ms: u32) -> String {
    let invite = |cseq: u32, dir: &str| {
        format!(
            "  <send retrans=\"500\"><![CDATA[\n      INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0\n{UAC_HEAD}      CSeq: {cseq} INVITE\n      Contact: sip:sipp@[local_ip]:[local_port]\n      Content-Type: application/sdp\n      Content-Length: [len]\n\n      v=0\n      o=user1 1 {cseq} IN IP4 [local_ip]\n      s=-\n      c=IN IP4 127.0.0.1\n      t=0 0\n      m=audio [rtpport] RTP/AVP 0 101\n      a=rtpmap:0 PCMU/8000\n      a=rtpmap:101 telephone-event/8000\n      a={dir}\n\n    ]]></send>\n  <recv response=\"100\" optional=\"true\"/>\n  <recv response=\"180\" optional=\"true\"/>\n  <recv response=\"200\"/>\n  <send><![CDATA[\n      ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0\n{UAC_HEAD}      CSeq: {cseq} ACK\n      Content-Length: 0\n\n    ]]></send>\n"
        )
    };
    let mut x = String::from(
        "<?xml version=\"1.0\" encoding=\"ISO-8859-1\" ?>\n<scenario name=\"control hold\">\n",
    );
    x += &invite(1, "sendrecv");
    x += &format!("  <pause milliseconds=\"{talk_ms}\"/>\n");
    x += &invite(2, "sendonly");
    x += &format!("  <pause milliseconds=\"{hold_ms}\"/>\n");
    x += &invite(3, "sendrecv");
    x += &format!("  <pause milliseconds=\"{talk_ms}\"/>\n");
    x += &format!(
        "  <send retrans=\"500\"><![CDATA[\n      BYE sip:[service]@[remote_ip]:[remote_port] SIP/2.0\n{UAC_HEAD}      CSeq: 4 BYE\n      Content-Length: 0\n\n    ]]></send>\n  <recv response=\"200\" crlf=\"true\"/>\n"
    );
    x + "</scenario>\n"
}
