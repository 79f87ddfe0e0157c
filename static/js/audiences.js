/* The Audiences page: the map of authors coloured by segment, and the elbow chart. */
(function () {
  "use strict";

  var PALETTE = ["#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2",
                 "#db2777", "#65a30d", "#ea580c", "#4b5563"];

  function colour(index) { return PALETTE[index % PALETTE.length]; }

  function drawMap(data, canvas) {
    var names = {};
    data.segments.forEach(function (s) { names[s.id] = s.name; });
    var datasets = data.segments.map(function (segment, index) {
      var points = data.map.points.filter(function (p) { return p.segment === segment.id; });
      return {
        label: "Segment " + segment.id + " (" + segment.size + ")",
        data: points,
        backgroundColor: colour(index),
        pointRadius: 3,
        pointHoverRadius: 6
      };
    });
    var chart = new Chart(canvas, {
      type: "scatter",
      data: { datasets: datasets },
      options: {
        animation: false,
        maintainAspectRatio: false,
        parsing: { xAxisKey: "x", yAxisKey: "y" },
        scales: {
          x: { title: { display: true, text: "component 1" } },
          y: { title: { display: true, text: "component 2" } }
        },
        plugins: {
          tooltip: {
            callbacks: {
              label: function (item) {
                var p = item.raw;
                return [
                  "@" + p.author + " — " + p.posts + " posts",
                  "segment " + p.segment + ": " + (names[p.segment] || ""),
                  "mostly " + (p.interest || "?")
                ];
              }
            }
          }
        }
      }
    });
    canvas.dataset.points = String(data.map.points.length);
    canvas.dataset.segments = String(datasets.length);
    return chart;
  }

  function drawElbow(data, canvas) {
    var curve = data.k_curve;
    new Chart(canvas, {
      type: "line",
      data: {
        labels: curve.map(function (c) { return c.k; }),
        datasets: [
          { label: "inertia (elbow)", data: curve.map(function (c) { return c.inertia; }),
            borderColor: "#2563eb", yAxisID: "y" },
          { label: "silhouette", data: curve.map(function (c) { return c.silhouette; }),
            borderColor: "#dc2626", yAxisID: "y1" }
        ]
      },
      options: {
        animation: false,
        maintainAspectRatio: false,
        scales: {
          x: { title: { display: true, text: "k (segments)" } },
          y: { position: "left", title: { display: true, text: "inertia" } },
          y1: { position: "right", title: { display: true, text: "silhouette" },
                grid: { drawOnChartArea: false } }
        }
      }
    });
    canvas.dataset.points = String(curve.length);
  }

  function start() {
    var source = document.getElementById("audience-data");
    if (!source || typeof Chart === "undefined") return;
    var data = JSON.parse(source.textContent);
    var map = document.getElementById("audience-map");
    if (map) drawMap(data, map);
    var elbow = document.getElementById("audience-elbow");
    if (elbow && data.k_curve.length) drawElbow(data, elbow);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
