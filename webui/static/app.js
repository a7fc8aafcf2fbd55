// mcr-web's only script of its own (served from 'self'; the CSP allows no
// inline script). Copy buttons: data-copy="text" copies the text,
// data-copy-from="id" copies an element's text.
(function () {
  "use strict";
  function copyText(text, button) {
    var done = function () {
      var old = button.textContent;
      button.textContent = "Copied";
      button.classList.add("copied");
      setTimeout(function () { button.textContent = old; button.classList.remove("copied"); }, 1500);
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, function () { fallback(text); done(); });
    } else {
      fallback(text);
      done();
    }
  }
  function fallback(text) {
    var ta = document.createElement("textarea");
    ta.value = text;
    ta.setAttribute("readonly", "");
    ta.className = "offscreen";
    document.body.appendChild(ta);
    ta.select();
    try { document.execCommand("copy"); } catch (e) { /* nothing more to try */ }
    document.body.removeChild(ta);
  }
  document.addEventListener("click", function (ev) {
    var b = ev.target.closest("[data-copy],[data-copy-from]");
    if (!b) { return; }
    ev.preventDefault();
    var text = b.getAttribute("data-copy");
    if (text === null) {
      var el = document.getElementById(b.getAttribute("data-copy-from"));
      text = el ? el.textContent : "";
    }
    copyText(text, b);
  });
})();
