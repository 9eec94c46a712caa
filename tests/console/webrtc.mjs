// The softphone's media in a real browser: Debian's chromium (driven by playwright-core, no browser
// download) opens the page served by telephony/tests/webrtc_browser.rs, captures FAKE_AUDIO as its
// microphone, negotiates WebRTC audio with the appliance on loopback and analyses what it hears.
//
//   PAGE_URL    http://127.0.0.1:PORT/ of the test's page server
//   FAKE_AUDIO  a WAV file the browser uses as its microphone (looped)
//   EXPECT_HZ   the tone the page must hear; OTHER_HZ a tone it must hear much less of
//   TIMEOUT_MS  how long the page listens (default 15000)
//
// Prints one line `RESULT {json}` and exits 0 when the page heard EXPECT_HZ, 1 otherwise.
import { launch } from './lib.mjs';

const env = (k, d) => {
  const v = process.env[k] ?? d;
  if (v === undefined) throw new Error(`set ${k}`);
  return v;
};
const PAGE_URL = env('PAGE_URL');
const FAKE_AUDIO = env('FAKE_AUDIO');

// The recipe (see telephony/src/webrtc/mod.rs): loopback ICE candidates, a fake microphone fed
// from a file, no permission prompt, audio without a user gesture.
const browser = await launch({ fakeAudio: FAKE_AUDIO });
let code = 1;
try {
  const page = await browser.newPage();
  page.on('console', (m) => console.error(`[page] ${m.text()}`));
  await page.goto(PAGE_URL);
  const result = await page.evaluate((p) => window.softphoneTest(p), {
    expectHz: Number(env('EXPECT_HZ')),
    otherHz: Number(env('OTHER_HZ')),
    timeoutMs: Number(env('TIMEOUT_MS', '15000')),
  });
  console.log(`RESULT ${JSON.stringify(result)}`);
  code = result.detected ? 0 : 1;
} catch (e) {
  console.log(`RESULT ${JSON.stringify({ error: String(e) })}`);
} finally {
  await browser.close();
}
process.exit(code);
