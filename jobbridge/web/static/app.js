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
})();
