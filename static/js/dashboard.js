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

  // The gauge animates from the value it showed to the new one, whichever way the new arc came
  // (a swap, out of band, the live stream; htmx settles the offset only on some of them): a new
  // arc is put back at the shown offset, the browser computes that, then it gets its own, and
  // CSS transitions between the two (0 s under prefers-reduced-motion). A mutation observer runs
  // before htmx's settle timer, so an arc htmx settles is computed at its old value too.
  let shownArc = null;
  let shownOffset = null;
  function syncGauge() {
    const arc = document.getElementById("gauge-value");
    if (!arc) return;
    const offset = arc.getAttribute("stroke-dashoffset");
    if (arc !== shownArc && shownOffset !== null && offset !== shownOffset) {
      arc.setAttribute("stroke-dashoffset", shownOffset);
      globalThis.getComputedStyle(arc).strokeDashoffset;
      arc.setAttribute("stroke-dashoffset", offset);
    } else {
      globalThis.getComputedStyle(arc).strokeDashoffset;
    }
    shownArc = arc;
    shownOffset = offset;
  }
  new MutationObserver(syncGauge).observe(document.documentElement, {
    childList: true,
    subtree: true,
    attributes: true,
    attributeFilter: ["stroke-dashoffset"],
  });
  document.addEventListener("DOMContentLoaded", syncGauge);

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
