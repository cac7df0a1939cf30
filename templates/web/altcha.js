// The sign-up form's proof of work (altcha, version 1): find the number n for which
// SHA-256(salt + n) is the challenge, then send it with the form. Started as the page loads,
// so it is usually done before the reader has typed their address.
(function () {
  "use strict";
  var form = document.querySelector("form[data-altcha]");
  if (!form || !window.crypto || !window.crypto.subtle || !window.TextEncoder) { return; }
  var challenge = JSON.parse(form.getAttribute("data-altcha"));
  var field = form.querySelector("input[name=altcha]");
  var status = form.querySelector(".altcha-status");
  var button = form.querySelector("button[type=submit]");
  var encoder = new TextEncoder();
  var sendWhenDone = false;

  function hex(buffer) {
    return Array.prototype.map.call(new Uint8Array(buffer), function (b) {
      return ("0" + b.toString(16)).slice(-2);
    }).join("");
  }

  async function solve() {
    for (var n = 0; n <= challenge.maxNumber; n++) {
      var digest = await window.crypto.subtle.digest("SHA-256", encoder.encode(challenge.salt + n));
      if (hex(digest) === challenge.challenge) { return n; }
    }
    return null;
  }

  var solved = solve().then(function (number) {
    if (number === null) { status.textContent = "Please reload the page and try again."; return; }
    field.value = btoa(JSON.stringify({
      algorithm: challenge.algorithm, challenge: challenge.challenge, number: number,
      salt: challenge.salt, signature: challenge.signature
    }));
    if (sendWhenDone) { form.submit(); }
  });

  form.addEventListener("submit", function (event) {
    if (field.value) { return; }
    event.preventDefault();
    sendWhenDone = true;
    button.disabled = true;
    status.textContent = "One moment: checking this browser…";
    return solved;
  });
})();
