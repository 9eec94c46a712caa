//! The message layer over rsip 0.4: everything rsip does not do for us.
//!
//! rsip parses start lines, URIs and headers, and prints messages back. Before anything reaches it
//! we normalise the header block ourselves, because rsip 0.4 has gaps (measured, see
//! `shared/reference/rust-crates.md`):
//! - compact header names (`i:` `v:` `f:` `t:` `l:` `m:` `c:` `k:` `s:` `e:` …) would parse as
//!   unknown headers, so typed access reports them "missing": we expand them first;
//! - folded header lines, bare-LF line ends and `Name : value` spacing are made canonical;
//! - `Content-Length` is ignored by rsip: we check it and cut the body to it (a datagram with a
//!   shorter body than announced is malformed);
//! - rsip accepts messages without the headers every SIP message needs: we check those.
//!
//! When a message is refused, [`Rejected::response`] holds a ready 400/513 built from the raw
//! text when one is possible (a request that is not an ACK with enough headers to address a
//! response); otherwise the message is dropped. Nothing here panics on any input.

use rsip::message::HasHeaders;
use rsip::{Header, Headers, Method, SipMessage};

/// Compact (RFC 3261 §7.3.3 and extensions) header names and their long forms.
const COMPACT: &[(char, &str)] = &[
    ('a', "Accept-Contact"),
    ('b', "Referred-By"),
    ('c', "Content-Type"),
    ('d', "Request-Disposition"),
    ('e', "Content-Encoding"),
    ('f', "From"),
    ('i', "Call-ID"),
    ('j', "Reject-Contact"),
    ('k', "Supported"),
    ('l', "Content-Length"),
    ('m', "Contact"),
    ('n', "Identity-Info"),
    ('o', "Event"),
    ('r', "Refer-To"),
    ('s', "Subject"),
    ('t', "To"),
    ('u', "Allow-Events"),
    ('v', "Via"),
    ('x', "Session-Expires"),
    ('y', "Identity"),
];

/// The long form of a header name (compact forms expanded, case kept otherwise).
pub fn expand_name(name: &str) -> &str {
    let mut chars = name.chars();
    if let (Some(c), None) = (chars.next(), chars.next()) {
        let c = c.to_ascii_lowercase();
        if let Some((_, long)) = COMPACT.iter().find(|(k, _)| *k == c) {
            return long;
        }
    }
    name
}

/// Why a message was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    pub reason: String,
    /// A 400 or 513 to send back, when the input allows one.
    pub response: Option<Vec<u8>>,
}

/// A normalised head (start line + canonical header lines) and the body that follows it.
#[derive(Debug, Clone)]
pub struct Normalized {
    pub start_line: String,
    /// `(name, value)` with compact names expanded, folded lines joined, values trimmed.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Normalized {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn to_bytes(&self) -> Vec<u8> {
        let mut out = String::with_capacity(512);
        out.push_str(&self.start_line);
        out.push_str("\r\n");
        for (n, v) in &self.headers {
            out.push_str(n);
            out.push_str(": ");
            out.push_str(v);
            out.push_str("\r\n");
        }
        out.push_str("\r\n");
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(&self.body);
        bytes
    }
}

/// Where the header block ends: the index just past the blank line, accepting CRLF or bare LF.
pub fn head_end(buf: &[u8]) -> Option<usize> {
    let mut i = 0;
    while i < buf.len() {
        if buf[i] == b'\n' {
            if buf.get(i + 1) == Some(&b'\n') {
                return Some(i + 2);
            }
            if buf.get(i + 1) == Some(&b'\r') && buf.get(i + 2) == Some(&b'\n') {
                return Some(i + 3);
            }
        }
        i += 1;
    }
    None
}

fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-.!%*_+`'~".contains(c)
}

/// Splits and canonicalises the head; the body is everything after the blank line (not yet cut
/// to Content-Length).
pub fn normalize(raw: &[u8]) -> Result<Normalized, String> {
    // Leading CRLFs are keep-alives (RFC 5626) or stream noise: skip them.
    let start = raw
        .iter()
        .position(|b| *b != b'\r' && *b != b'\n')
        .unwrap_or(raw.len());
    let raw = &raw[start..];
    let (head, body) = match head_end(raw) {
        Some(end) => (&raw[..end], &raw[end..]),
        None => (raw, &raw[raw.len()..]),
    };
    let head = std::str::from_utf8(head).map_err(|_| "header block is not UTF-8".to_string())?;
    let mut lines = head.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let start_line = lines.next().unwrap_or("").trim().to_string();
    if start_line.is_empty() {
        return Err("empty start line".into());
    }
    let mut headers: Vec<(String, String)> = Vec::with_capacity(16);
    for line in lines {
        if line.is_empty() {
            continue;
        }
        if line.starts_with(' ') || line.starts_with('\t') {
            match headers.last_mut() {
                Some((_, v)) => {
                    v.push(' ');
                    v.push_str(line.trim());
                    continue;
                }
                None => return Err("continuation line before any header".into()),
            }
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(format!("header line without a colon: {line:.40}"));
        };
        let name = name.trim();
        if name.is_empty() || !name.chars().all(is_token_char) {
            return Err(format!("bad header name: {name:.40}"));
        }
        if value.chars().any(|c| c.is_control() && c != '\t') {
            return Err(format!("control character in header {name}"));
        }
        headers.push((expand_name(name).to_string(), value.trim().to_string()));
    }
    // rsip cannot represent an empty header value; an empty value carries no information.
    headers.retain(|(_, v)| !v.is_empty());
    Ok(Normalized {
        start_line,
        headers,
        body: body.to_vec(),
    })
}

/// Parses one complete message (a datagram, or one frame cut from a stream).
pub fn parse(raw: &[u8], max_bytes: usize) -> Result<SipMessage, Rejected> {
    if raw.len() > max_bytes {
        return Err(reject(
            raw,
            513,
            "Message Too Large",
            "message over the size limit".into(),
        ));
    }
    let mut norm = normalize(raw).map_err(|e| reject(raw, 400, "Bad Request", e))?;
    // rsip 0.4 knows only the methods it lists: an extension method gets 501, not 400.
    if let Some(method) = norm
        .start_line
        .strip_suffix("SIP/2.0")
        .and_then(|l| l.split(' ').next())
        && !method.is_empty()
        && method.chars().all(|c| c.is_ascii_uppercase())
        && method.parse::<Method>().is_err()
    {
        return Err(reject(
            raw,
            501,
            "Not Implemented",
            format!("unknown method {method:.20}"),
        ));
    }
    if let Some(cl) = norm.get("Content-Length") {
        let cl: usize = cl.parse().map_err(|_| {
            reject(
                raw,
                400,
                "Bad Content-Length",
                format!("bad Content-Length {cl:.20}"),
            )
        })?;
        if cl > norm.body.len() {
            return Err(reject(
                raw,
                400,
                "Bad Content-Length",
                "body shorter than Content-Length".into(),
            ));
        }
        norm.body.truncate(cl);
    }
    let msg = SipMessage::try_from(norm.to_bytes())
        .map_err(|e| reject(raw, 400, "Bad Request", format!("rsip: {e}")))?;
    check_mandatory(&msg).map_err(|e| reject(raw, 400, "Bad Request", e))?;
    Ok(msg)
}

fn check_mandatory(msg: &SipMessage) -> Result<(), String> {
    let h = msg.headers();
    for name in ["Via", "From", "To", "Call-ID", "CSeq"] {
        if value(h, name).is_none() {
            return Err(format!("missing {name}"));
        }
    }
    let (_, cseq_method) = cseq(h).ok_or("bad CSeq")?;
    if let SipMessage::Request(req) = msg {
        if cseq_method != req.method {
            return Err("CSeq method does not match the request method".into());
        }
        if branch(h).is_none() {
            return Err("top Via has no branch".into());
        }
    }
    Ok(())
}

/// Builds a 400/513 response from raw text when the input is a request we can answer.
fn reject(raw: &[u8], code: u16, reason: &str, why: String) -> Rejected {
    Rejected {
        response: raw_response(raw, code, reason),
        reason: why,
    }
}

/// A response built from raw request text (only Via/From/To/Call-ID/CSeq are needed), or `None`
/// for responses, ACKs and text that is not a request.
pub fn raw_response(raw: &[u8], code: u16, reason: &str) -> Option<Vec<u8>> {
    let end = head_end(raw).unwrap_or(raw.len());
    let head = String::from_utf8_lossy(&raw[..end]);
    let mut lines = head.split('\n').map(|l| l.trim_end_matches('\r'));
    let first = lines.next()?.trim();
    let mut parts = first.split(' ');
    let method = parts.next()?;
    let _uri = parts.next()?;
    if parts.next()? != "SIP/2.0"
        || method.is_empty()
        || !method.chars().all(|c| c.is_ascii_uppercase())
    {
        return None;
    }
    if method == "ACK" {
        return None;
    }
    let mut out = format!("SIP/2.0 {code} {reason}\r\n");
    let mut seen = [false; 5];
    let wanted = ["Via", "From", "To", "Call-ID", "CSeq"];
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let name = expand_name(name.trim());
        let value = value.trim();
        if value.is_empty() || value.chars().any(|c| c.is_control()) {
            continue;
        }
        if let Some(i) = wanted.iter().position(|w| w.eq_ignore_ascii_case(name)) {
            seen[i] = true;
            out.push_str(&format!("{}: {}\r\n", wanted[i], value));
        }
    }
    if !seen.iter().all(|s| *s) {
        return None;
    }
    out.push_str("Content-Length: 0\r\n\r\n");
    Some(out.into_bytes())
}

// ---------------------------------------------------------------------------------------------
// Header access by name (works for typed and `Other` headers alike).

/// `(name, value)` of an rsip header.
pub fn name_value(h: &Header) -> (String, String) {
    let s = h.to_string();
    match s.split_once(':') {
        Some((n, v)) => (n.trim().to_string(), v.trim().to_string()),
        None => (s, String::new()),
    }
}

/// The first value of the named header.
pub fn value(h: &Headers, name: &str) -> Option<String> {
    h.iter()
        .map(name_value)
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

/// Every header line with this name, unsplit (for values such as digest challenges, which contain
/// commas).
pub fn raw_values(h: &Headers, name: &str) -> Vec<String> {
    h.iter()
        .map(name_value)
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
        .collect()
}

/// Every value of the named header, comma-separated lists split (outside quotes and <>).
pub fn values(h: &Headers, name: &str) -> Vec<String> {
    h.iter()
        .map(name_value)
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .flat_map(|(_, v)| split_list(&v))
        .collect()
}

/// Splits a header list on commas that are not inside quotes or angle brackets.
pub fn split_list(v: &str) -> Vec<String> {
    let mut out = Vec::new();
    let (mut quoted, mut angle) = (false, false);
    let mut cur = String::new();
    for c in v.chars() {
        match c {
            '"' => quoted = !quoted,
            '<' if !quoted => angle = true,
            '>' if !quoted => angle = false,
            ',' if !quoted && !angle => {
                if !cur.trim().is_empty() {
                    out.push(cur.trim().to_string());
                }
                cur.clear();
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    if !cur.trim().is_empty() {
        out.push(cur.trim().to_string());
    }
    out
}

/// A header built from name and value through rsip's own header tokenizer, so well-known names
/// become their typed variants.
pub fn header(name: &str, value: impl AsRef<str>) -> Header {
    let line = format!("{name}: {}\r\n", value.as_ref());
    rsip::headers::header::Tokenizer::tokenize(line.as_bytes())
        .ok()
        .and_then(|(_, t)| t.try_into().ok())
        .unwrap_or_else(|| Header::Other(name.to_string(), value.as_ref().to_string()))
}

/// A `;name=value` parameter of a header value (outside `<…>`), case-insensitive name.
pub fn param(v: &str, name: &str) -> Option<String> {
    let tail = match v.rfind('>') {
        Some(i) => &v[i + 1..],
        None => v,
    };
    tail.split(';').skip(1).find_map(|p| {
        let (k, val) = p.split_once('=').unwrap_or((p, ""));
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| val.trim().trim_matches('"').to_string())
    })
}

/// The URI inside a name-addr (`"Bob" <sip:bob@x>;tag=1` → `sip:bob@x`) or addr-spec.
pub fn addr_uri(v: &str) -> String {
    match (v.find('<'), v.find('>')) {
        (Some(a), Some(b)) if a < b => v[a + 1..b].trim().to_string(),
        _ => v.split(';').next().unwrap_or("").trim().to_string(),
    }
}

/// The branch of the top Via.
pub fn branch(h: &Headers) -> Option<String> {
    let via = values(h, "Via").into_iter().next()?;
    param(&via, "branch").filter(|b| !b.is_empty())
}

/// The sent-by (host:port) of the top Via.
pub fn via_sent_by(h: &Headers) -> Option<String> {
    let via = values(h, "Via").into_iter().next()?;
    let rest = via.split_whitespace().nth(1)?;
    Some(rest.split(';').next()?.trim().to_string())
}

pub fn call_id(h: &Headers) -> Option<String> {
    value(h, "Call-ID")
}

pub fn from_tag(h: &Headers) -> Option<String> {
    value(h, "From").and_then(|v| param(&v, "tag"))
}

pub fn to_tag(h: &Headers) -> Option<String> {
    value(h, "To").and_then(|v| param(&v, "tag"))
}

/// CSeq number and method.
pub fn cseq(h: &Headers) -> Option<(u32, Method)> {
    let v = value(h, "CSeq")?;
    let mut it = v.split_whitespace();
    let n: u32 = it.next()?.parse().ok()?;
    let m: Method = it.next()?.parse().ok()?;
    Some((n, m))
}

/// Replaces (or adds) a header by name.
pub fn set_header(h: &mut Headers, name: &str, v: impl AsRef<str>) {
    h.retain(|x| !name_value(x).0.eq_ignore_ascii_case(name));
    h.push(header(name, v));
}

/// Removes every header with this name.
pub fn remove_header(h: &mut Headers, name: &str) {
    h.retain(|x| !name_value(x).0.eq_ignore_ascii_case(name));
}

/// A response to `req` (RFC 3261 §8.2.6): Via, From, To, Call-ID, CSeq copied; `to_tag` added
/// to To when the request had none; Content-Length set.
pub fn response_to(req: &rsip::Request, code: u16, to_tag: Option<&str>) -> rsip::Response {
    let mut headers = Headers::default();
    for h in req.headers.iter() {
        let (n, v) = name_value(h);
        if ["Via", "From", "Call-ID", "CSeq"]
            .iter()
            .any(|w| w.eq_ignore_ascii_case(&n))
        {
            headers.push(h.clone());
        } else if n.eq_ignore_ascii_case("To") {
            match (to_tag, param(&v, "tag")) {
                (Some(tag), None) if code != 100 => {
                    headers.push(header("To", format!("{v};tag={tag}")))
                }
                _ => headers.push(h.clone()),
            }
        } else if n.eq_ignore_ascii_case("Record-Route") && (101..300).contains(&code) {
            headers.push(h.clone());
        }
    }
    headers.push(Header::ContentLength(0.into()));
    rsip::Response {
        status_code: code.into(),
        version: rsip::Version::V2,
        headers,
        body: vec![],
    }
}

/// Sets body and Content-Type/Content-Length.
pub fn set_body(
    h: &mut Headers,
    body: &mut Vec<u8>,
    content_type: Option<&str>,
    new_body: Vec<u8>,
) {
    remove_header(h, "Content-Type");
    remove_header(h, "Content-Length");
    if let Some(ct) = content_type {
        h.push(header("Content-Type", ct));
    }
    h.push(Header::ContentLength((new_body.len() as u32).into()));
    *body = new_body;
}

/// Serialises a message to wire bytes.
pub fn to_bytes(msg: &SipMessage) -> Vec<u8> {
    msg.to_string().into_bytes()
}

pub fn status(resp: &rsip::Response) -> u16 {
    resp.status_code.code()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsip::prelude::*;

    const COMPACT_INVITE: &str = "INVITE sip:bob@127.0.0.1 SIP/2.0\r\n\
v: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK776asdhds\r\n\
f: Alice <sip:alice@127.0.0.1>;tag=1928301774\r\n\
t: <sip:bob@127.0.0.1>\r\n\
i: a84b4c76e66710@127.0.0.1\r\n\
CSeq: 314159 INVITE\r\n\
m: <sip:alice@127.0.0.1:5060>\r\n\
c: application/sdp\r\n\
k: timer\r\n\
s: hello\r\n\
l: 4\r\n\r\nv=0\r\n";

    #[test]
    fn rsip_alone_misses_compact_headers() {
        // The gap itself: rsip 0.4 stores `i:` as Other and reports Call-ID missing.
        let raw = SipMessage::try_from(COMPACT_INVITE).unwrap();
        assert!(raw.call_id_header().is_err());
        assert!(raw.via_header().is_err());
    }

    #[test]
    fn compact_headers_are_expanded_before_typed_access() {
        let msg = parse(COMPACT_INVITE.as_bytes(), 65535).unwrap();
        assert_eq!(
            msg.call_id_header().unwrap().value(),
            "a84b4c76e66710@127.0.0.1"
        );
        assert!(msg.via_header().is_ok());
        assert!(msg.from_header().is_ok());
        assert!(msg.to_header().is_ok());
        assert!(msg.contact_header().is_ok());
        assert_eq!(branch(msg.headers()).as_deref(), Some("z9hG4bK776asdhds"));
        assert_eq!(from_tag(msg.headers()).as_deref(), Some("1928301774"));
        assert_eq!(value(msg.headers(), "Supported").as_deref(), Some("timer"));
        assert_eq!(value(msg.headers(), "Subject").as_deref(), Some("hello"));
        assert_eq!(
            value(msg.headers(), "Content-Type").as_deref(),
            Some("application/sdp")
        );
        // Content-Length 4 cuts "v=0\r\n" to "v=0\r".
        assert_eq!(msg.body(), b"v=0\r");
    }

    #[test]
    fn folded_lines_bare_lf_and_odd_spacing_are_canonicalised() {
        let raw = "OPTIONS sip:x@127.0.0.1 SIP/2.0\n\
Via : SIP/2.0/UDP 127.0.0.1:5070\n ;branch=z9hG4bKabc\n\
From: <sip:a@127.0.0.1>;tag=9\nTo: <sip:x@127.0.0.1>\nCall-ID: c1\nCSeq: 1 OPTIONS\n\n";
        let msg = parse(raw.as_bytes(), 65535).unwrap();
        assert_eq!(branch(msg.headers()).as_deref(), Some("z9hG4bKabc"));
    }

    #[test]
    fn oversize_gets_513() {
        let mut raw = String::from(COMPACT_INVITE);
        raw.push_str(&"x".repeat(2000));
        let err = parse(raw.as_bytes(), 1000).unwrap_err();
        let resp = String::from_utf8(err.response.unwrap()).unwrap();
        assert!(resp.starts_with("SIP/2.0 513 "), "{resp}");
        assert!(resp.contains("Call-ID: a84b4c76e66710@127.0.0.1"));
    }

    #[test]
    fn content_length_longer_than_body_is_400() {
        let raw = COMPACT_INVITE.replace("l: 4", "l: 400");
        let err = parse(raw.as_bytes(), 65535).unwrap_err();
        assert!(
            String::from_utf8(err.response.unwrap())
                .unwrap()
                .starts_with("SIP/2.0 400 ")
        );
        let raw = COMPACT_INVITE.replace("l: 4", "l: four");
        assert!(parse(raw.as_bytes(), 65535).unwrap_err().response.is_some());
    }

    #[test]
    fn bad_header_line_is_400_and_garbage_is_dropped() {
        let raw = COMPACT_INVITE.replace("k: timer", "this line has no colon");
        let err = parse(raw.as_bytes(), 65535).unwrap_err();
        assert!(
            String::from_utf8(err.response.unwrap())
                .unwrap()
                .starts_with("SIP/2.0 400 ")
        );
        let err = parse(b"\x00\xff\xfegarbage\r\n\r\n", 65535).unwrap_err();
        assert!(err.response.is_none());
        // A malformed ACK never gets a response.
        let raw = "ACK sip:x SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@h>;tag=1\r\nTo: <sip:b@h>\r\nCall-ID: 1\r\nCSeq: x ACK\r\n\r\n";
        assert!(parse(raw.as_bytes(), 65535).unwrap_err().response.is_none());
    }

    #[test]
    fn unknown_method_is_501() {
        let raw = COMPACT_INVITE.replace("INVITE", "FROB");
        let err = parse(raw.as_bytes(), 65535).unwrap_err();
        assert!(
            String::from_utf8(err.response.unwrap())
                .unwrap()
                .starts_with("SIP/2.0 501 ")
        );
    }

    #[test]
    fn missing_mandatory_header_is_400() {
        let raw = COMPACT_INVITE.replace("i: a84b4c76e66710@127.0.0.1\r\n", "");
        let err = parse(raw.as_bytes(), 65535).unwrap_err();
        // No Call-ID, so no response can be built either.
        assert!(err.response.is_none());
        let raw = COMPACT_INVITE.replace("CSeq: 314159 INVITE", "CSeq: 314159 BYE");
        assert!(parse(raw.as_bytes(), 65535).unwrap_err().response.is_some());
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut seed = 0x1234_5678u32;
        let base = COMPACT_INVITE.as_bytes();
        for _ in 0..3000 {
            let mut v = base.to_vec();
            for _ in 0..4 {
                seed = seed.wrapping_mul(1664525).wrapping_add(1013904223);
                let i = (seed as usize) % v.len();
                v[i] = (seed >> 24) as u8;
            }
            seed = seed.wrapping_mul(1664525).wrapping_add(1013904223);
            v.truncate((seed as usize) % (v.len() + 1));
            let _ = parse(&v, 65535);
        }
    }

    #[test]
    fn response_to_copies_headers_and_adds_tag() {
        let SipMessage::Request(req) = parse(COMPACT_INVITE.as_bytes(), 65535).unwrap() else {
            panic!()
        };
        let r = response_to(&req, 180, Some("abc"));
        assert_eq!(to_tag(&r.headers).as_deref(), Some("abc"));
        assert_eq!(
            call_id(&r.headers).as_deref(),
            Some("a84b4c76e66710@127.0.0.1")
        );
        let text = r.to_string();
        let back = parse(text.as_bytes(), 65535).unwrap();
        assert!(back.is_response());
    }

    #[test]
    fn list_and_param_helpers() {
        assert_eq!(split_list("<sip:a;lr>, <sip:b>,\"x, y\" <sip:c>").len(), 3);
        assert_eq!(
            param("<sip:a;tag=no>;tag=yes", "tag").as_deref(),
            Some("yes")
        );
        assert_eq!(
            addr_uri("\"Bob\" <sip:bob@h:5060;transport=tcp>;tag=1"),
            "sip:bob@h:5060;transport=tcp"
        );
        assert_eq!(addr_uri("sip:bob@h;tag=1"), "sip:bob@h");
    }
}
