// The finance dashboard's two charts. Data comes from the page's json_script block (no inline script: CSP).
// Amounts arrive as decimal strings; they become numbers only to be drawn, the exact figures are in the page's text.
(function () {
  "use strict";
  function start() {
    var node = document.getElementById("finance-chart-data");
    if (!node || typeof Chart === "undefined") { return; }
    var data = JSON.parse(node.textContent);
    var fmt = new Intl.NumberFormat(undefined, { minimumFractionDigits: data.places, maximumFractionDigits: data.places });
    var money = function (value) { return fmt.format(value) + " " + data.currency; };
    var tooltip = { callbacks: { label: function (ctx) { return ctx.dataset.label + ": " + money(ctx.parsed.y); } } };
    var keys = [["money_in", "Money in", "#1b7f3b"], ["refunded", "Refunded", "#8a6d00"], ["disputed", "Disputed", "#b42318"]];
    var perDay = new Chart(document.getElementById("chart-money"), {
      type: "bar",
      data: {
        labels: data.days,
        datasets: keys.map(function (key) {
          return { label: key[1], data: data.series[key[0]].map(Number), backgroundColor: key[2], key: key[0] };
        })
      },
      options: { maintainAspectRatio: false, animation: false, plugins: { tooltip: tooltip },
                 scales: { y: { beginAtZero: true, ticks: { callback: function (v) { return fmt.format(v); } } } },
                 onClick: function (event, elements) {
                   // A bar opens the balances of that day and kind.
                   if (!elements.length) { return; }
                   var element = elements[0];
                   window.location.href = data.day_links[element.index][perDay.data.datasets[element.datasetIndex].key];
                 } }
    });
    new Chart(document.getElementById("chart-outstanding"), {
      type: "bar",
      data: { labels: data.buckets, datasets: [{ label: "Open amount", data: data.outstanding.map(Number), backgroundColor: "#417690" }] },
      options: { maintainAspectRatio: false, animation: false, plugins: { legend: { display: false }, tooltip: tooltip },
                 scales: { y: { beginAtZero: true, ticks: { callback: function (v) { return fmt.format(v); } } } },
                 onClick: function (event, elements) {
                   if (elements.length) { window.location.href = data.bucket_links[elements[0].index]; }
                 } }
    });
  }
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", start); } else { start(); }
}());
