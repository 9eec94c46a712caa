//! A bare dialer node: runs the campaign runner on a SQLite database until it is killed. Used by
//! the crash test (`tests/runner_sipp.rs`, kill -9 mid-campaign). It has no agents, so it suits
//! agentless campaigns; the appliance runs the runner with the inbound runtime's agents instead.
//!
//! `dialer-node DB_PATH NODE RTP_BASE`

use std::collections::BTreeMap;
use std::sync::Arc;

use dialer::agents::{AgentPort, AgentView, NoAgent};
use futures_util::future::BoxFuture;
use telephony::control::{CallControl, Calls, ControlConfig};

struct NoAgents;

impl AgentPort for NoAgents {
    fn snapshot(&self, _queue: &str) -> Vec<AgentView> {
        Vec::new()
    }
    fn connect(
        &self,
        _queue: &str,
        _call: CallControl,
        _attrs: BTreeMap<String, String>,
    ) -> BoxFuture<'static, Result<String, NoAgent>> {
        Box::pin(async { Err(NoAgent("this node has no agents".into())) })
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, db_path, node, rtp_base] = &args[..] else {
        anyhow::bail!("usage: dialer-node DB_PATH NODE RTP_BASE");
    };
    let rtp_base: u16 = rtp_base.parse()?;
    let db = foundation::Db::connect(&format!("sqlite://{db_path}"), 4).await?;
    db.migrate().await?;
    let config = telephony::Config {
        udp: "127.0.0.1:0".parse()?,
        tcp: "127.0.0.1:0".parse()?,
        advertised_address: Some("127.0.0.1".into()),
        rtp_ports: (rtp_base, rtp_base + 399),
        max_message_bytes: 8192,
    };
    let lifecycle = foundation::lifecycle::Lifecycle::new();
    let sip = telephony::sip::listener::start_with(&config, Default::default(), lifecycle.clone())
        .await?;
    let cc = ControlConfig {
        media_ip: "127.0.0.1".parse()?,
        inactivity_timeout: None,
        inband_dtmf: true,
        jitter_depth: 3,
    };
    let (calls, _incoming) = Calls::start(sip.handle.clone(), cc);
    let clock: foundation::SharedClock = Arc::new(foundation::clock::SystemClock);
    let handle = dialer::runner::start(
        db,
        clock,
        calls,
        Arc::new(NoAgents),
        dialer::runner::RunnerConfig::new(node),
    )
    .await?;
    println!("running; recovered {:?}", handle.recovery);
    std::future::pending::<()>().await;
    Ok(())
}
