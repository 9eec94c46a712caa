//! Queue announcements: while an inbound contact waits in a queue whose configuration asks for
//! it (`announce_position`, `announce_wait`, every `announce_every_s`), a small task per contact
//! asks the ACD task for the contact's place ([`crate::acd::Acd::estimate`]), has the words
//! spoken through the prompt cache ("You are caller number N. Your estimated wait is about M
//! minutes.") and hands the audio, followed by the hold audio again, to the ACD task, which
//! plays it only if the caller is still waiting (so an announcement never talks over an agent).
//! The task ends when the contact leaves the queue.

use std::sync::Arc;
use std::time::Duration;

use telephony::media::frame::{FrameSource, Sequence};
use tokio::sync::oneshot;

use crate::acd::{Estimate, QueueConfig, wait};
use crate::interpreter::PromptSpec;

use super::Shared;
use super::acd_task::Cmd;

/// Whether any queue announces (no task is started otherwise).
pub(crate) fn any(sh: &Shared) -> bool {
    sh.acd_cfg().queues.iter().any(QueueConfig::announces)
}

/// The stage detail recorded with each announcement.
pub(crate) fn detail(e: &Estimate, q: &QueueConfig) -> String {
    let mut d = format!("{}: caller {}", e.queue, e.position);
    if q.announce_wait {
        match e.wait_ms {
            Some(w) => d += &format!(", wait {} s", w / 1000),
            None => d += ", wait unknown",
        }
    }
    d
}

/// Starts announcing to `contact`, queued in `queue`.
pub(crate) fn spawn(sh: Arc<Shared>, contact: String, queue: String) {
    tokio::spawn(async move {
        let mut every = sh
            .queue_cfg(&queue)
            .map_or(crate::acd::DEFAULT_ANNOUNCE_EVERY_S, |q| q.announce_every_s);
        loop {
            tokio::time::sleep(Duration::from_secs(every.max(1) as u64)).await;
            let (reply, rx) = oneshot::channel();
            if sh
                .acd
                .send(Cmd::Estimate {
                    contact: contact.clone(),
                    reply,
                })
                .is_err()
            {
                return;
            }
            let Ok(Some(e)) = rx.await else { return };
            let Some(q) = sh.queue_cfg(&e.queue) else {
                continue;
            };
            every = q.announce_every_s;
            if e.offered || !q.announces() {
                continue;
            }
            let text = wait::announcement_text(
                q.announce_position.then_some(e.position),
                if q.announce_wait { e.wait_ms } else { None },
            );
            let Some(text) = text else { continue };
            let words = match sh.prompts.get(&PromptSpec::Text(text), None).await {
                Ok(p) => p,
                Err(err) => {
                    tracing::warn!(contact = %contact, error = %err, "announcement not synthesized");
                    continue;
                }
            };
            let mut parts: Vec<Box<dyn FrameSource>> = vec![Box::new(words.player())];
            if let Some(spec) = &sh.cfg.hold_audio
                && let Ok(hold) = sh.prompts.get(spec, None).await
            {
                parts.push(Box::new(hold.player_looped(u32::MAX)));
            }
            let cmd = Cmd::Announce {
                contact: contact.clone(),
                detail: detail(&e, &q),
                audio: Box::new(Sequence::new(parts)),
            };
            if sh.acd.send(cmd).is_err() {
                return;
            }
        }
    });
}
