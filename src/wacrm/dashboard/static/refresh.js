// Live regions: <element data-refresh-url="URL" data-refresh-seconds="N"> is replaced by
// the fragment at URL every N seconds (new messages, delivery ticks, webhook deliveries).
// Progressive enhancement: without this file the page is right as of its last load.
"use strict";

(function refreshRegions() {
  function follow(region) {
    var url = region.getAttribute("data-refresh-url");
    var seconds = Math.max(1, Number(region.getAttribute("data-refresh-seconds")) || 3);
    var last = null;
    var busy = false;
    var timer = null;

    function apply(html) {
      if (html === null || html === last) {
        return;
      }
      // Replacing the region under the keyboard focus would lose the reader's place:
      // wait until the focus is elsewhere.
      if (region.contains(document.activeElement) && document.activeElement !== document.body) {
        return;
      }
      var atBottom = window.innerHeight + window.scrollY >= document.body.scrollHeight - 40;
      region.innerHTML = html;
      last = html;
      if (atBottom && region.hasAttribute("data-follow-end")) {
        window.scrollTo(0, document.body.scrollHeight);
      }
    }

    function refresh() {
      if (busy || document.hidden) {
        return;
      }
      busy = true;
      fetch(url, { credentials: "same-origin", cache: "no-store", redirect: "error" })
        .then(function (response) {
          if (response.status === 403 || response.status === 404) {
            window.clearInterval(timer); // signed out of reach: stop asking
          }
          return response.ok ? response.text() : null;
        })
        .then(apply)
        .catch(function () { /* offline or logged out: try again next time */ })
        .then(function () { busy = false; });
    }

    timer = window.setInterval(refresh, seconds * 1000);
  }

  var regions = document.querySelectorAll("[data-refresh-url]");
  for (var i = 0; i < regions.length; i += 1) {
    follow(regions[i]);
  }

  // A conversation opens at its latest message.
  var end = document.querySelector("[data-scroll-here]");
  if (end && !window.location.hash) {
    end.scrollIntoView({ block: "end" });
  }
})();
