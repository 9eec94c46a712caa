// Shared helpers of the browser scripts under tests/console: one chromium launcher (Debian's
// chromium through playwright-core, never a downloaded browser), steps that stop at the first
// failure with a screenshot, console login, the stdin/stdout line protocol the Rust tests drive
// the scripts with, and a WebAudio tone detector run inside pages.
import { chromium } from 'playwright-core';
import fs from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';

export const env = (k, d) => {
  const v = process.env[k] ?? d;
  if (v === undefined || v === '') throw new Error(`set ${k}`);
  return v;
};

/// Debian's chromium; with `fakeAudio` (a WAV file) the WebRTC recipe of
/// telephony/src/webrtc/mod.rs: loopback ICE candidates, that file as the microphone (looped), no
/// permission prompt, audio without a user gesture. Every script under tests/console uses it.
export async function launch({ fakeAudio } = {}) {
  const args = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'];
  if (fakeAudio) {
    args.push('--allow-loopback-in-peer-connection', '--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream',
      `--use-file-for-fake-audio-capture=${fakeAudio}`, '--autoplay-policy=no-user-gesture-required');
  }
  return chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium', args });
}

/// Steps in order, stopping the process at the first failure (screenshot `FAILED-<prefix>.png`
/// of the current page). Browser errors (uncaught exceptions, console errors other than failed
/// resource loads) fail the step they happen in.
export function stepper({ browser, artifacts, prefix, baseURL }) {
  fs.mkdirSync(artifacts, { recursive: true });
  const s = {
    current: null,
    passed: 0,
    errors: [],
    async step(name, fn) {
      const t0 = Date.now();
      try {
        await fn();
        if (s.errors.length) throw new Error(`the browser logged errors:\n${s.errors.join('\n')}`);
      } catch (e) {
        console.log(`not ok - ${name}`);
        console.error(e);
        if (s.current) {
          const file = path.join(artifacts, `FAILED-${prefix}.png`);
          await s.current.screenshot({ path: file, fullPage: true }).catch(() => {});
          console.error(`page at failure: ${s.current.url()} (screenshot ${file})`);
        }
        await browser.close().catch(() => {});
        process.exit(1);
      }
      s.passed++;
      console.log(`ok - ${name} (${Date.now() - t0} ms)`);
    },
    async shot(page, name) {
      const file = path.join(artifacts, `${name}.png`);
      await page.screenshot({ path: file, fullPage: true });
      console.log(`  screenshot ${file}`);
    },
    async newPage() {
      const context = await browser.newContext({ baseURL, viewport: { width: 1280, height: 900 } });
      const page = await context.newPage();
      page.setDefaultTimeout(20_000);
      page.on('pageerror', (e) => s.errors.push(`${page.url()}: ${e.message}`));
      page.on('console', (m) => {
        if (m.type() === 'error' && !/Failed to load resource/.test(m.text())) s.errors.push(`${page.url()}: ${m.text()}`);
      });
      s.current = page;
      return page;
    },
  };
  return s;
}

/// Logs `who` ({user, password}) in through the console's login page and waits for home.
export async function login(page, who) {
  await page.goto('/login');
  await page.fill('#username', who.user);
  await page.fill('#password', who.password);
  await page.click('#login-submit');
  await page.waitForURL((u) => u.pathname === '/');
}

/// The Rust test's side of the conversation: `say(tag, obj)` prints `TAG {json}`; `hear(tag)`
/// waits for a stdin line `TAG {json}` (or `TAG`) and returns its object.
export function channel() {
  const lines = createInterface({ input: process.stdin });
  const queue = [];
  const waiters = [];
  lines.on('line', (l) => {
    const w = waiters.shift();
    if (w) w(l); else queue.push(l);
  });
  const next = () => (queue.length ? Promise.resolve(queue.shift()) : new Promise((r) => waiters.push(r)));
  return {
    say(tag, obj = {}) { console.log(`${tag} ${JSON.stringify(obj)}`); },
    async hear(tag) {
      const l = (await next()).trim();
      const [t, ...rest] = l.split(' ');
      if (t !== tag) throw new Error(`expected ${tag} from the test, got ${l}`);
      return rest.length ? JSON.parse(rest.join(' ')) : {};
    },
    close() { lines.close(); },
  };
}

/// Runs in the page: listens to `stream` (a MediaStream) with a WebAudio analyser until
/// `expectHz` clearly dominates `otherHz` (5 reads 100 ms apart, 20 dB above) or `timeoutMs`.
/// Pass it to `page.evaluate` as a string body: `page.evaluate(listenInPage, args)` after
/// `window.__stream` is set.
export async function listenInPage({ expectHz, otherHz, timeoutMs }) {
  const stream = window.__stream;
  if (!stream) throw new Error('no window.__stream to listen to');
  const levelAt = (data, hz, binHz) => {
    const c = Math.round(hz / binHz);
    let best = -Infinity;
    for (let i = Math.max(0, c - 2); i <= Math.min(data.length - 1, c + 2); i++) best = Math.max(best, data[i]);
    return best;
  };
  const ctx = window.__audioCtx ?? new AudioContext();
  window.__audioCtx = ctx;
  await ctx.resume();
  const analyser = ctx.createAnalyser();
  analyser.fftSize = 4096;
  analyser.smoothingTimeConstant = 0;
  const source = ctx.createMediaStreamSource(stream);
  source.connect(analyser);
  const binHz = ctx.sampleRate / analyser.fftSize;
  const data = new Float32Array(analyser.frequencyBinCount);
  const started = performance.now();
  let run = 0, best = { expect: -Infinity, other: -Infinity }, detectedAtMs = null;
  while (performance.now() - started < timeoutMs) {
    await new Promise((r) => setTimeout(r, 100));
    analyser.getFloatFrequencyData(data);
    const e = levelAt(data, expectHz, binHz), o = levelAt(data, otherHz, binHz);
    if (e > best.expect) best = { expect: e, other: o };
    run = (e > -60 && e - o > 20) ? run + 1 : 0;
    if (run >= 5) { detectedAtMs = Math.round(performance.now() - started); break; }
  }
  source.disconnect();
  return { detected: detectedAtMs !== null, detectedAtMs, best };
}
