// Portcullis console: small progressive enhancements only; every page works without this.
// Served from this server (the pages' CSP allows scripts from 'self' only, never inline).
// - Elements with data-ends-at (RFC 3339) show the time left, counting down each second.
(function () {
  "use strict";
  var items = document.querySelectorAll("[data-ends-at]");
  if (!items.length) { return; }
  function left(ms) {
    if (ms <= 0) { return "ended"; }
    var s = Math.floor(ms / 1000), h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
    s = s % 60;
    var pad = function (n) { return (n < 10 ? "0" : "") + n; };
    return (h > 0 ? h + " h " + pad(m) + " min " : m + " min ") + pad(s) + " s left";
  }
  function tick() {
    var now = Date.now();
    for (var i = 0; i < items.length; i++) {
      var end = Date.parse(items[i].getAttribute("data-ends-at"));
      if (!isNaN(end)) { items[i].textContent = left(end - now); }
    }
  }
  tick();
  setInterval(tick, 1000);
})();
