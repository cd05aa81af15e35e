// Page-wide behaviour: the small-screen menu, the current page in the nav, times shown in the
// reader's own time zone, selects that submit on change, and htmx swapping rejected forms (422).
(function () {
  "use strict";

  function setMenu(button, panel, open) {
    button.setAttribute("aria-expanded", open ? "true" : "false");
    panel.classList.toggle("is-open", open);
  }

  function initMenu() {
    var button = document.querySelector("[data-menu-toggle]");
    var panel = document.getElementById("nav-panel");
    if (!button || !panel) return;
    button.addEventListener("click", function () {
      var open = button.getAttribute("aria-expanded") !== "true";
      setMenu(button, panel, open);
      if (open) {
        var first = panel.querySelector("a, button, select");
        if (first) first.focus();
      }
    });
    document.addEventListener("keydown", function (event) {
      if (event.key === "Escape" && button.getAttribute("aria-expanded") === "true") {
        setMenu(button, panel, false);
        button.focus();
      }
    });
    // Following an in-page link (the landing's sections) closes the menu.
    panel.addEventListener("click", function (event) {
      if (event.target.closest("a")) setMenu(button, panel, false);
    });
  }

  function markCurrentPage() {
    var path = location.pathname;
    var best = null;
    var links = document.querySelectorAll("#nav-panel a.nav-link");
    for (var i = 0; i < links.length; i++) {
      var url = new URL(links[i].href, location.href);
      if (url.hash || url.origin !== location.origin) continue;
      if (path === url.pathname || (url.pathname !== "/" && path.indexOf(url.pathname) === 0)) {
        if (!best || url.pathname.length > new URL(best.href).pathname.length) best = links[i];
      }
    }
    if (best) best.setAttribute("aria-current", "page");
  }

  // <time datetime="…" data-local-time> shows the server's UTC text until this runs.
  function localTimes(root) {
    var nodes = (root || document).querySelectorAll("time[data-local-time]");
    for (var i = 0; i < nodes.length; i++) {
      var when = new Date(nodes[i].getAttribute("datetime"));
      if (isNaN(when.getTime())) continue;
      nodes[i].textContent = formatLocal(when);
      nodes[i].title = when.toUTCString();
    }
  }

  function formatLocal(when) {
    var now = new Date();
    var sameDay = when.toDateString() === now.toDateString();
    var tomorrow = new Date(now.getFullYear(), now.getMonth(), now.getDate() + 1).toDateString() === when.toDateString();
    var time = when.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    if (sameDay) return "today at " + time;
    if (tomorrow) return "tomorrow at " + time;
    return when.toLocaleDateString([], { day: "numeric", month: "short" }) + " at " + time;
  }
  window.dacFormatLocal = formatLocal;

  // <time datetime="…" data-relative-time>: "just now", "5 minutes ago", "yesterday"…
  function relativeTimes(root) {
    if (!window.Intl || !Intl.RelativeTimeFormat) return;
    var format = new Intl.RelativeTimeFormat([], { numeric: "auto" });
    var steps = [["year", 31536000], ["month", 2592000], ["week", 604800], ["day", 86400], ["hour", 3600], ["minute", 60]];
    var nodes = (root || document).querySelectorAll("time[data-relative-time]");
    for (var i = 0; i < nodes.length; i++) {
      var when = new Date(nodes[i].getAttribute("datetime"));
      if (isNaN(when.getTime())) continue;
      var seconds = (when.getTime() - Date.now()) / 1000;
      var text = "just now";
      for (var j = 0; j < steps.length; j++) {
        if (Math.abs(seconds) >= steps[j][1]) { text = format.format(Math.round(seconds / steps[j][1]), steps[j][0]); break; }
      }
      nodes[i].textContent = text;
      nodes[i].title = when.toLocaleString();
    }
  }

  // A form the server rejects comes back as 422 with the form re-rendered around its errors
  // (providers' key form). htmx 2 swaps no 4xx by default, so the errors would never show;
  // swap 422 alone, and not as an error: other 4xx (a 404 page, a CSRF 403, a 400) still don't
  // land inside a card. This script runs after htmx (both deferred, htmx first).
  if (window.htmx) {
    window.htmx.config.responseHandling.unshift({ code: "422", swap: true });
  }

  document.addEventListener("change", function (event) {
    var select = event.target.closest && event.target.closest("select[data-autosubmit]");
    if (select && select.form) select.form.submit();
  });

  // Forms that destroy something ask first (no inline handlers: the CSP allows no inline script).
  // htmx forms use hx-confirm instead, so they are left alone here.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var question = form.getAttribute && form.getAttribute("data-confirm");
    if (question && !form.hasAttribute("hx-post") && !window.confirm(question)) event.preventDefault();
  });

  document.addEventListener("DOMContentLoaded", function () {
    initMenu();
    markCurrentPage();
    localTimes();
    relativeTimes();
  });
  document.addEventListener("htmx:load", function (event) { localTimes(event.target); relativeTimes(event.target); });
})();
