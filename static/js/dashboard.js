// Levelguard dashboard: the little htmx cannot do without eval (which the
// Content-Security-Policy forbids). Same-origin, no inline code anywhere.
(function () {
  "use strict";

  // Polling pauses while the tab is hidden: a timed refresh of an element
  // marked data-poll is cancelled then; `visibilitychange from:document`
  // refreshes it when the tab comes back.
  document.addEventListener("htmx:beforeRequest", function (event) {
    const elt = event.detail && event.detail.elt;
    if (document.hidden && elt && elt.hasAttribute && elt.hasAttribute("data-poll")) {
      event.preventDefault();
    }
  });

  // Signing out ends the session's event stream on the server; close ours first,
  // so the browser does not report the stream's end as an error.
  document.addEventListener("submit", function (event) {
    const form = event.target;
    if (!form || form.getAttribute("action") !== "/admin/logout" || !globalThis.htmx) return;
    document.querySelectorAll("[sse-connect]").forEach(function (elt) {
      globalThis.htmx.trigger(elt, "htmx:beforeCleanupElement");
    });
  });

  // The gauge animates from the old value: htmx swaps in the new arc with the old offset and
  // sets the new one 20 ms later (settle). CSS only transitions from a value the browser has
  // computed, and a busy page may not render in between: compute it as soon as an arc is
  // inserted, whichever way it came (a swap, out of band, the live stream). A mutation
  // observer runs before the settle's timer can.
  function computeGauge() {
    const arc = document.getElementById("gauge-value");
    if (arc) globalThis.getComputedStyle(arc).strokeDashoffset;
  }
  new MutationObserver(function (records) {
    for (const record of records) {
      if (record.addedNodes.length) return computeGauge();
    }
  }).observe(document.documentElement, { childList: true, subtree: true });

  // A part answered with an error keeps what it showed and says so once.
  document.addEventListener("htmx:responseError", function (event) {
    const status = event.detail && event.detail.xhr ? event.detail.xhr.status : 0;
    const note = document.getElementById("connection-note");
    if (!note) return;
    note.textContent = status === 503
      ? "The database is unavailable; the figures shown may be out of date."
      : "A refresh failed (" + status + "); the figures shown may be out of date.";
    note.hidden = false;
  });
  document.addEventListener("htmx:afterSwap", function () {
    const note = document.getElementById("connection-note");
    if (note) note.hidden = true;
  });
})();
