// Live ledger rows (server-sent events) on the stacks page and a run's page. Text only:
// every value is inserted with textContent, never as HTML.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  var list = document.querySelector("ol.live[data-after]");
  if (!list || !window.EventSource) return;
  var run = list.getAttribute("data-run");
  var url = "/events?after=" + encodeURIComponent(list.getAttribute("data-after"));
  var source = new EventSource(url);
  source.onmessage = function (event) {
    var row = JSON.parse(event.data);
    if (run && row.action_id !== run && row.parent_id !== run) return;
    if (run && row.action_id === run) {
      var status = document.getElementById("status");
      if (status && row.kind === "close") status.textContent = row.status;
      if (row.kind !== "close") return;
    }
    var item = document.createElement("li");
    item.className = "st-" + row.status;
    item.textContent = [row.ts.slice(0, 19).replace("T", " "), row.stack, row.action,
      row.version, row.kind === "close" ? row.status : "started", row.notes].join(" ");
    list.appendChild(item);
    while (list.children.length > 200) list.removeChild(list.firstChild);
  };
});
