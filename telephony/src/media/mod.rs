//! Media: RTP sessions, codecs, DTMF, prompts, recording, answering-machine detection, bridging.
//!
//! Sans-IO pieces (state machines taking input and `now`, returning outputs):
//! - [`g711`]: µ-law / A-law tables; [`frame`]: the 20 ms frame and [`frame::FrameSource`].
//! - [`source`] (RFC 3550 A.1 per SSRC), [`jitter`], [`receiver`], [`sender`]: RTP streams.
//! - [`rfc4733`]: telephone-events in and out; [`goertzel`], [`inband_dtmf`]: in-band keys.
//! - [`ports`]: the RTP port range.
//! - [`wav`], [`prompt`], [`tone`], [`recorder`]: files, playback, tones, call recording.
//! - [`bridge`]: the switchable outgoing leg (relay, transcoding, peer swaps without re-signalling);
//!   [`mixer`]: N-party mixing with listen-only and whisper roles.
//! - [`amd`]: answering-machine detection; [`pcap`]: reading captures for replay.
//!
//! Drivers: [`session::RtpSession`] owns the socket and the 20 ms clock; [`tap`] hands frames to
//! consumers over a channel.

pub mod amd;
pub mod bridge;
pub mod frame;
pub mod g711;
pub mod goertzel;
pub mod inband_dtmf;
pub mod jitter;
pub mod mixer;
pub mod pcap;
pub mod ports;
pub mod prompt;
pub mod receiver;
pub mod recorder;
pub mod rfc4733;
pub mod sender;
pub mod session;
pub mod source;
pub mod tap;
pub mod tone;
pub mod wav;
