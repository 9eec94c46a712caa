//! Benchmark of call control with media (prints figures; not a test): sipp calls in
//! (`-sn uac -rtp_echo`), Dialbridge answers each call and plays a looped µ-law prompt, sipp
//! echoes it back, and Dialbridge receives it. For each concurrency level: calls reached and
//! completed, packets sent/received by Dialbridge in the steady state (loss), Dialbridge's CPU,
//! memory per call, and the machine's load (it is shared).
//!
//! `--relay`: instead, sipp callers stream audio (`rtp_stream`) and Dialbridge bridges the calls
//! in pairs (B2BUA relay, each leg's audio relayed to the other); "sent / received" are then the
//! packets relayed out / received in.
//!
//! `cargo run --release -p telephony --example control_bench -- 200 500 1000 [--sipp=K] [--relay]`
//! (levels as arguments; default 200 500 1000; K sipp callers share each level).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use foundation::lifecycle::Lifecycle;
use telephony::control::{Call, Calls, ControlConfig, Event};
use telephony::media::prompt::Prompt;
use telephony::sip::listener::{self, SipOptions};

#[derive(Default)]
struct Acc {
    probed: AtomicU64,
    sent: AtomicU64,
    received: AtomicU64,
    rejected: AtomicU64,
    late: AtomicU64,
    lost: AtomicU64,
    answered: AtomicU64,
    inactive: AtomicU64,
    relay_dropped: AtomicU64,
    peak: AtomicUsize,
}

fn rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("VmRSS:")
                .map(|v| v.trim().trim_end_matches(" kB").trim().parse().unwrap_or(0))
        })
        .unwrap_or(0)
}

/// (user + system) CPU seconds of this process.
fn cpu_s() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    ticks / 100.0
}

/// CPU seconds of finished child processes (sipp) of this process.
fn children_cpu_s() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = f.get(13).and_then(|v| v.parse().ok()).unwrap_or(0.0)
        + f.get(14).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    ticks / 100.0
}

/// The kernel's UDP receive-buffer drops (all sockets on the machine).
fn udp_rcvbuf_errors() -> u64 {
    let s = std::fs::read_to_string("/proc/net/snmp").unwrap_or_default();
    let rows: Vec<Vec<&str>> = s
        .lines()
        .filter(|l| l.starts_with("Udp:"))
        .map(|l| l.split_whitespace().collect())
        .collect();
    let (Some(h), Some(v)) = (rows.first(), rows.get(1)) else {
        return 0;
    };
    h.iter()
        .position(|c| *c == "RcvbufErrors")
        .and_then(|i| v.get(i))
        .and_then(|x| x.parse().ok())
        .unwrap_or(0)
}

/// Per-socket receive drops from /proc/net/udp: (on `port`, on ports in `range`).
fn socket_drops(port: u16, range: (u16, u16)) -> (u64, u64) {
    let s = std::fs::read_to_string("/proc/net/udp").unwrap_or_default();
    let (mut one, mut ours) = (0, 0);
    for l in s.lines().skip(1) {
        let f: Vec<&str> = l.split_whitespace().collect();
        let Some(p) = f
            .get(1)
            .and_then(|a| a.rsplit_once(':'))
            .and_then(|(_, p)| u16::from_str_radix(p, 16).ok())
        else {
            continue;
        };
        let drops: u64 = f.last().and_then(|d| d.parse().ok()).unwrap_or(0);
        if p == port {
            one += drops;
        } else if (range.0..=range.1).contains(&p) {
            ours += drops;
        }
    }
    (one, ours)
}

/// Busy share of the whole machine (all processes) between two /proc/stat samples.
fn machine_busy() -> (u64, u64) {
    let s = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let v: Vec<u64> = s
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    (v.iter().sum::<u64>() - idle, v.iter().sum())
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn free_port() -> u16 {
    loop {
        let u = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let p = u.local_addr().unwrap().port();
        if std::net::TcpListener::bind(("127.0.0.1", p)).is_ok()
            && std::net::UdpSocket::bind(("127.0.0.1", p + 2)).is_ok()
        {
            return p;
        }
    }
}

/// One call: play on answer, sample the media counters once in the steady state.
/// In relay mode, the answered call waiting for a partner.
type Pairing = Arc<std::sync::Mutex<Option<telephony::control::CallControl>>>;

async fn serve(
    mut call: Call,
    prompt: Prompt,
    probe_at: Duration,
    acc: Arc<Acc>,
    calls: Calls,
    pairing: Option<Pairing>,
) {
    let ctl = call.control().clone();
    let mut probe: Option<tokio::time::Instant> = None;
    loop {
        let ev = match probe {
            Some(at) => match tokio::time::timeout_at(at, call.next_event()).await {
                Ok(ev) => ev,
                Err(_) => {
                    probe = None;
                    if let Ok(s) = ctl.media_stats().await {
                        acc.probed.fetch_add(1, Ordering::Relaxed);
                        acc.sent.fetch_add(s.sent, Ordering::Relaxed);
                        acc.received.fetch_add(s.receiver.audio, Ordering::Relaxed);
                        acc.rejected
                            .fetch_add(s.receiver.rejected_sequence, Ordering::Relaxed);
                        acc.late.fetch_add(s.jitter.late, Ordering::Relaxed);
                        acc.lost.fetch_add(s.jitter.lost, Ordering::Relaxed);
                        acc.relay_dropped
                            .fetch_add(s.relay_dropped, Ordering::Relaxed);
                    }
                    continue;
                }
            },
            None => call.next_event().await,
        };
        match ev {
            Some(Event::Answered { .. }) => {
                acc.answered.fetch_add(1, Ordering::Relaxed);
                acc.peak.fetch_max(calls.live(), Ordering::Relaxed);
                match &pairing {
                    // Looped for longer than any call here.
                    None => {
                        let _ = ctl.play(Box::new(prompt.player_looped(1000))).await;
                    }
                    Some(slot) => {
                        let waiting = slot.lock().unwrap().take();
                        match waiting {
                            Some(peer) => {
                                let _ = peer
                                    .bridge(&ctl, telephony::control::OnPeerHangup::Stay)
                                    .await;
                            }
                            None => *slot.lock().unwrap() = Some(ctl.clone()),
                        }
                    }
                }
                probe = Some(tokio::time::Instant::now() + probe_at);
            }
            Some(Event::Hangup {
                cause: telephony::control::EndCause::RtpInactivity,
                ..
            }) => {
                acc.inactive.fetch_add(1, Ordering::Relaxed);
            }
            Some(_) => {}
            None => break,
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let levels: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    // `--sipp=K`: K sipp callers share each level (one echo socket each).
    let relay = std::env::args().any(|a| a == "--relay");
    let k: usize = std::env::args()
        .find_map(|a| a.strip_prefix("--sipp=").and_then(|v| v.parse().ok()))
        .unwrap_or(1)
        .max(1);
    let levels = if levels.is_empty() {
        vec![200, 500, 1000]
    } else {
        levels
    };
    let config = telephony::Config {
        udp: "127.0.0.1:0".parse()?,
        tcp: "127.0.0.1:0".parse()?,
        advertised_address: Some("127.0.0.1".into()),
        rtp_ports: (14000, 17999),
        max_message_bytes: 8192,
    };
    let sip = listener::start_with(&config, SipOptions::default(), Lifecycle::new()).await?;
    let (calls, mut incoming) = Calls::start(
        sip.handle.clone(),
        ControlConfig {
            media_ip: "127.0.0.1".parse()?,
            inactivity_timeout: Some(Duration::from_secs(5)),
            ..ControlConfig::default()
        },
    );
    // 1 s of µ-law audio, looped for the whole call.
    let pcm: Vec<i16> = (0..8000)
        .map(|i| ((i as f64 * 0.07).sin() * 8000.0 * (1.0 + (i as f64 * 0.001).sin()) / 2.0) as i16)
        .collect();
    let wav = telephony::media::wav::Wav::parse(&telephony::media::wav::encode_wav(
        telephony::media::wav::WavEncoding::Ulaw,
        &pcm,
    ))?;
    let prompt_one = Prompt::from_wav(wav);
    let dir = std::env::temp_dir().join(format!("dialbridge-control-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    println!(
        "{} mode; levels {levels:?}, {k} sipp caller(s) per level; {} cores; load before: {}",
        if relay {
            "relay (calls bridged in pairs)"
        } else {
            "play (looped prompt, sipp echoes)"
        },
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        loadavg()
    );
    let base_rss = rss_kb();
    let acc_slot: Arc<std::sync::Mutex<Arc<Acc>>> =
        Arc::new(std::sync::Mutex::new(Arc::new(Acc::default())));
    let probe_slot = Arc::new(std::sync::Mutex::new(Duration::from_secs(5)));
    let pairing: Option<Pairing> = relay.then(|| Arc::new(std::sync::Mutex::new(None)));
    // The callers' audio in relay mode: 1 s of µ-law, streamed in a loop by sipp.
    std::fs::write(
        dir.join("caller.ulaw"),
        telephony::media::g711::Codec::Pcmu.encode(&pcm),
    )?;
    {
        let (acc_slot, probe_slot, calls) = (acc_slot.clone(), probe_slot.clone(), calls.clone());
        tokio::spawn(async move {
            while let Some(call) = incoming.next().await {
                let acc = acc_slot.lock().unwrap().clone();
                let probe = *probe_slot.lock().unwrap();
                tokio::spawn(serve(
                    call,
                    prompt_one.clone(),
                    probe,
                    acc,
                    calls.clone(),
                    pairing.clone(),
                ));
            }
        });
    }
    println!(
        "level | reached | sipp ok/failed | Dialbridge sent / received pkts (loss) | rejected/late/lost | CPU % of 1 core: Dialbridge / sipp | UDP rcvbuf drops: machine (sipp echo socket / Dialbridge sockets, sampled) | RSS MB (per call kB) | machine busy % | load"
    );
    for n in levels {
        let rate = 100usize;
        let ramp_ms = (n * 1000 / rate) as u64;
        let hold_ms = ramp_ms + 8000;
        // Sample each call ~ when all calls are up and before the first ends.
        *probe_slot.lock().unwrap() = Duration::from_millis(ramp_ms.max(4000).min(hold_ms - 2000));
        let acc = Arc::new(Acc::default());
        *acc_slot.lock().unwrap() = acc.clone();
        let (cpu0, m0, t0, child0, drops0) = (
            cpu_s(),
            machine_busy(),
            Instant::now(),
            children_cpu_s(),
            udp_rcvbuf_errors(),
        );
        let peak_rss = Arc::new(AtomicU64::new(0));
        let sipp_mps: Vec<u16> = (0..k).map(|_| free_port()).collect();
        let sock_drops = Arc::new((AtomicU64::new(0), AtomicU64::new(0)));
        let sampler = {
            let (peak_rss, sock_drops, sipp_mps) =
                (peak_rss.clone(), sock_drops.clone(), sipp_mps.clone());
            tokio::spawn(async move {
                loop {
                    peak_rss.fetch_max(rss_kb(), Ordering::Relaxed);
                    let mut sipp_d = 0;
                    let mut ours_d = 0;
                    for (i, mp) in sipp_mps.iter().enumerate() {
                        let (a, b) = socket_drops(*mp, (14000, 17999));
                        sipp_d += a;
                        if i == 0 {
                            ours_d = b;
                        }
                    }
                    sock_drops.0.fetch_max(sipp_d, Ordering::Relaxed);
                    sock_drops.1.fetch_max(ours_d, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
            })
        };
        let mut runs = Vec::new();
        for (i, mp) in sipp_mps.iter().enumerate() {
            let m = n / k + usize::from(i < n % k);
            let screen = format!("screen{i}.log");
            let _ = std::fs::remove_file(dir.join(&screen));
            let mut cmd = tokio::process::Command::new("sipp");
            cmd.current_dir(&dir);
            if relay {
                std::fs::write(
                    dir.join("uac_stream.xml"),
                    stream_scenario(&dir.join("caller.ulaw"), hold_ms),
                )?;
                cmd.args(["-sf", "uac_stream.xml"]);
            } else {
                cmd.args(["-sn", "uac", "-rtp_echo"]);
            }
            let cmd = cmd
                .args([
                    &format!("127.0.0.1:{}", sip.udp_addr.port()),
                    "-i",
                    "127.0.0.1",
                    "-mi",
                    "127.0.0.1",
                ])
                .args(["-p", &free_port().to_string(), "-mp", &mp.to_string()])
                .args([
                    "-r",
                    &(rate / k).max(1).to_string(),
                    "-l",
                    &m.to_string(),
                    "-m",
                    &m.to_string(),
                    "-d",
                    &hold_ms.to_string(),
                ])
                .args([
                    "-nostdin",
                    "-trace_screen",
                    "-screen_file",
                    &screen,
                    "-timeout",
                    &format!("{}s", hold_ms / 1000 + ramp_ms / 1000 + 60),
                ])
                .output();
            runs.push(cmd);
        }
        let outs = futures_join(runs).await;
        sampler.abort();
        let elapsed = t0.elapsed().as_secs_f64();
        let cpu = (cpu_s() - cpu0) / elapsed * 100.0;
        let sipp_cpu = (children_cpu_s() - child0) / elapsed * 100.0;
        let drops = udp_rcvbuf_errors() - drops0;
        let m1 = machine_busy();
        let busy = (m1.0 - m0.0) as f64 / (m1.1 - m0.1).max(1) as f64 * 100.0;
        let screens: Vec<String> = (0..k)
            .map(|i| {
                std::fs::read_to_string(dir.join(format!("screen{i}.log"))).unwrap_or_default()
            })
            .collect();
        let cum = |label: &str| -> u64 {
            screens
                .iter()
                .filter_map(|s| {
                    s.lines()
                        .rev()
                        .find(|l| l.contains(label))
                        .and_then(|l| l.split('|').nth(2))
                        .and_then(|v| v.trim().parse::<u64>().ok())
                })
                .sum()
        };
        let rc: Vec<i32> = outs
            .iter()
            .map(|o| o.as_ref().ok().and_then(|o| o.status.code()).unwrap_or(-1))
            .collect();
        // Let the last hang-ups land.
        let deadline = Instant::now() + Duration::from_secs(10);
        while calls.live() > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let (sent, recv) = (
            acc.sent.load(Ordering::Relaxed),
            acc.received.load(Ordering::Relaxed),
        );
        let peak = acc.peak.load(Ordering::Relaxed);
        let rss = peak_rss.load(Ordering::Relaxed);
        println!(
            "{n} | {peak} (answered {}, probed {}) | {}/{} rc={:?} | {sent} / {recv} ({:.3}%) | {}/{}/{} | {cpu:.0} / {sipp_cpu:.0} | {drops} ({} / {}) | {:.1} ({:.0}) | {busy:.0} | {}",
            acc.answered.load(Ordering::Relaxed),
            acc.probed.load(Ordering::Relaxed),
            cum("Successful call"),
            cum("Failed call"),
            rc,
            if sent > 0 {
                (1.0 - recv as f64 / sent as f64) * 100.0
            } else {
                0.0
            },
            acc.rejected.load(Ordering::Relaxed),
            acc.late.load(Ordering::Relaxed),
            acc.lost.load(Ordering::Relaxed),
            sock_drops.0.load(Ordering::Relaxed),
            sock_drops.1.load(Ordering::Relaxed),
            rss as f64 / 1024.0,
            (rss.saturating_sub(base_rss)) as f64 / peak.max(1) as f64,
            loadavg(),
        );
        if acc.relay_dropped.load(Ordering::Relaxed) > 0 {
            println!(
                "  {} frames dropped between legs (relay queue full)",
                acc.relay_dropped.load(Ordering::Relaxed)
            );
        }
        if acc.inactive.load(Ordering::Relaxed) > 0 {
            println!(
                "  {} calls hung up for RTP inactivity",
                acc.inactive.load(Ordering::Relaxed)
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// Runs the sipp processes concurrently.
async fn futures_join<F: std::future::Future + Send + 'static>(fs: Vec<F>) -> Vec<F::Output>
where
    F::Output: Send + 'static,
{
    let handles: Vec<_> = fs.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.expect("sipp task"));
    }
    out
}

/// A sipp caller that streams `file` (headerless µ-law, looped) for `hold_ms`, then hangs up.
fn stream_scenario(file: &std::path::Path, hold_ms: u64) -> String {
    let head = "      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]\n      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]\n      To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]\n      Call-ID: [call_id]\n      Max-Forwards: 70\n";
    format!(
        r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="streaming caller">
  <send retrans="500"><![CDATA[
      INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
{head}      CSeq: 1 INVITE
      Contact: sip:sipp@[local_ip]:[local_port]
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=user1 1 1 IN IP4 [local_ip]
      s=-
      c=IN IP4 [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 0
      a=rtpmap:0 PCMU/8000

    ]]></send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="200"/>
  <send><![CDATA[
      ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
{head}      CSeq: 1 ACK
      Content-Length: 0

    ]]></send>
  <nop><action><exec rtp_stream="{},-1,0"/></action></nop>
  <pause milliseconds="{hold_ms}"/>
  <nop><action><exec rtp_stream="pause"/></action></nop>
  <send retrans="500"><![CDATA[
      BYE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
{head}      CSeq: 2 BYE
      Content-Length: 0

    ]]></send>
  <recv response="200" crlf="true"/>
</scenario>
"#,
        file.display()
    )
}
