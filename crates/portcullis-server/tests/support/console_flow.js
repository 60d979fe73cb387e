// The web console in a real browser (Chromium through playwright-core), three people, each in
// their own browser context with their own CDP virtual authenticator:
// - alice (password + security key) requests a role: over the maximum, without justification
//   (both refused on the page), then properly; tries to approve her own request with a crafted
//   form (refused on the page); a page of another origin posts a form to the console (refused);
// - bob (password + TOTP) approves from his inbox; the role needs a security key, so the
//   console sends him to the step-up page, he uses his key and approves again;
// - alice sees the role active with time counting down, and deactivates it;
// - carol (audit-reader) filters the audit log by action and actor and opens an event.
// axe-core (WCAG 2 A and AA) runs on every page visited; screenshots at 1280x800 and 320x640
// go to OUT; page errors and CSP violations are collected.
// Input in the environment; prints one JSON line (see `result` below) and exits 0, or prints
// what failed on stderr and exits 1.
const { chromium } = require('playwright-core');
const axeSource = require('axe-core').source;
const crypto = require('crypto');
const fs = require('fs');
const http = require('http');
const path = require('path');

const env = (k) => {
  const v = process.env[k];
  if (v === undefined || v === '') { throw new Error(`${k} is not set`); }
  return v;
};

const base = env('BASE');
const out = env('OUT');
const role = env('ROLE');
const eligibility = `${role} /`;
const DESKTOP = { width: 1280, height: 800 };
const NARROW = { width: 320, height: 640 };

// RFC 6238: HMAC-SHA-1, 30 s steps, 6 digits; `offset` steps from now.
function totp(hex, offset) {
  const step = Math.floor(Date.now() / 1000 / 30) + offset;
  const msg = Buffer.alloc(8);
  msg.writeBigUInt64BE(BigInt(step));
  const h = crypto.createHmac('sha1', Buffer.from(hex, 'hex')).update(msg).digest();
  const o = h[h.length - 1] & 0xf;
  return String((h.readUInt32BE(o) & 0x7fffffff) % 1000000).padStart(6, '0');
}

const result = {
  violations: [],
  problems: [],
  screenshots: [],
  // Pages wider than the 320 px viewport (WCAG 1.4.10, reflow): what axe does not check.
  narrow_overflow: [],
  pages_checked: [],
};

function fail(msg) { throw new Error(msg); }

function expect(cond, msg) { if (!cond) { fail(msg); } }

// axe-core on the page as it is now, in the light and the dark colour scheme (the stylesheet
// has both). CDP evaluation is not subject to the page's CSP.
async function axe(page, name) {
  await page.evaluate(axeSource);
  for (const scheme of ['light', 'dark']) {
    await page.emulateMedia({ colorScheme: scheme });
    await axeNow(page, scheme === 'light' ? name : `${name} (dark)`);
  }
  await page.emulateMedia({ colorScheme: 'light' });
  result.pages_checked.push(name);
}

async function axeNow(page, name) {
  const violations = await page.evaluate(async () => {
    // eslint-disable-next-line no-undef
    const r = await axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa'] } });
    return r.violations.map((v) => ({
      rule: v.id,
      impact: v.impact,
      help: v.help,
      nodes: v.nodes.map((n) => ({ target: n.target.join(' '), html: n.html, summary: n.failureSummary })),
    }));
  });
  for (const v of violations) { result.violations.push({ page: name, url: page.url(), ...v }); }
}

// Full-page screenshots at both widths (the page is left at the desktop width).
async function shoot(page, name) {
  for (const [label, size] of [['desktop', DESKTOP], ['narrow', NARROW]]) {
    await page.setViewportSize(size);
    if (label === 'narrow') {
      const wide = await page.evaluate(() => document.documentElement.scrollWidth);
      if (wide > size.width) { result.narrow_overflow.push({ page: name, scroll_width: wide }); }
    }
    const file = path.join(out, `${name}-${label}.png`);
    await page.screenshot({ path: file, fullPage: true });
    result.screenshots.push(file);
  }
  await page.setViewportSize(DESKTOP);
}

async function person(browser, name) {
  const ctx = await browser.newContext({ viewport: DESKTOP, colorScheme: 'light' });
  const page = await ctx.newPage();
  page.setDefaultTimeout(20000);
  page.on('pageerror', (e) => result.problems.push(`${name}: page error: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error' && /Content Security Policy/.test(m.text())) {
      result.problems.push(`${name}: ${m.text()}`);
    }
  });
  const cdp = await ctx.newCDPSession(page);
  await cdp.send('WebAuthn.enable');
  await cdp.send('WebAuthn.addVirtualAuthenticator', {
    options: {
      protocol: 'ctap2', transport: 'usb', hasResidentKey: true, hasUserVerification: true,
      isUserVerified: true, automaticPresenceSimulation: true,
    },
  });
  return { ctx, page, name };
}

// Registers a security key through the API, from a page of the server's origin without a CSP.
async function registerKey(page, token) {
  await page.goto(base + '/healthz');
  const status = await page.evaluate(async (t) => {
    const dec = (s) => Uint8Array.from(atob(s.replace(/-/g, '+').replace(/_/g, '/') + '==='.slice((s.length + 3) % 4)), (c) => c.charCodeAt(0)).buffer;
    const enc = (b) => btoa(String.fromCharCode(...new Uint8Array(b))).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
    const headers = { 'content-type': 'application/json', authorization: 'Bearer ' + t };
    let r = await fetch('/api/v1/me/mfa/webauthn', { method: 'POST', headers, body: JSON.stringify({ name: 'browser-key' }) });
    if (r.status !== 201 && r.status !== 200) { return `start ${r.status} ${await r.text()}`; }
    const c = await r.json();
    const pk = c.options.publicKey;
    pk.challenge = dec(pk.challenge);
    pk.user.id = dec(pk.user.id);
    (pk.excludeCredentials || []).forEach((x) => { x.id = dec(x.id); });
    const cred = await navigator.credentials.create({ publicKey: pk });
    const credential = {
      id: cred.id, rawId: enc(cred.rawId), type: cred.type, extensions: cred.getClientExtensionResults(),
      response: { attestationObject: enc(cred.response.attestationObject), clientDataJSON: enc(cred.response.clientDataJSON) },
    };
    r = await fetch('/api/v1/me/mfa/webauthn/finish', { method: 'POST', headers, body: JSON.stringify({ ceremony_id: c.ceremony_id, credential }) });
    return r.status === 201 ? 'ok' : `finish ${r.status} ${await r.text()}`;
  }, token);
  expect(status === 'ok', `key registration: ${status}`);
}

// From /console through the sign-in pages and back; `second` answers the second-factor page.
async function signIn(p, user, password, second) {
  const { page } = p;
  await page.goto(base + '/console');
  const u = new URL(page.url());
  expect(u.pathname === '/signin' && u.searchParams.get('return_to') === '/console',
    `${user}: /console without a session went to ${page.url()}`);
  await axe(page, 'signin');
  if (user === 'alice') { await shoot(page, 'signin'); }
  await page.fill('input[name=username]', user);
  await page.fill('input[name=password]', password);
  await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
  await axe(page, 'second-factor');
  await second(page);
  await page.waitForURL((x) => x.pathname === '/console', { timeout: 20000 });
  expect(await page.locator('h1').innerText() === 'My access', `${user}: not on My access after sign-in`);
}

async function withKey(page) {
  expect(await page.locator('form#webauthn').count() === 1, 'no security-key form on the second-factor page');
  await page.click('#webauthn button');
}

const withCode = (hex) => async (page) => {
  await page.fill('input[name=code]', totp(hex, 1));
  await page.click('form:has(input[name=code]) button[type=submit]');
};

async function alertText(page) {
  const a = page.locator('p[role=alert]');
  return (await a.count()) ? (await a.first().innerText()).trim() : null;
}

async function statusText(page) {
  const a = page.locator('p[role=status].done');
  return (await a.count()) ? (await a.first().innerText()).trim() : null;
}

// Fills and sends the request form on My access; the response's status.
async function requestRole(page, minutes, justification, ticket) {
  await page.selectOption('select#role', eligibility);
  await page.fill('input#minutes', String(minutes));
  await page.fill('textarea#justification', justification);
  await page.fill('input#ticket', ticket);
  const [resp] = await Promise.all([
    page.waitForNavigation(),
    page.click('form[action="/console/requests"] button[type=submit]:has-text("Request")'),
  ]);
  return resp.status();
}

// A page on another origin (a different port of 127.0.0.1, so also another site) whose form
// posts to the console, with the victim's real CSRF token even.
function evilServer(csrf) {
  const esc = (s) => s.replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;');
  const html = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Win a prize</title></head><body>
<form method="post" action="${esc(base)}/console/requests">
<input type="hidden" name="csrf" value="${esc(csrf)}">
<input type="hidden" name="eligibility" value="${esc(eligibility)}">
<input type="hidden" name="minutes" value="30">
<input type="hidden" name="justification" value="forged elsewhere">
<button type="submit">Claim</button></form></body></html>`;
  const server = http.createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end(html);
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

(async () => {
  fs.mkdirSync(out, { recursive: true });
  const browser = await chromium.launch({ executablePath: env('CHROMIUM'), args: ['--no-sandbox'] });
  const password = env('PASSWORD');
  const alice = await person(browser, 'alice');
  const bob = await person(browser, 'bob');
  const carol = await person(browser, 'carol');
  await registerKey(alice.page, env('ALICE_TOKEN'));
  await registerKey(bob.page, env('BOB_TOKEN'));

  // Alice: password and security key.
  await signIn(alice, 'alice', password, withKey);
  const a = alice.page;
  await axe(a, 'console');
  await shoot(a, 'access-empty');

  // Over the maximum: refused on the page, what was typed kept.
  result.over_max_status = await requestRole(a, 600, 'quarterly access review', 'SEC-41');
  result.over_max_alert = await alertText(a);
  expect(result.over_max_alert, 'no alert for a request over the maximum');
  expect(await a.inputValue('textarea#justification') === 'quarterly access review', 'the justification was not kept');
  await axe(a, 'console (refused request)');
  await shoot(a, 'access-refused');

  // Without justification: refused on the page.
  result.no_justification_status = await requestRole(a, 30, '', '');
  result.no_justification_alert = await alertText(a);
  expect(result.no_justification_alert, 'no alert for a request without justification');

  // The real request.
  await requestRole(a, 30, 'reviewing alerts', 'SEC-42');
  expect(new URL(a.url()).search === '?done=requested', `after requesting: ${a.url()}`);
  result.requested = await statusText(a);
  expect(result.requested && result.requested.startsWith('Your request is in'), `after requesting: ${result.requested}`);
  const link = a.locator('a[href^="/console/requests/"]').first();
  const href = await link.getAttribute('href');
  const id = href.split('/').pop();
  result.request_id = id;

  // Her own request: no decision form; a crafted one is refused on the page.
  await a.goto(base + href);
  await axe(a, 'request (requester)');
  result.own_request_offers_decision = (await a.locator('button[value=approve]').count()) > 0;
  const [selfResp] = await Promise.all([
    a.waitForNavigation(),
    a.evaluate((rid) => {
      const f = document.createElement('form');
      f.method = 'post';
      f.action = `/console/requests/${rid}/decide`;
      const add = (n, v) => {
        const i = document.createElement('input');
        i.type = 'hidden'; i.name = n; i.value = v; f.appendChild(i);
      };
      add('csrf', document.querySelector('input[name=csrf]').value);
      add('decision', 'approve');
      add('reason', 'approving my own');
      document.body.appendChild(f);
      f.submit();
    }, id),
  ]);
  result.self_approval_status = selfResp.status();
  result.self_approval_alert = await alertText(a);
  expect(result.self_approval_alert, 'no alert for a self-approval');
  await axe(a, 'request (self-approval refused)');

  // A form on another site: refused before anything runs.
  await a.goto(base + '/console');
  const csrf = await a.inputValue('input[name=csrf] >> nth=0');
  const evil = await evilServer(csrf);
  const evilPage = await alice.ctx.newPage();
  evilPage.setDefaultTimeout(20000);
  await evilPage.goto(`http://127.0.0.1:${evil.address().port}/`);
  const [crossResp] = await Promise.all([evilPage.waitForNavigation(), evilPage.click('button')]);
  result.cross_site_status = crossResp.status();
  result.cross_site_text = (await evilPage.locator('body').innerText()).trim();
  await evilPage.close();
  evil.close();

  // Bob: password and TOTP (strength mfa); his inbox; the request; approve.
  await signIn(bob, 'bob', password, withCode(env('BOB_TOTP')));
  const b = bob.page;
  await b.goto(base + '/console/approvals');
  await axe(b, 'approvals');
  await shoot(b, 'approvals');
  const row = b.locator(`a[href="/console/requests/${id}"]`);
  expect(await row.count() === 1, 'the request is not in the approver\'s inbox');
  result.inbox_requester = (await row.innerText()).trim();
  await Promise.all([b.waitForNavigation(), row.click()]);
  await axe(b, 'request (approver)');
  await shoot(b, 'request');
  await b.fill('textarea#reason', 'alert triage this afternoon');
  await Promise.all([b.waitForNavigation(), b.click('button[value=approve]')]);
  const reauth = new URL(b.url());
  result.step_up_url = reauth.pathname + reauth.search;
  expect(reauth.pathname === '/console/reauth' && reauth.searchParams.get('why') === 'stronger'
    && reauth.searchParams.get('return_to') === `/console/requests/${id}`,
  `approving with an mfa session went to ${b.url()}`);
  await axe(b, 'reauth');
  await shoot(b, 'reauth');
  await b.click('#webauthn button');
  await b.waitForURL((x) => x.pathname === `/console/requests/${id}` && x.searchParams.get('done') === 'reauthenticated');
  result.reauthenticated = await statusText(b);
  result.strength_after_step_up = (await b.locator('.who .badge').innerText()).trim();
  await b.fill('textarea#reason', 'alert triage this afternoon');
  await Promise.all([b.waitForNavigation(), b.click('button[value=approve]')]);
  expect(new URL(b.url()).searchParams.get('done') === 'approved', `after approving: ${b.url()}`);
  result.approved = await statusText(b);
  await axe(b, 'request (approved)');

  // Alice: the role is active, its time left counting down; she deactivates it.
  await a.goto(base + '/console');
  const left = a.locator('[data-ends-at]');
  expect(await left.count() === 1, 'no active role with an end time on My access');
  const first = (await left.innerText()).trim();
  await a.waitForTimeout(1100);
  const second = (await left.innerText()).trim();
  result.time_left = [first, second];
  await axe(a, 'console (active role)');
  await shoot(a, 'access-active');
  const deactivate = a.locator(`button:has-text("Deactivate ${role}")`);
  expect(await deactivate.count() === 1, 'no Deactivate button');
  await Promise.all([a.waitForNavigation(), deactivate.click()]);
  result.deactivated = await statusText(a);
  result.still_active = await a.locator('[data-ends-at]').count();
  result.deactivate_buttons_after = await a.locator('button:has-text("Deactivate")').count();

  // Carol: the audit log, filtered by action and actor, and one event.
  await signIn(carol, 'carol', password, withCode(env('CAROL_TOTP')));
  const c = carol.page;
  const auditResp = await c.goto(base + '/console/audit');
  result.audit = { status: auditResp.status() };
  if (auditResp.status() === 200) {
    await axe(c, 'audit');
    await c.fill('input[name=action]', 'request.approved');
    await Promise.all([c.waitForNavigation(), c.click('button:has-text("Filter")')]);
    result.audit.rows_by_action = await c.locator('table tr[data-seq]').count();
    await c.fill('input[name=actor]', 'user:bob');
    await Promise.all([c.waitForNavigation(), c.click('button:has-text("Filter")')]);
    const rows = c.locator('table tr[data-seq]');
    result.audit.rows_by_action_and_actor = await rows.count();
    result.audit.query = new URL(c.url()).search;
    result.audit.first_row = result.audit.rows_by_action_and_actor ? (await rows.first().innerText()).trim() : null;
    await axe(c, 'audit (filtered)');
    await shoot(c, 'audit');
    if (result.audit.rows_by_action_and_actor) {
      const ev = rows.first().locator('a[href^="/console/audit/"]').first();
      const evHref = await ev.getAttribute('href');
      const [evResp] = await Promise.all([c.waitForNavigation(), ev.click()]);
      result.audit.event_status = evResp.status();
      result.audit.event_path = evHref;
      result.audit.event_text = (await c.locator('main').innerText()).trim();
      await axe(c, 'audit event');
      await shoot(c, 'audit-event');
    }
  }

  // The administrator (signed in through the API; the session as the browser's cookie): the
  // administration, break-glass and alert pages, each checked by axe.
  const admin = await person(browser, 'admin');
  await admin.ctx.addCookies([{ name: 'portcullis_session', value: env('ADMIN_TOKEN'), url: base }]);
  result.admin_pages = {};
  for (const [name, path] of [
    ['admin users', '/console/admin/users'],
    ['admin assignments', '/console/admin/assignments'],
    ['admin roles', '/console/admin/roles'],
    ['admin role', '/console/admin/roles/' + env('ROLE')],
    ['admin policies (what-if)', '/console/admin/policies?user=alice&ip=203.0.113.7&app=api&strength='],
    ['break-glass', '/console/breakglass'],
    ['alerts', '/console/alerts'],
  ]) {
    const resp = await admin.page.goto(base + path);
    result.admin_pages[name] = resp.status();
    if (resp.status() === 200) {
      await axe(admin.page, name);
    }
  }
  await shoot(admin.page, 'alerts');

  await browser.close();
  console.log(JSON.stringify(result));
})().catch((e) => {
  console.error('console flow failed:', e.stack || e.message);
  if (result.problems.length) { console.error('page problems:', result.problems.join('; ')); }
  process.exit(1);
});
