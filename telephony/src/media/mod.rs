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
//! - [`amd`]: answering-machine detection; [`progress`]: call-progress tones (SIT, busy, reorder,
//!   ringback) in early media; [`pcap`]: reading captures for replay.
//!
//! Drivers: [`session::RtpSession`] owns the socket and the 20 ms clock; [`tap`] hands frames to
//! consumers over a channel; [`conference::MixRoom`] mixes a room's legs on its own 20 ms clock.
//!
//! # Attaching media to a call (for the SIP layer)
//!
//! 1. Before sending an offer or answer: `RtpSession::bind(config, Some(&ports))` (or
//!    `bind_on(config, port)` with a port from your own allocator) and put `local_addr()` in the
//!    SDP. `SessionConfig::negotiated(ip, payload_type, telephone_event)` builds the config from the
//!    offer/answer result; `set_codec` applies a re-INVITE's.
//! 2. When the remote SDP is known: `set_remote(addr)`; hold: `set_direction(send, receive)`
//!    (`sendonly` = `(true, false)`, `inactive` = `(false, false)`).
//! 3. Use it: `play(Box::new(prompt.player()))`, `send_dtmf("12#")`, `record_to_file` /
//!    `finish_recording_file` (or in memory: `start_recording` / `stop_recording`), `tap(n)`,
//!    `start_amd(AmdConfig::default())`, `detect_progress_tones()` (early media: SIT, busy,
//!    reorder, ringback), `session::bridge(&a, &b)` (calling it again with another leg switches an
//!    agent's leg without re-signalling).
//! 4. Read `next_event()`: `Dtmf`, `PlaybackFinished`, `Amd(..)`, `Progress(..)`, `Inactive` (the
//!    RTP inactivity timeout: end the call), `SourceChanged`.
//! 5. At hang-up: `close().await` (the leased port returns to the pool).

pub mod amd;
pub mod bridge;
pub mod conference;
pub mod frame;
pub mod g711;
pub mod goertzel;
pub mod inband_dtmf;
pub mod jitter;
pub mod mixer;
pub mod pcap;
pub mod ports;
pub mod progress;
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
