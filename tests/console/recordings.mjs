// The Recordings page in Debian's chromium (playwright-core, no browser download), driven by
// tests/recordings.rs: a supervisor logs in, searches by number, plays the recording in the
// page's <audio controls> (the browser fetches it in ranges) and the page is photographed.
//
//   BASE_URL   http://127.0.0.1:PORT of the appliance
//   USERNAME / PASSWORD  a supervisor's console login
//   NUMBER     the caller's number to search for
//   SCREENSHOT where the PNG goes
//
// Prints `RESULT {json}` (rows found, the audio's duration and how far it played) and exits 0
// when the recording played, 1 otherwise.
import { chromium } from 'playwright-core';

const env = (k) => {
  const v = process.env[k];
  if (v === undefined) throw new Error(`set ${k}`);
  return v;
};
const BASE_URL = env('BASE_URL').replace(/\/$/, '');

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--autoplay-policy=no-user-gesture-required'],
});
let code = 1;
const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
try {
  page.on('console', (m) => console.error(`[page] ${m.text()}`));
  await page.goto(`${BASE_URL}/login`);
  await page.fill('#username', env('USERNAME'));
  await page.fill('#password', env('PASSWORD'));
  await Promise.all([page.waitForURL((u) => !u.pathname.startsWith('/login')), page.click('#login-submit')]);
  await page.goto(`${BASE_URL}/recordings`);
  await page.fill('#r-number', env('NUMBER'));
  await page.click('#r-search');
  const row = page.locator('#recordings tbody tr[data-contact]').first();
  await row.waitFor({ timeout: 10000 });
  const rows = await page.locator('#recordings tbody tr[data-contact]').count();
  await row.locator('button[data-play]').click();
  // Loaded (its length known) and playing: the position moves.
  await page.waitForFunction(() => {
    const a = document.getElementById('player-audio');
    return a.readyState >= 2 && a.duration > 1 && a.currentTime > 0.5;
  }, null, { timeout: 15000 });
  const audio = await page.evaluate(() => {
    const a = document.getElementById('player-audio');
    return { duration: a.duration, currentTime: a.currentTime, error: a.error?.message ?? null };
  });
  const download = await page.getAttribute('#player-download', 'href');
  await page.screenshot({ path: env('SCREENSHOT'), fullPage: true });
  console.log(`RESULT ${JSON.stringify({ rows, ...audio, download })}`);
  code = 0;
} catch (e) {
  console.error(`recordings page: ${e.stack || e}`);
  await page.screenshot({ path: env('SCREENSHOT'), fullPage: true }).catch(() => {});
} finally {
  await browser.close();
}
process.exit(code);
