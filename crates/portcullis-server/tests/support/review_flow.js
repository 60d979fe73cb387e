// The reviewer's console pages in a real browser (Chromium through playwright-core): the
// reviewer (signed in through the API; the session as the browser's cookie) opens Reviews,
// follows an item, removes it with a reason through the form, and sees it recorded; their own
// item offers no form. axe-core (WCAG 2 A and AA) runs on every page, in the light and the
// dark colour scheme; page errors and CSP violations are collected, and pages wider than a
// 320 px viewport (WCAG 1.4.10, which axe does not check) are reported.
// Input in the environment (BASE, CHROMIUM, OUT, REVIEWER_TOKEN, OTHER, OWN); prints one JSON
// line and exits 0, or prints what failed on stderr and exits 1.
const { chromium } = require('playwright-core');
const axeSource = require('axe-core').source;
const fs = require('fs');
const path = require('path');

const env = (k) => {
  const v = process.env[k];
  if (v === undefined || v === '') { throw new Error(`${k} is not set`); }
  return v;
};

const base = env('BASE');
const out = env('OUT');

const result = { violations: [], problems: [], narrow_overflow: [], pages_checked: [], screenshots: [] };

function expect(cond, msg) { if (!cond) { throw new Error(msg); } }

async function axe(page, name) {
  await page.evaluate(axeSource);
  for (const scheme of ['light', 'dark']) {
    await page.emulateMedia({ colorScheme: scheme });
    const violations = await page.evaluate(async () => {
      // eslint-disable-next-line no-undef
      const r = await axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa'] } });
      return r.violations.map((v) => ({
        rule: v.id,
        impact: v.impact,
        help: v.help,
        nodes: v.nodes.map((n) => ({ target: n.target.join(' '), html: n.html })),
      }));
    });
    for (const v of violations) {
      result.violations.push({ page: scheme === 'light' ? name : `${name} (dark)`, url: page.url(), ...v });
    }
  }
  await page.emulateMedia({ colorScheme: 'light' });
  result.pages_checked.push(name);
}

async function narrow(page, name) {
  await page.setViewportSize({ width: 320, height: 640 });
  const wide = await page.evaluate(() => document.documentElement.scrollWidth);
  if (wide > 320) { result.narrow_overflow.push({ page: name, scroll_width: wide }); }
  const file = path.join(out, `${name}-narrow.png`);
  await page.screenshot({ path: file, fullPage: true });
  result.screenshots.push(file);
  await page.setViewportSize({ width: 1280, height: 800 });
}

(async () => {
  fs.mkdirSync(out, { recursive: true });
  const browser = await chromium.launch({ executablePath: env('CHROMIUM'), args: ['--no-sandbox'] });
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 }, colorScheme: 'light' });
  await ctx.addCookies([{ name: 'portcullis_session', value: env('REVIEWER_TOKEN'), url: base }]);
  const page = await ctx.newPage();
  page.setDefaultTimeout(20000);
  page.on('pageerror', (e) => result.problems.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error' && /Content Security Policy/.test(m.text())) { result.problems.push(m.text()); }
  });

  const list = await page.goto(base + '/console/reviews');
  result.list_status = list.status();
  await axe(page, 'reviews');
  await narrow(page, 'reviews');
  result.nav_current = (await page.locator('nav a[aria-current=page]').innerText()).trim();
  const other = page.locator(`tr[data-item="${env('OTHER')}"] a`);
  expect(await other.count() === 1, 'the item to decide is not listed');
  result.listed = (await other.innerText()).trim();

  // The reviewer's own item: listed, but no form.
  const own = page.locator(`tr[data-item="${env('OWN')}"] a`);
  expect(await own.count() === 1, 'the own item is not listed');
  await Promise.all([page.waitForNavigation(), own.click()]);
  await axe(page, 'review item (own)');
  result.own_offers_form = await page.locator('form[action$="/decide"]').count();

  await page.goto(base + '/console/reviews');
  await Promise.all([page.waitForNavigation(), page.locator(`tr[data-item="${env('OTHER')}"] a`).click()]);
  await axe(page, 'review item');
  await narrow(page, 'review-item');
  await page.fill('textarea#reason', 'left the audit team in June');
  await Promise.all([page.waitForNavigation(), page.click('button[value=remove]')]);
  result.after_url = new URL(page.url()).pathname + new URL(page.url()).search;
  const status = page.locator('p[role=status].done');
  result.done = (await status.count()) ? (await status.first().innerText()).trim() : null;
  result.decision = await page.locator('dd[data-decision]').getAttribute('data-decision');
  result.form_after = await page.locator('form[action$="/decide"]').count();
  await axe(page, 'review item (decided)');

  await browser.close();
  console.log(JSON.stringify(result));
})().catch((e) => {
  console.error('review flow failed:', e.stack || e.message);
  if (result.problems.length) { console.error('page problems:', result.problems.join('; ')); }
  process.exit(1);
});
