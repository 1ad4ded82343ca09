// Progressive enhancement only: every page works without this file.
"use strict";

// A page that answers a POST (e.g. the shown-once key) asks for its plain address back,
// so that reloading it reads the page again instead of posting the form twice.
(function replaceAddress() {
  var url = document.body.getAttribute("data-replace-url");
  if (url && window.history && window.history.replaceState) {
    window.history.replaceState(null, "", url);
  }
})();
