//! A test endpoint for tests and demos (before the IVR exists): answers every inbound call and
//! plays a prompt, echoes what it hears, or collects digits, then reports what happened on each
//! call.

use std::time::Duration;

use tokio::sync::mpsc;

use crate::media::prompt::Prompt;
use crate::sip::call::CallId;

use super::call::Call;
use super::calls::IncomingCalls;
use super::event::{EndCause, Event};

/// What the endpoint does with each answered call.
#[derive(Debug, Clone)]
pub enum Mode {
    /// Sends back what it hears.
    Echo,
    /// Plays the prompt, then echoes (`then_echo`) or hangs up.
    Prompt { prompt: Prompt, then_echo: bool },
    /// Plays the prompt (if any) and collects digits until `max` digits, `terminator`, or
    /// `timeout` after the prompt; then hangs up.
    CollectDigits {
        prompt: Option<Prompt>,
        max: usize,
        terminator: Option<char>,
        timeout: Duration,
    },
}

/// What happened on one call.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub call: CallId,
    pub answered: bool,
    /// Digits received, in order, once each.
    pub digits: String,
    pub prompt_finished: bool,
    pub cause: Option<EndCause>,
}

/// Serves inbound calls until the SIP layer goes away; one [`Report`] per call on the returned
/// channel.
pub fn serve(mut incoming: IncomingCalls, mode: Mode) -> mpsc::UnboundedReceiver<Report> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(call) = incoming.next().await {
            let (tx, mode) = (tx.clone(), mode.clone());
            tokio::spawn(async move {
                let _ = tx.send(handle(call, mode).await);
            });
        }
    });
    rx
}

/// Runs one call in `mode` to its end.
pub async fn handle(mut call: Call, mode: Mode) -> Report {
    let mut r = Report {
        call: call.id(),
        answered: false,
        digits: String::new(),
        prompt_finished: false,
        cause: None,
    };
    let ctl = call.control().clone();
    let mut deadline: Option<tokio::time::Instant> = None;
    let mut done = false;
    loop {
        let ev = match deadline {
            Some(d) => match tokio::time::timeout_at(d, call.next_event()).await {
                Ok(ev) => ev,
                Err(_) => {
                    deadline = None;
                    let _ = ctl.hangup().await;
                    continue;
                }
            },
            None => call.next_event().await,
        };
        let Some(ev) = ev else { break };
        match ev {
            Event::Answered { .. } => {
                r.answered = true;
                match &mode {
                    Mode::Echo => {
                        let _ = ctl.echo(true).await;
                    }
                    Mode::Prompt { prompt, .. } => {
                        let _ = ctl.play_prompt(prompt).await;
                    }
                    Mode::CollectDigits {
                        prompt: Some(p), ..
                    } => {
                        let _ = ctl.play_prompt(p).await;
                    }
                    Mode::CollectDigits {
                        prompt: None,
                        timeout,
                        ..
                    } => {
                        deadline = Some(tokio::time::Instant::now() + *timeout);
                    }
                }
            }
            Event::PlaybackFinished => {
                r.prompt_finished = true;
                match &mode {
                    Mode::Prompt {
                        then_echo: true, ..
                    } => {
                        let _ = ctl.echo(true).await;
                    }
                    Mode::Prompt {
                        then_echo: false, ..
                    } => {
                        let _ = ctl.hangup().await;
                    }
                    Mode::CollectDigits { timeout, .. } if !done => {
                        deadline = Some(tokio::time::Instant::now() + *timeout);
                    }
                    _ => {}
                }
            }
            Event::Dtmf { digit, .. } => {
                r.digits.push(digit);
                if let Mode::CollectDigits {
                    max, terminator, ..
                } = &mode
                    && !done
                    && (r.digits.len() >= *max || Some(digit) == *terminator)
                {
                    done = true;
                    deadline = None;
                    let _ = ctl.hangup().await;
                }
            }
            Event::Hangup { cause, .. } => {
                r.cause = Some(cause);
            }
            _ => {}
        }
    }
    r
}
