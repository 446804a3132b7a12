// Keyboard shortcuts on digit pages: "n" or the right arrow shows the next digit,
// "p" or the left arrow goes back to the previous one. Loaded as a file, not inline,
// so the Content-Security-Policy needs no 'unsafe-inline'.
(function () {
  "use strict";

  function isTyping(target) {
    return target instanceof HTMLElement &&
      (target.isContentEditable || /^(INPUT|SELECT|TEXTAREA|BUTTON)$/.test(target.tagName));
  }

  document.addEventListener("keydown", function (event) {
    if (event.defaultPrevented || event.altKey || event.ctrlKey || event.metaKey || isTyping(event.target)) {
      return;
    }
    var next = document.getElementById("next");
    if ((event.key === "n" || event.key === "ArrowRight") && next) {
      event.preventDefault();
      next.click();
    } else if ((event.key === "p" || event.key === "ArrowLeft") && next) {
      event.preventDefault();
      history.back();
    }
  });

  // htmx requests that change state carry the page's CSRF token in a header.
  document.addEventListener("htmx:configRequest", function (event) {
    var meta = document.querySelector('meta[name="csrf-token"]');
    if (meta && event.detail.verb !== "get") {
      event.detail.headers["X-CSRF-Token"] = meta.content;
    }
  });

  // After htmx swaps in a new digit, move focus to its Next button if focus was lost
  // with the old one, so keyboard users can keep pressing Enter.
  document.addEventListener("htmx:afterSwap", function (event) {
    var next = document.getElementById("next");
    if (next && event.detail.target && event.detail.target.id === "digit" &&
        (document.activeElement === document.body || !document.activeElement)) {
      next.focus({ preventScroll: true });
    }
  });
})();
