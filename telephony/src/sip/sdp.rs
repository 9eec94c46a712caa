//! SDP (RFC 4566) parsing/building and the offer/answer rules we need (RFC 3264).
//!
//! Audio only: PCMU (0) and PCMA (8) at 8 kHz, ptime 20, and telephone-event (RFC 4733) at
//! whatever dynamic payload type the peer chose (96 and 101 are both common). Directions carry
//! hold: an offer of `sendonly` is answered `recvonly`, `inactive` with `inactive`; the old
//! `c=0.0.0.0` hold is treated as `sendonly`. Other media lines are refused with port 0.

use std::fmt::Write;
use std::net::{IpAddr, SocketAddr};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    SendRecv,
    SendOnly,
    RecvOnly,
    Inactive,
}

impl Direction {
    fn attr(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    /// The direction an answerer uses for an offer with this direction (RFC 3264 §6.1).
    pub fn answer(self) -> Direction {
        match self {
            Direction::SendRecv => Direction::SendRecv,
            Direction::SendOnly => Direction::RecvOnly,
            Direction::RecvOnly => Direction::SendOnly,
            Direction::Inactive => Direction::Inactive,
        }
    }

    /// Whether the side using this direction may send media.
    pub fn sends(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::SendOnly)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpMap {
    pub pt: u8,
    pub encoding: String,
    pub clock: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Media {
    pub kind: String,
    pub port: u16,
    pub proto: String,
    pub formats: Vec<String>,
    pub rtpmaps: Vec<RtpMap>,
    pub fmtps: Vec<(u8, String)>,
    pub connection: Option<String>,
    pub direction: Option<Direction>,
    pub ptime: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sdp {
    pub origin_user: String,
    pub session_id: u64,
    pub session_version: u64,
    pub origin_address: String,
    pub connection: Option<String>,
    pub direction: Option<Direction>,
    pub media: Vec<Media>,
}

fn dir_of(attr: &str) -> Option<Direction> {
    match attr {
        "sendrecv" => Some(Direction::SendRecv),
        "sendonly" => Some(Direction::SendOnly),
        "recvonly" => Some(Direction::RecvOnly),
        "inactive" => Some(Direction::Inactive),
        _ => None,
    }
}

/// `c=IN IP4 addr` → `addr`.
fn conn_addr(v: &str) -> Option<String> {
    let mut it = v.split_whitespace();
    let (_net, _ty, addr) = (it.next()?, it.next()?, it.next()?);
    Some(addr.split('/').next()?.to_string())
}

impl Sdp {
    pub fn parse(text: &str) -> Result<Sdp, String> {
        let mut sdp = Sdp {
            origin_user: "-".into(),
            session_id: 0,
            session_version: 0,
            origin_address: String::new(),
            connection: None,
            direction: None,
            media: Vec::new(),
        };
        let mut seen_v = false;
        for line in text.lines() {
            let line = line.trim_end();
            if line.is_empty() {
                continue;
            }
            let Some((k, v)) = line.split_once('=') else {
                return Err(format!("bad SDP line {line:.40}"));
            };
            match (k, sdp.media.last_mut()) {
                ("v", _) => seen_v = true,
                ("o", _) => {
                    let f: Vec<&str> = v.split_whitespace().collect();
                    if f.len() < 6 {
                        return Err("bad o= line".into());
                    }
                    sdp.origin_user = f[0].into();
                    sdp.session_id = f[1].parse().unwrap_or(0);
                    sdp.session_version = f[2].parse().unwrap_or(0);
                    sdp.origin_address = f[5].into();
                }
                ("c", None) => sdp.connection = conn_addr(v),
                ("c", Some(m)) => m.connection = conn_addr(v),
                ("m", _) => {
                    let f: Vec<&str> = v.split_whitespace().collect();
                    if f.len() < 3 {
                        return Err("bad m= line".into());
                    }
                    let port = f[1]
                        .split('/')
                        .next()
                        .unwrap_or("")
                        .parse()
                        .map_err(|_| "bad m= port")?;
                    sdp.media.push(Media {
                        kind: f[0].into(),
                        port,
                        proto: f[2].into(),
                        formats: f[3..].iter().map(|s| s.to_string()).collect(),
                        rtpmaps: Vec::new(),
                        fmtps: Vec::new(),
                        connection: None,
                        direction: None,
                        ptime: None,
                    });
                }
                ("a", m) => {
                    let (name, val) = v.split_once(':').unwrap_or((v, ""));
                    match (name, m) {
                        (d, None) if dir_of(d).is_some() => sdp.direction = dir_of(d),
                        (d, Some(m)) if dir_of(d).is_some() => m.direction = dir_of(d),
                        ("rtpmap", Some(m)) => {
                            let (pt, enc) = val.split_once(' ').ok_or("bad rtpmap")?;
                            let mut parts = enc.trim().split('/');
                            let encoding = parts.next().unwrap_or("").to_string();
                            let clock = parts.next().and_then(|c| c.parse().ok()).unwrap_or(8000);
                            if let Ok(pt) = pt.parse() {
                                m.rtpmaps.push(RtpMap {
                                    pt,
                                    encoding,
                                    clock,
                                });
                            }
                        }
                        ("fmtp", Some(m)) => {
                            if let Some((pt, p)) = val.split_once(' ')
                                && let Ok(pt) = pt.parse()
                            {
                                m.fmtps.push((pt, p.trim().to_string()));
                            }
                        }
                        ("ptime", Some(m)) => m.ptime = val.trim().parse().ok(),
                        _ => {}
                    }
                }
                _ => {}
            }
        }
        if !seen_v {
            return Err("no v= line".into());
        }
        Ok(sdp)
    }

    pub fn to_text(&self) -> String {
        let mut s = String::with_capacity(300);
        let ip = |a: &str| if a.contains(':') { "IP6" } else { "IP4" };
        let _ = write!(
            s,
            "v=0\r\no={} {} {} IN {} {}\r\ns=-\r\n",
            self.origin_user,
            self.session_id,
            self.session_version,
            ip(&self.origin_address),
            self.origin_address
        );
        if let Some(c) = &self.connection {
            let _ = write!(s, "c=IN {} {}\r\n", ip(c), c);
        }
        s.push_str("t=0 0\r\n");
        if let Some(d) = self.direction {
            let _ = write!(s, "a={}\r\n", d.attr());
        }
        for m in &self.media {
            let _ = write!(s, "m={} {} {}", m.kind, m.port, m.proto);
            for f in &m.formats {
                let _ = write!(s, " {f}");
            }
            s.push_str("\r\n");
            if let Some(c) = &m.connection {
                let _ = write!(s, "c=IN {} {}\r\n", ip(c), c);
            }
            for r in &m.rtpmaps {
                let _ = write!(s, "a=rtpmap:{} {}/{}\r\n", r.pt, r.encoding, r.clock);
            }
            for (pt, p) in &m.fmtps {
                let _ = write!(s, "a=fmtp:{pt} {p}\r\n");
            }
            if let Some(p) = m.ptime {
                let _ = write!(s, "a=ptime:{p}\r\n");
            }
            if let Some(d) = m.direction {
                let _ = write!(s, "a={}\r\n", d.attr());
            }
        }
        s
    }
}

/// What offer/answer settled for the audio stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Negotiated {
    /// 0 (PCMU) or 8 (PCMA).
    pub payload_type: u8,
    /// The peer's telephone-event payload type, if any.
    pub telephone_event: Option<u8>,
    /// Where to send RTP (None when the peer put the stream on hold with 0.0.0.0 or port 0).
    pub remote_rtp: Option<SocketAddr>,
    /// Our direction.
    pub direction: Direction,
}

fn static_or_mapped(m: &Media, fmt: &str) -> Option<(u8, String)> {
    let pt: u8 = fmt.parse().ok()?;
    let enc = m
        .rtpmaps
        .iter()
        .find(|r| r.pt == pt)
        .map(|r| r.encoding.to_ascii_uppercase())
        .or(match pt {
            0 => Some("PCMU".into()),
            8 => Some("PCMA".into()),
            _ => None,
        })?;
    Some((pt, enc))
}

fn te_pt(m: &Media) -> Option<u8> {
    m.rtpmaps
        .iter()
        .find(|r| r.encoding.eq_ignore_ascii_case("telephone-event") && r.clock == 8000)
        .map(|r| r.pt)
}

fn remote_of(sdp: &Sdp, m: &Media) -> Option<SocketAddr> {
    let addr = m.connection.as_ref().or(sdp.connection.as_ref())?;
    let ip: IpAddr = addr.parse().ok()?;
    (!ip.is_unspecified() && m.port != 0).then(|| SocketAddr::new(ip, m.port))
}

fn direction_of(sdp: &Sdp, m: &Media) -> Direction {
    let d = m.direction.or(sdp.direction).unwrap_or(Direction::SendRecv);
    let held = m
        .connection
        .as_ref()
        .or(sdp.connection.as_ref())
        .is_some_and(|c| c == "0.0.0.0");
    if held && d == Direction::SendRecv {
        Direction::SendOnly
    } else {
        d
    }
}

/// Our local description parameters.
#[derive(Debug, Clone)]
pub struct Local {
    pub address: String,
    pub rtp_port: u16,
    pub session_id: u64,
    pub session_version: u64,
}

fn base(local: &Local) -> Sdp {
    Sdp {
        origin_user: "dialbridge".into(),
        session_id: local.session_id,
        session_version: local.session_version,
        origin_address: local.address.clone(),
        connection: Some(local.address.clone()),
        direction: None,
        media: Vec::new(),
    }
}

/// Our offer: PCMU, PCMA, telephone-event/8000 at 101.
pub fn offer(local: &Local, direction: Direction) -> Sdp {
    let mut sdp = base(local);
    sdp.media.push(Media {
        kind: "audio".into(),
        port: local.rtp_port,
        proto: "RTP/AVP".into(),
        formats: vec!["0".into(), "8".into(), "101".into()],
        rtpmaps: vec![
            RtpMap {
                pt: 0,
                encoding: "PCMU".into(),
                clock: 8000,
            },
            RtpMap {
                pt: 8,
                encoding: "PCMA".into(),
                clock: 8000,
            },
            RtpMap {
                pt: 101,
                encoding: "telephone-event".into(),
                clock: 8000,
            },
        ],
        fmtps: vec![(101, "0-16".into())],
        connection: None,
        direction: Some(direction),
        ptime: Some(20),
    });
    sdp
}

/// Answers an offer (RFC 3264 §6): the first of PCMU/PCMA in the offerer's order, plus
/// telephone-event at the offerer's payload type; every other stream refused with port 0.
/// `Err` means no acceptable audio (answer 488).
pub fn answer(offer: &Sdp, local: &Local) -> Result<(Sdp, Negotiated), String> {
    let mut sdp = base(local);
    let mut chosen: Option<Negotiated> = None;
    for m in &offer.media {
        let codec = (m.kind == "audio" && m.proto.starts_with("RTP/AVP") && chosen.is_none())
            .then(|| {
                m.formats
                    .iter()
                    .filter_map(|f| static_or_mapped(m, f))
                    .find(|(_, enc)| enc == "PCMU" || enc == "PCMA")
            })
            .flatten();
        let Some((pt, enc)) = codec else {
            sdp.media.push(Media {
                port: 0,
                rtpmaps: vec![],
                fmtps: vec![],
                connection: None,
                direction: None,
                ptime: None,
                formats: m.formats.iter().take(1).cloned().collect(),
                ..m.clone()
            });
            continue;
        };
        let te = te_pt(m);
        let dir = direction_of(offer, m).answer();
        let mut formats = vec![pt.to_string()];
        let mut rtpmaps = vec![RtpMap {
            pt,
            encoding: enc,
            clock: 8000,
        }];
        let mut fmtps = vec![];
        if let Some(te) = te {
            formats.push(te.to_string());
            rtpmaps.push(RtpMap {
                pt: te,
                encoding: "telephone-event".into(),
                clock: 8000,
            });
            fmtps.push((te, "0-16".into()));
        }
        sdp.media.push(Media {
            kind: "audio".into(),
            port: local.rtp_port,
            proto: m.proto.clone(),
            formats,
            rtpmaps,
            fmtps,
            connection: None,
            direction: Some(dir),
            ptime: Some(20),
        });
        chosen = Some(Negotiated {
            payload_type: pt,
            telephone_event: te,
            remote_rtp: remote_of(offer, m),
            direction: dir,
        });
    }
    chosen
        .map(|n| (sdp, n))
        .ok_or_else(|| "no PCMU/PCMA audio stream in the offer".into())
}

/// Reads the answer to our offer.
pub fn accept_answer(answer: &Sdp) -> Result<Negotiated, String> {
    let m = answer
        .media
        .iter()
        .find(|m| m.kind == "audio" && m.port != 0)
        .ok_or("answer has no audio stream")?;
    let (pt, _) = m
        .formats
        .iter()
        .filter_map(|f| static_or_mapped(m, f))
        .find(|(_, enc)| enc == "PCMU" || enc == "PCMA")
        .ok_or("answer has neither PCMU nor PCMA")?;
    // Our direction is the answer's direction seen from our side.
    let dir = direction_of(answer, m).answer();
    Ok(Negotiated {
        payload_type: pt,
        telephone_event: te_pt(m),
        remote_rtp: remote_of(answer, m),
        direction: dir,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIPP_OFFER: &str = "v=0\r\no=user1 53655765 2353687637 IN IP4 127.0.0.1\r\ns=-\r\n\
c=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 8 96\r\na=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:96 telephone-event/8000\r\na=fmtp:96 0-15\r\nm=video 6002 RTP/AVP 31\r\n";

    fn local() -> Local {
        Local {
            address: "127.0.0.1".into(),
            rtp_port: 20000,
            session_id: 7,
            session_version: 1,
        }
    }

    #[test]
    fn answers_pcma_with_peer_telephone_event_pt_and_refuses_video() {
        let offer = Sdp::parse(SIPP_OFFER).unwrap();
        let (ans, neg) = answer(&offer, &local()).unwrap();
        assert_eq!(neg.payload_type, 8);
        assert_eq!(neg.telephone_event, Some(96));
        assert_eq!(neg.remote_rtp, Some("127.0.0.1:6000".parse().unwrap()));
        let text = ans.to_text();
        assert!(text.contains("m=audio 20000 RTP/AVP 8 96\r\n"), "{text}");
        assert!(text.contains("a=rtpmap:96 telephone-event/8000"));
        assert!(text.contains("m=video 0 RTP/AVP 31"));
        assert!(text.contains("a=sendrecv"));
        // Round trip.
        assert_eq!(Sdp::parse(&text).unwrap(), ans);
    }

    #[test]
    fn telephone_event_at_101_and_pcmu_preferred_in_offer_order() {
        let offer = Sdp::parse(
            &SIPP_OFFER
                .replace("RTP/AVP 8 96", "RTP/AVP 0 8 101")
                .replace(":96", ":101"),
        )
        .unwrap();
        let (_, neg) = answer(&offer, &local()).unwrap();
        assert_eq!((neg.payload_type, neg.telephone_event), (0, Some(101)));
    }

    #[test]
    fn hold_directions() {
        let o = Sdp::parse(
            &format!("{SIPP_OFFER}a=sendonly\r\n").replace("m=video 6002 RTP/AVP 31\r\n", ""),
        )
        .unwrap();
        let (ans, neg) = answer(&o, &local()).unwrap();
        assert_eq!(neg.direction, Direction::RecvOnly);
        assert!(ans.to_text().contains("a=recvonly"));
        let o = Sdp::parse(&SIPP_OFFER.replace("m=video 6002 RTP/AVP 31\r\n", "a=inactive\r\n"))
            .unwrap();
        assert_eq!(
            answer(&o, &local()).unwrap().1.direction,
            Direction::Inactive
        );
        let o = Sdp::parse(&SIPP_OFFER.replace("c=IN IP4 127.0.0.1", "c=IN IP4 0.0.0.0")).unwrap();
        let (_, neg) = answer(&o, &local()).unwrap();
        assert_eq!((neg.direction, neg.remote_rtp), (Direction::RecvOnly, None));
    }

    #[test]
    fn no_g711_is_refused() {
        let o = Sdp::parse(
            &SIPP_OFFER
                .replace("RTP/AVP 8 96", "RTP/AVP 18")
                .replace("a=rtpmap:8 PCMA/8000\r\n", ""),
        )
        .unwrap();
        assert!(answer(&o, &local()).is_err());
    }

    #[test]
    fn offer_and_accept_answer() {
        let off = offer(&local(), Direction::SendRecv);
        let text = off.to_text();
        assert!(text.contains("m=audio 20000 RTP/AVP 0 8 101"));
        let (ans, _) = answer(
            &Sdp::parse(&text).unwrap(),
            &Local {
                rtp_port: 30000,
                ..local()
            },
        )
        .unwrap();
        let neg = accept_answer(&ans).unwrap();
        assert_eq!(neg.payload_type, 0);
        assert_eq!(neg.telephone_event, Some(101));
        assert_eq!(neg.remote_rtp, Some("127.0.0.1:30000".parse().unwrap()));
        assert!(Sdp::parse("garbage").is_err());
    }
}
