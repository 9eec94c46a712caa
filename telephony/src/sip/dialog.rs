//! Dialog state (RFC 3261 §12): Call-ID and tags, CSeq counters, remote target, route set, and
//! building requests inside the dialog (BYE, re-INVITE, ACK for a 2xx, INFO, …).

use std::net::{IpAddr, SocketAddr};

use rsip::{Method, Request};

use super::call::Transport;
use super::message;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dialog {
    pub call_id: String,
    pub local_tag: String,
    pub remote_tag: String,
    /// Our name-addr without tag (From in our requests).
    pub local_uri: String,
    /// The peer's name-addr without tag (To in our requests).
    pub remote_uri: String,
    pub local_seq: u32,
    pub remote_seq: Option<u32>,
    /// The peer's Contact URI.
    pub remote_target: String,
    /// Route header values for our requests, in order.
    pub route_set: Vec<String>,
}

/// A name-addr with any `;tag=` parameter removed.
pub fn strip_tag(v: &str) -> String {
    let (head, tail) = match v.rfind('>') {
        Some(i) => v.split_at(i + 1),
        None => (v, ""),
    };
    if tail.is_empty() && !v.contains('>') {
        // addr-spec form: parameters after the URI belong to the header.
        return v.split(";tag=").next().unwrap_or(v).to_string();
    }
    let params: Vec<&str> = tail
        .split(';')
        .filter(|p| !p.trim().is_empty() && !p.trim().to_ascii_lowercase().starts_with("tag="))
        .collect();
    let mut out = head.to_string();
    for p in params {
        out.push(';');
        out.push_str(p.trim());
    }
    out
}

fn contact_uri(h: &rsip::Headers) -> Option<String> {
    message::values(h, "Contact")
        .first()
        .map(|c| message::addr_uri(c))
}

impl Dialog {
    /// The UAS side of a dialog created by `invite` (route set = Record-Route as received).
    pub fn uas(invite: &Request, local_tag: &str) -> Option<Dialog> {
        let h = &invite.headers;
        Some(Dialog {
            call_id: message::call_id(h)?,
            local_tag: local_tag.to_string(),
            remote_tag: message::from_tag(h).unwrap_or_default(),
            local_uri: strip_tag(&message::value(h, "To")?),
            remote_uri: strip_tag(&message::value(h, "From")?),
            local_seq: 0,
            remote_seq: message::cseq(h).map(|c| c.0),
            remote_target: contact_uri(h).unwrap_or_else(|| invite.uri.to_string()),
            route_set: message::values(h, "Record-Route"),
        })
    }

    /// The UAC side, from our INVITE and the response that established the dialog
    /// (route set = Record-Route reversed).
    pub fn uac(invite: &Request, resp: &rsip::Response) -> Option<Dialog> {
        let mut route_set = message::values(&resp.headers, "Record-Route");
        route_set.reverse();
        Some(Dialog {
            call_id: message::call_id(&invite.headers)?,
            local_tag: message::from_tag(&invite.headers)?,
            remote_tag: message::to_tag(&resp.headers)?,
            local_uri: strip_tag(&message::value(&invite.headers, "From")?),
            remote_uri: strip_tag(&message::value(&resp.headers, "To")?),
            local_seq: message::cseq(&invite.headers)?.0,
            remote_seq: None,
            remote_target: contact_uri(&resp.headers).unwrap_or_else(|| invite.uri.to_string()),
            route_set,
        })
    }

    /// Checks an in-dialog request's CSeq (RFC 3261 §12.2.2): false means out of order (500).
    pub fn accept_remote_seq(&mut self, seq: u32, method: &Method) -> bool {
        if *method == Method::Ack || *method == Method::Cancel {
            return true;
        }
        match self.remote_seq {
            Some(r) if seq <= r => false,
            _ => {
                self.remote_seq = Some(seq);
                true
            }
        }
    }

    /// The URI of the next hop: the first route when there is one (loose routing), else the
    /// remote target.
    pub fn next_hop(&self) -> String {
        self.route_set
            .first()
            .map(|r| message::addr_uri(r))
            .unwrap_or_else(|| self.remote_target.clone())
    }

    /// A new in-dialog request (not ACK/CANCEL): CSeq incremented.
    pub fn request(&mut self, method: Method, via: &str, contact: &str) -> Request {
        self.local_seq += 1;
        let seq = self.local_seq;
        self.build(method, seq, via, contact)
    }

    /// The ACK for a 2xx to the INVITE with CSeq `invite_seq`.
    pub fn ack(&self, invite_seq: u32, via: &str, contact: &str) -> Request {
        self.build(Method::Ack, invite_seq, via, contact)
    }

    fn build(&self, method: Method, seq: u32, via: &str, contact: &str) -> Request {
        let mut h = rsip::Headers::default();
        h.push(message::header("Via", via));
        h.push(message::header("Max-Forwards", "70"));
        for r in &self.route_set {
            h.push(message::header("Route", r));
        }
        h.push(message::header(
            "From",
            format!("{};tag={}", self.local_uri, self.local_tag),
        ));
        let to = if self.remote_tag.is_empty() {
            self.remote_uri.clone()
        } else {
            format!("{};tag={}", self.remote_uri, self.remote_tag)
        };
        h.push(message::header("To", to));
        h.push(message::header("Call-ID", &self.call_id));
        h.push(message::header("CSeq", format!("{seq} {method}")));
        if method != Method::Bye {
            h.push(message::header("Contact", contact));
        }
        h.push(rsip::Header::ContentLength(0.into()));
        let uri = rsip::Uri::try_from(self.remote_target.as_str())
            .unwrap_or_else(|_| rsip::Uri::try_from("sip:invalid").expect("static URI"));
        Request {
            method,
            uri,
            version: rsip::Version::V2,
            headers: h,
            body: vec![],
        }
    }
}

/// The socket address of a SIP URI whose host is an IP literal (`sip:u@127.0.0.1:5080;lr`).
pub fn uri_addr(uri: &str) -> Option<SocketAddr> {
    let rest = uri.split_once(':')?.1;
    let hostport = rest.rsplit_once('@').map(|(_, h)| h).unwrap_or(rest);
    let hostport = hostport.split([';', '?', '>']).next()?;
    let default_port = uri_transport(uri).unwrap_or(Transport::Udp).default_port();
    if let Some(v6) = hostport.strip_prefix('[') {
        let (host, port) = v6.split_once(']')?;
        let ip: IpAddr = host.parse().ok()?;
        let port = port
            .strip_prefix(':')
            .map(|p| p.parse().ok())
            .unwrap_or(Some(default_port))?;
        return Some(SocketAddr::new(ip, port));
    }
    let (host, port) = match hostport.split_once(':') {
        Some((h, p)) => (h, p.parse().ok()?),
        None => (hostport, default_port),
    };
    Some(SocketAddr::new(host.parse().ok()?, port))
}

/// Whether a URI asks for TCP (`;transport=tcp`).
pub fn uri_wants_tcp(uri: &str) -> bool {
    uri.to_ascii_lowercase().contains("transport=tcp")
}

/// The transport a URI asks for: `sips:` or `;transport=tls` → TLS, `;transport=tcp` → TCP,
/// `;transport=udp` → UDP; `None` when it says nothing.
pub fn uri_transport(uri: &str) -> Option<Transport> {
    let lower = uri.trim_start_matches('<').to_ascii_lowercase();
    if lower.starts_with("sips:") {
        return Some(Transport::Tls);
    }
    let params = lower.split('>').next().unwrap_or(&lower);
    params
        .split(';')
        .skip(1)
        .find_map(|p| p.trim().strip_prefix("transport="))
        .and_then(|t| Transport::parse(t.split(['?', ' ']).next().unwrap_or(t)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_transports_and_tls_default_port() {
        assert_eq!(uri_transport("sip:a@1.2.3.4"), None);
        assert_eq!(
            uri_transport("sip:a@1.2.3.4;transport=TCP"),
            Some(Transport::Tcp)
        );
        assert_eq!(
            uri_transport("<sip:a@1.2.3.4;transport=tls>"),
            Some(Transport::Tls)
        );
        assert_eq!(uri_transport("sips:a@1.2.3.4"), Some(Transport::Tls));
        assert_eq!(
            uri_addr("sip:a@1.2.3.4;transport=tls").unwrap().to_string(),
            "1.2.3.4:5061"
        );
        assert_eq!(uri_addr("sips:a@1.2.3.4").unwrap().port(), 5061);
        assert_eq!(uri_addr("sip:a@1.2.3.4;lr").unwrap().port(), 5060);
    }

    fn invite() -> Request {
        let raw = "INVITE sip:bob@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1\r\n\
Record-Route: <sip:127.0.0.1:5065;lr>\r\nRecord-Route: <sip:127.0.0.2:5065;lr>\r\n\
From: \"A\" <sip:alice@127.0.0.1>;tag=a1\r\nTo: <sip:bob@127.0.0.1>\r\nCall-ID: c1\r\nCSeq: 7 INVITE\r\n\
Contact: <sip:alice@127.0.0.1:5070>\r\nContent-Length: 0\r\n\r\n";
        match message::parse(raw.as_bytes(), 65535).unwrap() {
            rsip::SipMessage::Request(r) => r,
            _ => unreachable!(),
        }
    }

    #[test]
    fn uas_dialog_and_bye() {
        let mut d = Dialog::uas(&invite(), "b9").unwrap();
        assert_eq!(d.remote_tag, "a1");
        assert_eq!(d.remote_uri, "\"A\" <sip:alice@127.0.0.1>");
        assert_eq!(d.route_set.len(), 2);
        assert_eq!(d.next_hop(), "sip:127.0.0.1:5065;lr");
        let bye = d.request(
            Method::Bye,
            "SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKx",
            "<sip:b@127.0.0.1>",
        );
        let text = bye.to_string();
        assert!(
            text.starts_with("BYE sip:alice@127.0.0.1:5070 SIP/2.0\r\n"),
            "{text}"
        );
        assert!(text.contains("From: <sip:bob@127.0.0.1>;tag=b9"));
        assert!(text.contains("To: \"A\" <sip:alice@127.0.0.1>;tag=a1"));
        assert!(text.contains("CSeq: 1 BYE"));
        let routes: Vec<_> = text.lines().filter(|l| l.starts_with("Route:")).collect();
        assert_eq!(
            routes,
            [
                "Route: <sip:127.0.0.1:5065;lr>",
                "Route: <sip:127.0.0.2:5065;lr>"
            ]
        );
    }

    #[test]
    fn remote_cseq_must_increase() {
        let mut d = Dialog::uas(&invite(), "b9").unwrap();
        assert!(!d.accept_remote_seq(7, &Method::Bye));
        assert!(d.accept_remote_seq(8, &Method::Bye));
        assert!(d.accept_remote_seq(8, &Method::Ack));
    }

    #[test]
    fn uac_route_set_is_reversed() {
        let inv = invite();
        let mut resp = message::response_to(&inv, 200, Some("t2"));
        // response_to copied the INVITE's two Record-Route headers.
        resp.headers
            .push(message::header("Contact", "<sip:bob@127.0.0.1:5090>"));
        let d = Dialog::uac(&inv, &resp).unwrap();
        assert_eq!(
            d.route_set,
            ["<sip:127.0.0.2:5065;lr>", "<sip:127.0.0.1:5065;lr>"]
        );
        assert_eq!(d.remote_target, "sip:bob@127.0.0.1:5090");
        assert_eq!(d.local_seq, 7);
        let ack = d.ack(7, "SIP/2.0/UDP h;branch=z9hG4bKa", "<sip:x@h>");
        assert!(ack.to_string().contains("CSeq: 7 ACK"));
    }

    #[test]
    fn uri_addresses() {
        assert_eq!(
            uri_addr("sip:u@127.0.0.1:5080;lr"),
            Some("127.0.0.1:5080".parse().unwrap())
        );
        assert_eq!(
            uri_addr("sip:127.0.0.1;lr"),
            Some("127.0.0.1:5060".parse().unwrap())
        );
        assert_eq!(
            uri_addr("sip:u@[::1]:5070"),
            Some("[::1]:5070".parse().unwrap())
        );
        assert_eq!(uri_addr("sip:u@example.com"), None);
        assert_eq!(strip_tag("<sip:a@h>;tag=1;x=y"), "<sip:a@h>;x=y");
        assert_eq!(strip_tag("sip:a@h;tag=1"), "sip:a@h");
    }
}
