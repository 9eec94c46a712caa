//! Cutting a TCP byte stream into SIP messages by Content-Length (RFC 3261 §18.3).
//!
//! rsip 0.4 has no stream framing: two messages in one TCP segment parse as one. [`Framer`] buffers
//! what the socket delivers and yields whole messages: several from one read, or one assembled from
//! several reads. A stream message must carry Content-Length; without one, or with a garbled one, or
//! over the size limit, the stream can no longer be trusted and the framer reports a fatal error
//! (with a 400/513 to send first when the head allows it) and the connection is closed.

use super::message;

/// What the framer produced.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// One complete message (head and body), ready for [`message::parse`].
    Message(Vec<u8>),
    /// The stream is broken; send `response` if any, then close.
    Fatal {
        reason: String,
        response: Option<Vec<u8>>,
    },
}

#[derive(Debug)]
pub struct Framer {
    buf: Vec<u8>,
    max: usize,
    broken: bool,
}

impl Framer {
    pub fn new(max_message_bytes: usize) -> Self {
        Self {
            buf: Vec::new(),
            max: max_message_bytes,
            broken: false,
        }
    }

    /// Feeds bytes read from the socket and returns every message now complete.
    pub fn push(&mut self, data: &[u8]) -> Vec<Frame> {
        let mut out = Vec::new();
        if self.broken {
            return out;
        }
        self.buf.extend_from_slice(data);
        loop {
            // Keep-alive CRLFs between messages.
            let skip = self
                .buf
                .iter()
                .position(|b| *b != b'\r' && *b != b'\n')
                .unwrap_or(self.buf.len());
            self.buf.drain(..skip);
            if self.buf.is_empty() {
                break;
            }
            let Some(head_len) = message::head_end(&self.buf) else {
                if self.buf.len() > self.max {
                    out.push(self.fatal(
                        513,
                        "Message Too Large",
                        "header block over the size limit",
                    ));
                }
                break;
            };
            let cl = match content_length(&self.buf[..head_len]) {
                Ok(cl) => cl,
                Err(e) => {
                    out.push(self.fatal(400, "Bad Content-Length", &e));
                    break;
                }
            };
            let total = head_len + cl;
            if total > self.max {
                out.push(self.fatal(513, "Message Too Large", "message over the size limit"));
                break;
            }
            if self.buf.len() < total {
                break;
            }
            let rest = self.buf.split_off(total);
            out.push(Frame::Message(std::mem::replace(&mut self.buf, rest)));
        }
        out
    }

    fn fatal(&mut self, code: u16, reason: &str, why: &str) -> Frame {
        self.broken = true;
        let head_len = message::head_end(&self.buf).unwrap_or(self.buf.len());
        let response = message::raw_response(&self.buf[..head_len.min(self.max)], code, reason);
        self.buf.clear();
        Frame::Fatal {
            reason: why.to_string(),
            response,
        }
    }
}

/// The Content-Length of a head (compact `l:` included); required on streams.
fn content_length(head: &[u8]) -> Result<usize, String> {
    let text = std::str::from_utf8(head).map_err(|_| "header block is not UTF-8".to_string())?;
    for line in text.split('\n') {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        if message::expand_name(name.trim()).eq_ignore_ascii_case("Content-Length") {
            return value
                .trim()
                .parse()
                .map_err(|_| format!("bad Content-Length {:.20}", value.trim()));
        }
    }
    Err("no Content-Length on a stream transport".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(body: &str) -> String {
        format!(
            "MESSAGE sip:x@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1;branch=z9hG4bK{}\r\n\
From: <sip:a@h>;tag=1\r\nTo: <sip:x@h>\r\nCall-ID: c\r\nCSeq: 1 MESSAGE\r\nl: {}\r\n\r\n{}",
            body.len(),
            body.len(),
            body
        )
    }

    #[test]
    fn rsip_alone_merges_two_messages() {
        let two = format!("{}{}", msg("hello"), msg("second!"));
        let parsed = rsip::SipMessage::try_from(two.as_str()).unwrap();
        // The whole second message became the "body" of the first.
        assert!(parsed.body().len() > 100);
    }

    #[test]
    fn two_messages_in_one_read() {
        let mut f = Framer::new(65535);
        let frames = f.push(format!("{}\r\n{}", msg("hello"), msg("second!")).as_bytes());
        assert_eq!(frames.len(), 2);
        for (frame, body) in frames.iter().zip(["hello", "second!"]) {
            let Frame::Message(m) = frame else { panic!() };
            let parsed = message::parse(m, 65535).unwrap();
            assert_eq!(parsed.body(), body.as_bytes());
        }
    }

    #[test]
    fn one_message_over_many_reads() {
        let mut f = Framer::new(65535);
        let whole = msg("split body");
        let mut frames = Vec::new();
        for chunk in whole.as_bytes().chunks(7) {
            frames.extend(f.push(chunk));
        }
        assert_eq!(frames, vec![Frame::Message(whole.into_bytes())]);
    }

    #[test]
    fn missing_or_bad_content_length_is_fatal_with_400() {
        let mut f = Framer::new(65535);
        let bad = msg("x").replace("l: 1", "l: nope");
        let frames = f.push(bad.as_bytes());
        let [
            Frame::Fatal {
                response: Some(r), ..
            },
        ] = &frames[..]
        else {
            panic!("{frames:?}")
        };
        assert!(r.starts_with(b"SIP/2.0 400"));
        assert!(
            f.push(msg("y").as_bytes()).is_empty(),
            "a broken stream yields nothing more"
        );
    }

    #[test]
    fn oversize_is_513() {
        let mut f = Framer::new(300);
        let frames = f.push(msg(&"z".repeat(400)).as_bytes());
        let [
            Frame::Fatal {
                response: Some(r), ..
            },
        ] = &frames[..]
        else {
            panic!("{frames:?}")
        };
        assert!(
            r.starts_with(b"SIP/2.0 513"),
            "{}",
            String::from_utf8_lossy(r)
        );
    }
}
