// Copy buttons: <button data-copy="INPUT-ID" data-copy-status="STATUS-ID">.
"use strict";

(function copyButtons() {
  function say(button, text) {
    var status = document.getElementById(button.getAttribute("data-copy-status"));
    if (status) {
      status.textContent = text;
    }
  }

  function copyBySelection(field) {
    // For browsers without the clipboard API (e.g. plain http on another host).
    field.focus();
    field.select();
    try {
      return document.execCommand("copy");
    } catch (error) {
      return false;
    }
  }

  function copy(button) {
    var field = document.getElementById(button.getAttribute("data-copy"));
    if (!field) {
      return;
    }
    var done = function () { say(button, "Copied to the clipboard."); };
    var manual = function () {
      field.focus();
      field.select();
      say(button, "Press Ctrl+C (or ⌘C) to copy the selected key.");
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(field.value).then(done, function () {
        if (copyBySelection(field)) { done(); } else { manual(); }
      });
    } else if (copyBySelection(field)) {
      done();
    } else {
      manual();
    }
  }

  var buttons = document.querySelectorAll("button[data-copy]");
  for (var i = 0; i < buttons.length; i += 1) {
    buttons[i].addEventListener("click", function (event) { copy(event.currentTarget); });
  }
})();
