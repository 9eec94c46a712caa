//! The SIP listeners the appliance binds at start (UDP and TCP).
//!
//! This first version only binds, answers OPTIONS and refuses everything else (503 while the
//! appliance drains, 501 otherwise); the transaction layer replaces the request handling.

use std::net::SocketAddr;

use foundation::lifecycle::Lifecycle;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};

use crate::Config;

/// The bound SIP listeners.
pub struct SipListeners {
    pub udp_addr: SocketAddr,
    pub tcp_addr: SocketAddr,
}

/// Binds UDP and TCP and serves them until the process ends.
pub async fn start(config: &Config, lifecycle: Lifecycle) -> anyhow::Result<SipListeners> {
    let udp = UdpSocket::bind(config.udp)
        .await
        .map_err(|e| anyhow::anyhow!("cannot bind SIP UDP on {}: {e}", config.udp))?;
    let tcp = TcpListener::bind(config.tcp)
        .await
        .map_err(|e| anyhow::anyhow!("cannot bind SIP TCP on {}: {e}", config.tcp))?;
    let out = SipListeners {
        udp_addr: udp.local_addr()?,
        tcp_addr: tcp.local_addr()?,
    };
    let max = config.max_message_bytes;
    let lc = lifecycle.clone();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65_535];
        loop {
            let Ok((n, peer)) = udp.recv_from(&mut buf).await else { continue };
            if let Some(reply) = respond(&buf[..n], max, lc.is_draining()) {
                let _ = udp.send_to(&reply, peer).await;
            }
        }
    });
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = tcp.accept().await else { continue };
            let lc = lifecycle.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65_535];
                while let Ok(n) = stream.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    if let Some(reply) = respond(&buf[..n], max, lc.is_draining()) {
                        if stream.write_all(&reply).await.is_err() {
                            break;
                        }
                    }
                }
            });
        }
    });
    Ok(out)
}

fn respond(bytes: &[u8], max: usize, draining: bool) -> Option<Vec<u8>> {
    let msg = rsip::SipMessage::try_from(bytes).ok()?;
    let rsip::SipMessage::Request(req) = msg else { return None };
    if req.method == rsip::Method::Ack {
        return None;
    }
    let code: u16 = if bytes.len() > max {
        513
    } else if draining {
        503
    } else if req.method == rsip::Method::Options {
        200
    } else {
        501
    };
    let mut headers: rsip::Headers = Default::default();
    for h in req.headers.iter() {
        match h {
            rsip::Header::Via(_) | rsip::Header::From(_) | rsip::Header::To(_)
            | rsip::Header::CallId(_) | rsip::Header::CSeq(_) => headers.push(h.clone()),
            _ => {}
        }
    }
    headers.push(rsip::Header::ContentLength(0.into()));
    let resp = rsip::Response {
        status_code: code.into(),
        version: rsip::Version::V2,
        headers,
        body: vec![],
    };
    Some(resp.to_string().into_bytes())
}
