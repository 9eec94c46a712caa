//! Call control: SIP calls with their media attached, for the rest of the appliance (IVR, dialer,
//! bridge).
//!
//! The SIP layer ([`crate::sip`]) negotiates calls and the media engine ([`crate::media`]) moves
//! audio; this module connects them. [`Calls`] owns a [`SipHandle`](crate::sip::driver::SipHandle),
//! subscribes to its events and runs one small task per call that creates the call's
//! [`RtpSession`](crate::media::session::RtpSession) on the SIP-advertised port when the call is
//! answered (or has early media), follows re-INVITEs (hold) and closes it at hang-up. Each call is
//! handed out as a [`Call`]: a [`CallControl`] (cloneable commands: play, stop, DTMF, record,
//! AMD, bridge, hang up) plus one merged [`Event`] stream (SIP and media events together).
//!
//! - [`event`]: what a call reports ([`Event`], [`EndCause`]).
//! - [`policy`]: the decisions, sans-IO (which media a negotiation asks for, what each media
//!   event leads to, how a digit is sent, why a call ended).
//! - [`call`]: the per-call task and its handles; [`calls`]: the dispatcher.
//! - [`endpoint`]: a test endpoint (echo, prompt player, digit collector) for tests and demos.
//!
//! ```no_run
//! # async fn demo(sip: telephony::sip::driver::SipHandle) -> anyhow::Result<()> {
//! use telephony::control::{Calls, ControlConfig, Event};
//! use telephony::media::prompt::Prompt;
//! let (_calls, mut incoming) = Calls::start(sip, ControlConfig::default());
//! let prompt = Prompt::from_wav_file("welcome.wav".as_ref())?;
//! while let Some(mut call) = incoming.next().await {
//!     let prompt = prompt.clone();
//!     tokio::spawn(async move {
//!         while let Some(ev) = call.next_event().await {
//!             match ev {
//!                 Event::Answered { .. } => { let _ = call.control().play_prompt(&prompt).await; }
//!                 Event::Dtmf { digit: '0', .. } => { let _ = call.control().hangup().await; }
//!                 _ => {}
//!             }
//!         }
//!     });
//! }
//! # Ok(()) }
//! ```

pub mod call;
pub mod calls;
pub mod endpoint;
pub mod event;
pub mod policy;

pub use call::{Call, CallControl, CallInfo, OnPeerHangup};
pub use calls::{Calls, ControlConfig, IncomingCalls};
pub use event::{ControlError, DtmfVia, EndCause, Event};
