//! A minimal WebSocket client (RFC 6455) for the desktop bench: the HTTP upgrade with a bearer
//! key, then text frames in and masked text frames out. Enough for `GET /api/v1/agent/events`
//! (no TLS, no extensions); a real dependency would only add to the binary for a load generator.

use anyhow::{Context, bail};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

/// The reading half: text messages as they arrive.
pub struct WsReader(BufReader<OwnedReadHalf>);

/// The writing half: masked text frames (a client must mask).
pub struct WsWriter(OwnedWriteHalf);

/// Opens `ws://{host}{path}` with `Authorization: Bearer {key}` and checks the 101.
pub async fn connect(host: &str, path: &str, key: &str) -> anyhow::Result<(WsReader, WsWriter)> {
    let stream = TcpStream::connect(host)
        .await
        .with_context(|| format!("connecting to {host}"))?;
    stream.set_nodelay(true)?;
    let (r, mut w) = stream.into_split();
    // Any 16 bytes in base64 will do as the key: the server only echoes a hash of it.
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
         Authorization: Bearer {key}\r\n\r\n"
    );
    w.write_all(request.as_bytes()).await?;
    let mut r = BufReader::new(r);
    let mut status = String::new();
    r.read_line(&mut status).await?;
    if !status.starts_with("HTTP/1.1 101") {
        bail!("the upgrade was refused: {}", status.trim());
    }
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).await? == 0 {
            bail!("the connection closed during the upgrade");
        }
        if line == "\r\n" {
            break;
        }
    }
    Ok((WsReader(r), WsWriter(w)))
}

impl WsReader {
    /// The next text message; `None` when the server closed the socket. Pings are answered
    /// through `pong`, since the two halves live in different places.
    pub async fn next_text(&mut self, pong: &mut WsWriter) -> anyhow::Result<Option<String>> {
        let mut message = Vec::new();
        loop {
            let mut head = [0u8; 2];
            if self.0.read_exact(&mut head).await.is_err() {
                return Ok(None);
            }
            let (fin, opcode) = (head[0] & 0x80 != 0, head[0] & 0x0f);
            let masked = head[1] & 0x80 != 0;
            let len = match head[1] & 0x7f {
                126 => self.0.read_u16().await? as u64,
                127 => self.0.read_u64().await?,
                n => n as u64,
            };
            let mut mask = [0u8; 4];
            if masked {
                self.0.read_exact(&mut mask).await?;
            }
            let mut payload = vec![0u8; usize::try_from(len)?];
            self.0.read_exact(&mut payload).await?;
            if masked {
                for (i, b) in payload.iter_mut().enumerate() {
                    *b ^= mask[i % 4];
                }
            }
            match opcode {
                0x0 | 0x1 => {
                    message.extend_from_slice(&payload);
                    if fin {
                        return Ok(Some(String::from_utf8(message)?));
                    }
                }
                0x8 => return Ok(None),
                0x9 => pong.frame(0xA, &payload).await?,
                _ => {}
            }
        }
    }
}

impl WsWriter {
    pub async fn send_text(&mut self, text: &str) -> anyhow::Result<()> {
        self.frame(0x1, text.as_bytes()).await
    }

    async fn frame(&mut self, opcode: u8, payload: &[u8]) -> anyhow::Result<()> {
        let mut out = vec![0x80 | opcode];
        match payload.len() {
            n if n < 126 => out.push(0x80 | n as u8),
            n if n <= u16::MAX as usize => {
                out.push(0x80 | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(0x80 | 127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        let mask: [u8; 4] = rand::random();
        out.extend_from_slice(&mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        self.0.write_all(&out).await?;
        Ok(())
    }
}
