//! Media: RTP sessions, codecs, DTMF, prompts, recording, answering-machine detection, bridging.
//!
//! Sans-IO pieces (state machines taking input and `now`, returning outputs):
//! - [`g711`]: µ-law / A-law tables; [`frame`]: the 20 ms frame and [`frame::FrameSource`].
//! - [`source`] (RFC 3550 A.1 per SSRC), [`jitter`], [`receiver`], [`sender`]: RTP streams.
//! - [`rfc4733`]: telephone-events in and out; [`goertzel`], [`inband_dtmf`]: in-band keys.
//! - [`ports`]: the RTP port range.
//!
//! The tokio driver [`session::RtpSession`] owns the socket and the 20 ms clock.

pub mod frame;
pub mod g711;
pub mod goertzel;
pub mod inband_dtmf;
pub mod jitter;
pub mod ports;
pub mod receiver;
pub mod rfc4733;
pub mod sender;
pub mod source;
pub mod tone;
