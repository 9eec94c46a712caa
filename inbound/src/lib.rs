//! Inbound contact handling, as pure logic: flow documents in the Amazon Connect flow language and
//! their validator ([`flow`]), the sans-IO flow interpreter ([`interpreter`]), the contact record
//! ([`contact`]), hours of operation ([`hours`]) and the ACD ([`acd`]); plus storage on both
//! database backends ([`store`]) and the one I/O helper, the webhook call ([`webhook`]).
//!
//! How a driver (SIP/media, the dialer, the web layer) uses it:
//!
//! 1. A call arrives on a DID: [`store::flow_for_number`] gives the current [`store::StoredFlow`];
//!    [`store::StoredFlow::compile`] gives an `Arc<CompiledFlow>` (cache it per version).
//! 2. [`interpreter::Interpreter::new`]`(flow, seed)`, then
//!    `step(Input::Started(ContactInfo{..}), now_ms)`. Carry out the returned
//!    [`interpreter::Effect`]s in order; the last one may be awaited (`Effect::is_awaited`): report
//!    its result with the matching [`interpreter::Input`] (`PromptFinished`, `DigitsCollected`,
//!    `InputTimeout`, `WebhookResult` via [`webhook::invoke`], `HoursChecked` via
//!    [`hours::HoursBook::check`], `QueueResult`, `TransferResult`, `CallbackResult`). Send
//!    `Input::Hangup` whenever the caller leaves. `Effect::Ended` closes the flow part; save
//!    [`interpreter::Interpreter::record`] with [`store::save_contact`].
//! 3. `Effect::EnqueueContact` becomes `acd::Event::Enqueue`; one [`acd::Acd`] per node takes
//!    events with the time and returns [`acd::Decision`]s (offer, retract, overflow, timeout...);
//!    call `step(Event::Tick, t)` at [`acd::Acd::next_deadline`].
//!
//! Nothing above reads the clock, sleeps or opens sockets except [`store`] (database) and
//! [`webhook`] (HTTP), which the driver calls explicitly. [`runtime`] is that driver for real
//! calls: tokio tasks that run the interpreter per call and one task per node that owns the ACD
//! (agents' audio endpoints, nailed-up legs, offers, supervisors, the dialer's hand-over).

pub mod acd;
pub mod contact;
pub mod flow;
pub mod hours;
pub mod interpreter;
pub mod presence;
pub mod runtime;
pub mod store;
pub mod webhook;
