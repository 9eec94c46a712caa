// The browser softphone against the real appliance: Debian's chromium (playwright-core, no browser
// download) loads tests/console/softphone.html at the appliance's origin (served by a Playwright
// route, so the page's API calls are same-origin and carry the session cookie), captures
// FAKE_AUDIO as its microphone and becomes the agent's nailed-up phone through the softphone
// gateway. Driven by tests/softphone_browser.rs over stdin/stdout:
//
//   BASE_URL    http://127.0.0.1:PORT of the appliance
//   USERNAME / PASSWORD  the agent's console login
//   FAKE_AUDIO  a WAV file the browser uses as its microphone (looped)
//   EXPECT_HZ   the tone the page must hear; OTHER_HZ a tone it must hear much less of
//   TIMEOUT_MS  how long the page listens (default 30000)
//
// Prints `READY {json}` once the agent is logged in nailed-up, `HEARD {json}` after listening,
// then reads stdin: `RELOGIN` logs the agent out and in again (prints `RELOGGED {json}`), `HANGUP`
// closes the leg and prints `RESULT {json}`.
// Exits 0 when the page heard EXPECT_HZ and every step succeeded, 1 otherwise.
import { launch } from './lib.mjs';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';

const env = (k, d) => {
  const v = process.env[k] ?? d;
  if (v === undefined) throw new Error(`set ${k}`);
  return v;
};
const BASE_URL = env('BASE_URL').replace(/\/$/, '');
const PAGE = `${BASE_URL}/__softphone_test.html`;
const html = readFileSync(new URL('./softphone.html', import.meta.url), 'utf8');

const lines = createInterface({ input: process.stdin });
const nextLine = () => new Promise((resolve) => lines.once('line', resolve));

const browser = await launch({ fakeAudio: env('FAKE_AUDIO') });
let code = 1;
try {
  const page = await browser.newPage();
  page.on('console', (m) => console.error(`[page] ${m.text()}`));
  await page.route(PAGE, (route) => route.fulfill({ status: 200, contentType: 'text/html', body: html }));
  await page.goto(PAGE);
  const ready = await page.evaluate((p) => window.softphoneStart(p), { username: env('USERNAME'), password: env('PASSWORD') });
  console.log(`READY ${JSON.stringify(ready)}`);
  const heard = await page.evaluate((p) => window.softphoneListen(p), {
    expectHz: Number(env('EXPECT_HZ')),
    otherHz: Number(env('OTHER_HZ')),
    timeoutMs: Number(env('TIMEOUT_MS', '30000')),
  });
  console.log(`HEARD ${JSON.stringify(heard)}`);
  for (;;) {
    const l = (await nextLine()).trim();
    if (l === 'HANGUP') break;
    if (l === 'RELOGIN') {
      const r = await page.evaluate((p) => window.softphoneRelogin(p), { endpoint: ready.endpoint });
      console.log(`RELOGGED ${JSON.stringify(r)}`);
    }
  }
  const end = await page.evaluate(() => window.softphoneEnd());
  console.log(`RESULT ${JSON.stringify({ ...end, detected: heard.detected })}`);
  code = heard.detected && end.deleteStatus === 204 ? 0 : 1;
} catch (e) {
  console.log(`RESULT ${JSON.stringify({ error: String(e) })}`);
} finally {
  lines.close();
  await browser.close();
}
process.exit(code);
