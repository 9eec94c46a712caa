//! Shared helpers for the media integration tests: scratch directories and running sox/espeak-ng.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command};

/// A scratch directory removed on drop.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Scratch {
        let p =
            std::env::temp_dir().join(format!("dialbridge-media-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("scratch dir");
        Scratch(p)
    }

    pub fn path(&self, f: &str) -> PathBuf {
        self.0.join(f)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs a command and panics with its stderr if it fails.
pub fn run(program: &str, args: &[&str]) {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Reads a file as 16-bit LE raw samples.
pub fn read_s16(path: &Path) -> Vec<i16> {
    std::fs::read(path)
        .expect("read")
        .chunks_exact(2)
        .map(|c| i16::from_le_bytes([c[0], c[1]]))
        .collect()
}

/// Writes 16-bit LE raw samples.
pub fn write_s16(path: &Path, pcm: &[i16]) {
    std::fs::write(
        path,
        pcm.iter()
            .flat_map(|s| s.to_le_bytes())
            .collect::<Vec<u8>>(),
    )
    .expect("write");
}

/// Normalised cross-correlation at lag 0.
pub fn correlation(a: &[i16], b: &[i16]) -> f64 {
    let n = a.len().min(b.len());
    let (mut ab, mut aa, mut bb) = (0.0, 0.0, 0.0);
    for i in 0..n {
        let (x, y) = (a[i] as f64, b[i] as f64);
        ab += x * y;
        aa += x * x;
        bb += y * y;
    }
    if aa == 0.0 || bb == 0.0 {
        0.0
    } else {
        ab / (aa * bb).sqrt()
    }
}

/// Runs `sox INPUT… -r 8000 -c 1 -e signed -b 16 OUTPUT EFFECTS…`: the telephone-band format
/// (8 kHz mono, signed 16-bit) the media tests generate and convert audio in.
pub fn sox_8k(input: &[&str], output: &Path, effects: &[&str]) {
    let output = output.to_str().expect("utf-8 path");
    let mut args: Vec<&str> = input.to_vec();
    args.extend(["-r", "8000", "-c", "1", "-e", "signed", "-b", "16", output]);
    args.extend(effects);
    run("sox", &args);
}

/// A child process killed and reaped on drop.
pub struct Kill(pub Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A UDP port on 127.0.0.1 that was free a moment ago.
pub fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind((std::net::Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
