// A real browser (Chromium through playwright-core, with a CDP virtual authenticator) signs in
// to a relying party: it registers a security key through the API, then follows an
// authorization request through the sign-in page (password, then the key via the page's own
// webauthn.js under its CSP) and the consent page, to the client's redirect URI.
// Input in the environment; prints one JSON line {"redirect": URL} and exits 0, or exits 1.
const { chromium } = require('playwright-core');

const env = (k) => {
  const v = process.env[k];
  if (!v) { throw new Error(`${k} is not set`); }
  return v;
};

(async () => {
  const base = env('BASE');
  const browser = await chromium.launch({ executablePath: env('CHROMIUM'), args: ['--no-sandbox'] });
  const ctx = await browser.newContext();
  const page = await ctx.newPage();
  const problems = [];
  page.on('pageerror', (e) => problems.push(e.message));
  page.on('console', (m) => { if (m.type() === 'error' && /Content Security Policy/.test(m.text())) problems.push(m.text()); });
  const cdp = await ctx.newCDPSession(page);
  await cdp.send('WebAuthn.enable');
  await cdp.send('WebAuthn.addVirtualAuthenticator', {
    options: {
      protocol: 'ctap2', transport: 'usb', hasResidentKey: true, hasUserVerification: true,
      isUserVerified: true, automaticPresenceSimulation: true,
    },
  });

  // Register the key through the API, from a page of the server's origin without a CSP.
  await page.goto(base + '/healthz');
  const registered = await page.evaluate(async (token) => {
    const dec = (s) => Uint8Array.from(atob(s.replace(/-/g, '+').replace(/_/g, '/') + '==='.slice((s.length + 3) % 4)), (c) => c.charCodeAt(0)).buffer;
    const enc = (b) => btoa(String.fromCharCode(...new Uint8Array(b))).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
    const headers = { 'content-type': 'application/json', authorization: 'Bearer ' + token };
    let r = await fetch('/api/v1/me/mfa/webauthn', { method: 'POST', headers, body: JSON.stringify({ name: 'browser-key' }) });
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
    return r.status;
  }, env('REG_TOKEN'));
  if (registered !== 201) { throw new Error(`key registration answered ${registered}`); }

  // The relying party's authorization request, through the pages.
  await page.goto(env('AUTHORIZE_URL'));
  await page.fill('input[name=username]', env('USERNAME'));
  await page.fill('input[name=password]', env('PASSWORD'));
  await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
  await Promise.all([page.waitForNavigation({ timeout: 20000 }), page.click('#webauthn button')]);
  const redirect = page.waitForRequest((r) => r.url().startsWith(env('REDIRECT_URI')), { timeout: 20000 });
  await page.click('button[value=allow]').catch(() => {});
  const url = (await redirect).url();
  await browser.close();
  if (problems.length) { throw new Error('page problems: ' + problems.join('; ')); }
  console.log(JSON.stringify({ redirect: url }));
})().catch((e) => {
  console.error('browser flow failed:', e.message);
  process.exit(1);
});
