//! Queue announcements on real calls: two sipp callers choose sales (which announces position
//! and estimated wait every 10 s) and wait with no agent. Each contact record gets an
//! `announcement` stage about every 10 s with its own position (1 and 2; the wait is unknown
//! with nobody staffing the queue), and the call's recording (the flow records both sides)
//! carries speech right after each announcement stage and silence (no hold audio configured)
//! before it.

mod support;

use std::path::Path;
use std::time::Duration;

use inbound::contact::ContactRecord;
use support::*;

const EVERY_S: i64 = 10;

/// The outbound (right) channel of a stereo µ-law recording, as linear samples.
fn outbound_channel(path: &Path) -> Vec<i16> {
    let bytes = std::fs::read(path).unwrap();
    let at = bytes
        .windows(4)
        .position(|w| w == b"data")
        .expect("a data chunk");
    let data = &bytes[at + 8..];
    data.chunks_exact(2)
        .map(|lr| telephony::media::g711::ulaw_to_linear(lr[1]))
        .collect()
}

/// RMS of `samples` between `from_ms` and `to_ms` (8 kHz).
fn rms(samples: &[i16], from_ms: i64, to_ms: i64) -> f64 {
    let a = ((from_ms.max(0) * 8) as usize).min(samples.len());
    let b = ((to_ms.max(0) * 8) as usize).min(samples.len());
    if b <= a {
        return 0.0;
    }
    let sum: f64 = samples[a..b].iter().map(|&s| f64::from(s).powi(2)).sum();
    (sum / (b - a) as f64).sqrt()
}

fn stage_at(r: &ContactRecord, stage: &str) -> Vec<(i64, String)> {
    r.stages
        .iter()
        .filter(|s| s.stage == stage)
        .map(|s| (s.at_ms, s.detail.clone()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_callers_hear_their_position_every_interval() {
    if !foundation::testing::require_tool("sipp", "sip-tester")
        || !foundation::testing::require_tool("espeak-ng", "espeak-ng")
    {
        return;
    }
    let sut = start(37_000, |c| {
        let sales = c.acd.queues.iter_mut().find(|q| q.name == "sales").unwrap();
        sales.announce_position = true;
        sales.announce_wait = true;
        sales.announce_every_s = EVERY_S;
    })
    .await;
    let dir = sut.dir.path().to_path_buf();
    // Digit 1 (sales) 1.5 s after the answer, then 27 s in the queue.
    write(&dir, "c.xml", &caller_xml(Dtmf::Pt96("1"), 1_500, 27_000));
    let callers = sipp(
        &dir,
        &caller_args(sut.sip.udp_addr.port(), "c.xml", DID, 2, 2, 1),
    );
    let out = wait_sipp(callers, Duration::from_secs(90)).await;
    assert_eq!(out.rc, 0, "callers: {}", out.output);
    eventually("both contacts closed", Duration::from_secs(15), || {
        let db = sut.db.clone();
        async move {
            let rows = contacts(&db).await;
            rows.len() == 2 && rows.iter().all(|r| r.ended_at_ms.is_some())
        }
    })
    .await;
    let mut rows = contacts(&sut.db).await;
    rows.sort_by_key(|r| stage_at(r, "queued").first().map(|q| q.0));
    for (i, r) in rows.iter().enumerate() {
        let id = &r.contact.contact_id;
        let queued = stage_at(r, "queued");
        assert_eq!(queued.len(), 1, "{id}: {:?}", r.stages);
        let queued_at = queued[0].0;
        let ann = stage_at(r, "announcement");
        assert!(
            (2..=3).contains(&ann.len()),
            "{id}: two or three announcements in ~24 s of waiting: {:?}",
            r.stages
        );
        for (k, (at, detail)) in ann.iter().enumerate() {
            let expected = queued_at + (k as i64 + 1) * EVERY_S * 1000;
            assert!(
                (at - expected).abs() < 2_000,
                "{id}: announcement {k} at +{} ms, expected about +{} ms",
                at - queued_at,
                expected - queued_at
            );
            assert_eq!(
                detail,
                &format!("sales: caller {}, wait unknown", i + 1),
                "{id}: position in the queue"
            );
        }
        // The audio: speech right after each announcement stage, silence before it.
        let rec_on = stage_at(r, "recording_on");
        assert_eq!(rec_on.len(), 1, "{id}: {:?}", r.stages);
        let path = std::path::PathBuf::from(&rec_on[0].1);
        let out = outbound_channel(&path);
        let start = rec_on[0].0;
        for (at, _) in &ann {
            let t = at - start;
            let speech = rms(&out, t, t + 1_500);
            let before = rms(&out, t - 4_000, t - 500);
            eprintln!("{id}: announcement at +{t} ms: rms {speech:.0} after, {before:.0} before");
            assert!(
                speech > 300.0 && before < 50.0,
                "{id}: announcement at +{t} ms: rms {speech:.0} after, {before:.0} before (recording {} ms)",
                out.len() / 8
            );
        }
    }
}
