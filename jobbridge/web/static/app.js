// jobbridge dashboard glue. Loaded as a file: the Content-Security-Policy forbids inline script.
(function () {
  "use strict";

  function csrfMeta() {
    return document.querySelector('meta[name="csrf-token"]');
  }

  // Every htmx request that changes something carries the session's CSRF token as a header.
  document.addEventListener("htmx:configRequest", function (event) {
    var meta = csrfMeta();
    var verb = (event.detail.verb || "get").toLowerCase();
    if (meta && verb !== "get") {
      event.detail.headers[meta.getAttribute("data-header") || "X-CSRF-Token"] = meta.content;
    }
  });

  // A button submits its form once: a double click must not send the action twice.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!(form instanceof HTMLFormElement) || form.method.toLowerCase() !== "post") {
      return;
    }
    if (form.dataset.submitted === "1") {
      event.preventDefault();
      return;
    }
    form.dataset.submitted = "1";
    // A row's form returns to this page as it is now (the tab app.js selected, not the one
    // the server rendered); the server still checks it is a local path.
    var next = form.querySelector('input[name="next"]');
    if (next && next.value.indexOf(location.pathname) === 0) {
      next.value = location.pathname + location.search;
    }
    var buttons = form.querySelectorAll("button[type=submit]");
    for (var i = 0; i < buttons.length; i++) {
      buttons[i].setAttribute("aria-busy", "true");
    }
  });

  // Coming back through the history cache: the forms may be submitted again.
  window.addEventListener("pageshow", function () {
    var forms = document.querySelectorAll("form[data-submitted]");
    for (var i = 0; i < forms.length; i++) {
      delete forms[i].dataset.submitted;
      var busy = forms[i].querySelectorAll("[aria-busy]");
      for (var j = 0; j < busy.length; j++) {
        busy[j].removeAttribute("aria-busy");
      }
    }
  });
  // ---------------------------------------------------------------- a source page's tabs
  // The server renders every tab as a link (?tab=) and the selected panel visible: this only
  // switches in place, moves with the arrow keys, and keeps the address so a reload (or the
  // page an action returns to) shows the same tab.

  function tabsOf(tab) {
    var list = tab.closest('[role="tablist"]');
    return list ? Array.prototype.slice.call(list.querySelectorAll('[role="tab"]')) : [];
  }

  function selectTab(tab, focus) {
    var tabs = tabsOf(tab);
    for (var i = 0; i < tabs.length; i++) {
      var selected = tabs[i] === tab;
      tabs[i].setAttribute("aria-selected", selected ? "true" : "false");
      tabs[i].setAttribute("tabindex", selected ? "0" : "-1");
      var panel = document.getElementById(tabs[i].getAttribute("aria-controls"));
      if (panel) {
        panel.hidden = !selected;
        if (selected && window.htmx) {
          // the newly shown list may be as old as the page: refresh it now
          window.htmx.trigger(panel, "refresh-list");
        }
      }
    }
    if (focus) {
      tab.focus();
    }
    document.dispatchEvent(new CustomEvent("jobbridge:tab"));
    var url = new URL(tab.href, location.href);
    if (window.history && history.replaceState) {
      history.replaceState(history.state, "", url.pathname + url.search);
    }
  }

  document.addEventListener("click", function (event) {
    var tab = event.target instanceof Element ? event.target.closest('[role="tab"]') : null;
    if (!tab || event.button !== 0 || event.ctrlKey || event.metaKey || event.shiftKey) {
      return;
    }
    event.preventDefault();
    selectTab(tab, true);
  });

  document.addEventListener("keydown", function (event) {
    var tab = event.target instanceof Element ? event.target.closest('[role="tab"]') : null;
    if (!tab) {
      return;
    }
    var tabs = tabsOf(tab);
    var at = tabs.indexOf(tab);
    var to = null;
    if (event.key === "ArrowRight" || event.key === "ArrowDown") {
      to = tabs[(at + 1) % tabs.length];
    } else if (event.key === "ArrowLeft" || event.key === "ArrowUp") {
      to = tabs[(at - 1 + tabs.length) % tabs.length];
    } else if (event.key === "Home") {
      to = tabs[0];
    } else if (event.key === "End") {
      to = tabs[tabs.length - 1];
    } else if (event.key === " ") {
      to = tab; // a link does not answer Space; a tab does
    }
    if (to) {
      event.preventDefault();
      selectTab(to, true);
    }
  });

  // ---------------------------------------------------------------- live lists
  // The visible list refreshes every poll (hx-trigger on its panel). It holds still while
  // the reader works in it: a control in it has focus, or a confirmation step (<details>)
  // or an error is open; hidden panels and background tabs do not poll at all.

  function busyReason(panel) {
    if (panel.hidden || document.hidden) {
      return "hidden";
    }
    if (panel.contains(document.activeElement) && document.activeElement !== panel) {
      return "focus";
    }
    if (panel.querySelector("details[open]")) {
      return "open";
    }
    // ticked rows (bulk actions): a refresh would untick them
    if (panel.querySelector("input[data-bulk-tick]:checked")) {
      return "open";
    }
    return "";
  }

  function showPaused(panel, reason) {
    var note = document.getElementById("live-note");
    if (!note || panel.hidden) {
      return;
    }
    var paused = reason === "focus" || reason === "open";
    if (note.getAttribute("data-paused") === (paused ? reason : "")) {
      return;
    }
    note.setAttribute("data-paused", paused ? reason : "");
    note.textContent = paused
      ? "Paused while you work in the list (a focused control or an open step); it resumes when you leave it."
      : "The list below refreshes every " + note.getAttribute("data-poll") + ".";
  }

  function livePanel(event) {
    var elt = event.detail && event.detail.elt;
    return elt instanceof Element && elt.hasAttribute("data-live-list") ? elt : null;
  }

  document.addEventListener("htmx:beforeRequest", function (event) {
    var panel = livePanel(event);
    if (!panel) {
      return;
    }
    var reason = busyReason(panel);
    showPaused(panel, reason);
    if (reason) {
      event.preventDefault();
    }
  });

  // An answer that arrives after the reader started working in the list is dropped.
  document.addEventListener("htmx:beforeSwap", function (event) {
    var panel = livePanel(event);
    if (panel && busyReason(panel) && event.detail.requestConfig &&
        event.detail.requestConfig.elt === panel) {
      event.detail.shouldSwap = false;
    }
  });
  // ---------------------------------------------------------------- relative times
  // "3 min ago" as the server rendered it, kept current: counted from the server's clock
  // (the page's data-rendered-at), worded as jobbridge/web/formatting.py relative_time does.

  var rendered = Date.parse(document.documentElement.getAttribute("data-rendered-at") || "");
  var skewMs = isNaN(rendered) ? 0 : rendered - Date.now();
  var UNITS = [[86400, "d"], [3600, "h"], [60, "min"], [1, "s"]];

  function relative(at, nowMs) {
    var seconds = (nowMs - at) / 1000;
    var whole = Math.floor(Math.abs(seconds));
    if (whole < 5) {
      return "just now";
    }
    if (whole >= 60 * 86400) {
      return new Date(at).toISOString().slice(0, 10);
    }
    for (var i = 0; i < UNITS.length; i++) {
      if (whole >= UNITS[i][0]) {
        var amount = Math.floor(whole / UNITS[i][0]) + " " + UNITS[i][1];
        return seconds > 0 ? amount + " ago" : "in " + amount;
      }
    }
    return "just now";
  }

  function refreshTimes() {
    var now = Date.now() + skewMs;
    var times = document.querySelectorAll("time[data-relative][datetime]");
    for (var i = 0; i < times.length; i++) {
      var at = Date.parse(times[i].getAttribute("datetime"));
      if (!isNaN(at)) {
        var text = relative(at, now);
        if (times[i].textContent !== text) {
          times[i].textContent = text;
        }
      }
    }
  }

  window.setInterval(refreshTimes, 15000);
  // ---------------------------------------------------------------- wide tables
  // A table wider than the screen scrolls inside its .table-wrap, never the page: the wrap
  // becomes a focusable region named after its card (arrow keys scroll it) with a visible
  // "scroll sideways" hint. Re-checked after every swap, tab switch and resize.

  function markScrollers() {
    var wraps = document.querySelectorAll(".table-wrap");
    for (var i = 0; i < wraps.length; i++) {
      var wrap = wraps[i];
      var scrolls = wrap.scrollWidth > wrap.clientWidth + 1;
      var hint = wrap.previousElementSibling;
      var hasHint = hint && hint.classList.contains("scroll-hint");
      if (scrolls) {
        var card = wrap.closest("section, .card");
        var heading = card ? card.querySelector("h2, h3") : null;
        var name = heading ? heading.textContent.trim() : "Table";
        wrap.classList.add("scrolls");
        wrap.setAttribute("role", "region");
        wrap.setAttribute("tabindex", "0");
        wrap.setAttribute("aria-label", name + " (scrolls sideways)");
        if (!hasHint) {
          hint = document.createElement("p");
          hint.className = "scroll-hint";
          hint.setAttribute("aria-hidden", "true");
          hint.textContent = "\u21c6 Scroll sideways for more columns";
          wrap.parentNode.insertBefore(hint, wrap);
        }
      } else if (wrap.classList.contains("scrolls")) {
        wrap.classList.remove("scrolls");
        wrap.removeAttribute("role");
        wrap.removeAttribute("tabindex");
        wrap.removeAttribute("aria-label");
        if (hasHint) {
          hint.parentNode.removeChild(hint);
        }
      }
    }
  }

  var resizeTimer = null;
  window.addEventListener("resize", function () {
    window.clearTimeout(resizeTimer);
    resizeTimer = window.setTimeout(markScrollers, 150);
  });
  document.addEventListener("htmx:afterSettle", markScrollers);
  document.addEventListener("jobbridge:tab", markScrollers);
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", markScrollers);
  } else {
    markScrollers();
  }
})();
