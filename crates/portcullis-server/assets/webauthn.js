// Portcullis sign-in: the security-key step. Served from this server (the pages' CSP allows
// scripts from 'self' only, never inline). It asks the browser for an assertion over the
// challenge the server put in the form, and submits the form with it; the server verifies.
(function () {
  "use strict";
  var form = document.getElementById("webauthn");
  if (!form) { return; }
  var status = document.getElementById("webauthn-status");
  if (!window.PublicKeyCredential) {
    status.textContent = "This browser cannot use security keys.";
    return;
  }
  function decode(s) {
    var b = atob(s.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((s.length + 3) % 4));
    var out = new Uint8Array(b.length);
    for (var i = 0; i < b.length; i++) { out[i] = b.charCodeAt(i); }
    return out.buffer;
  }
  function encode(buf) {
    var bytes = new Uint8Array(buf), s = "";
    for (var i = 0; i < bytes.length; i++) { s += String.fromCharCode(bytes[i]); }
    return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }
  form.addEventListener("submit", function (e) {
    e.preventDefault();
    var opts = JSON.parse(form.elements.options.value).publicKey;
    opts.challenge = decode(opts.challenge);
    (opts.allowCredentials || []).forEach(function (c) { c.id = decode(c.id); });
    navigator.credentials.get({ publicKey: opts }).then(function (cred) {
      var r = cred.response;
      form.elements.credential.value = JSON.stringify({
        id: cred.id,
        rawId: encode(cred.rawId),
        type: cred.type,
        extensions: cred.getClientExtensionResults(),
        response: {
          authenticatorData: encode(r.authenticatorData),
          clientDataJSON: encode(r.clientDataJSON),
          signature: encode(r.signature),
          userHandle: r.userHandle ? encode(r.userHandle) : null
        }
      });
      form.submit();
    }, function (err) {
      status.textContent = "The security key did not answer (" + err.name + "). Try again.";
    });
  });
})();
