/* The dashboard's audience panel: segment names and sizes, refreshed every 15 s. */
(function () {
  "use strict";
  var INTERVAL_MS = 15000;

  function render(summary) {
    var list = document.getElementById("audience-sizes-list");
    var empty = document.getElementById("audience-sizes-empty");
    if (!list) return;
    list.textContent = "";
    summary.segments.forEach(function (segment) {
      var item = document.createElement("li");
      var size = document.createElement("strong");
      size.textContent = String(segment.size);
      item.appendChild(size);
      item.appendChild(document.createTextNode(" " + segment.name));
      item.dataset.segment = String(segment.id);
      list.appendChild(item);
    });
    empty.hidden = summary.segments.length > 0;
    if (!summary.segments.length) {
      empty.textContent = "No segments yet (" + summary.authors_profiled + " authors profiled).";
    }
  }

  function refresh() {
    fetch("/audiences/summary.json", { credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (summary) { if (summary) render(summary); })
      .catch(function () { /* the next refresh tries again */ });
  }

  refresh();
  setInterval(refresh, INTERVAL_MS);
})();
