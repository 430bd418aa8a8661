// Small behaviours the pages share. Everything works without JavaScript
// except the confirmation dialogs, which need showModal().
(function () {
  "use strict";

  document.addEventListener("click", function (event) {
    var opener = event.target.closest("[data-dialog-open]");
    if (opener) {
      var dialog = document.getElementById(opener.getAttribute("data-dialog-open"));
      if (dialog && typeof dialog.showModal === "function") {
        dialog.showModal();
      }
      return;
    }
    var closer = event.target.closest("[data-dialog-close]");
    if (closer) {
      closer.closest("dialog").close();
      return;
    }
    var expander = event.target.closest("[data-expand]");
    if (expander) {
      var target = document.getElementById(expander.getAttribute("aria-controls"));
      var open = expander.getAttribute("aria-expanded") !== "true";
      expander.setAttribute("aria-expanded", open ? "true" : "false");
      if (target) {
        target.hidden = !open;
      }
      return;
    }
    if (event.target.closest("[data-print]")) {
      window.print();
    }
  });

  // One submit per form: a second click while the first request is on its
  // way would only hit the idempotency key, but it looks broken to a clerk.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.hasAttribute("data-submit-once")) {
      return;
    }
    if (form.dataset.submitted) {
      event.preventDefault();
      return;
    }
    form.dataset.submitted = "yes";
    form.querySelectorAll("button[type=submit]").forEach(function (button) {
      button.setAttribute("aria-disabled", "true");
      button.classList.add("is-busy");
    });
  });
})();
