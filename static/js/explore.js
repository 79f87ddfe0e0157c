/* Explore: draws the filtered set's charts (data rendered into #explore-data by the server)
   and turns clicks into narrower filters: a time bucket zooms in, a cluster bar filters on
   that cluster. Everything else on the page is plain links and a GET form. */
(function () {
  "use strict";

  var SENT_COLOURS = { positive: "#16a34a", neutral: "#9ca3af", negative: "#dc2626" };
  var dataEl = document.getElementById("explore-data");
  var data = {};
  try { data = JSON.parse(dataEl ? dataEl.textContent : "{}") || {}; } catch (e) { data = {}; }
  var summary = data.summary;
  var args = data.args || {};

  function go(extra, drop) {
    var params = new URLSearchParams();
    Object.keys(args).forEach(function (k) {
      if (!drop || drop.indexOf(k) < 0) params.set(k, args[k]);
    });
    Object.keys(extra).forEach(function (k) { params.set(k, extra[k]); });
    window.location.assign("/explore?" + params.toString());
  }

  function iso(seconds) {
    return new Date(seconds * 1000).toISOString().replace(".000Z", "Z");
  }

  function bucketLabel(seconds) {
    if (seconds % 86400 === 0) return (seconds / 86400) + " d";
    if (seconds % 3600 === 0) return (seconds / 3600) + " h";
    if (seconds % 60 === 0) return (seconds / 60) + " min";
    return seconds + " s";
  }

  // Term sizes come as data attributes: the CSP allows no inline styles.
  document.querySelectorAll(".term[data-weight]").forEach(function (a) {
    var w = parseFloat(a.dataset.weight);
    if (isFinite(w)) a.style.fontSize = w.toFixed(2) + "rem";
  });

  var span = document.getElementById("explore-span");
  if (span && summary && summary.start) {
    var short = summary.end - summary.start < 3600;  // seconds matter within an hour
    var fmt = new Intl.DateTimeFormat(undefined,
      { dateStyle: "medium", timeStyle: short ? "medium" : "short", timeZone: "UTC" });
    span.textContent = fmt.format(new Date(summary.start * 1000)) + " – " +
      fmt.format(new Date(summary.end * 1000)) + " UTC";
  }

  if (!summary || typeof Chart === "undefined") return;
  Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
  Chart.defaults.color = "#4b5563";
  Chart.defaults.borderColor = "#e5e7eb";
  Chart.defaults.animation = false;

  var bucket = summary.bucket_seconds || 60;
  var hint = document.getElementById("bucket-hint");
  if (hint) hint.textContent = bucketLabel(bucket) + " per bar";
  var series = summary.series || [];
  var labelFmt = new Intl.DateTimeFormat(undefined, bucket >= 86400
    ? { month: "short", day: "numeric", timeZone: "UTC" }
    : { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", timeZone: "UTC" });

  var sentimentCanvas = document.getElementById("sentiment-chart");
  if (sentimentCanvas) {
    sentimentCanvas.parentNode.classList.add("clickable-chart");
    new Chart(sentimentCanvas, {
      type: "bar",
      data: {
        labels: series.map(function (b) { return labelFmt.format(new Date(b.start * 1000)); }),
        datasets: [
          { type: "line", label: "Mean compound", yAxisID: "y1", order: 0,
            data: series.map(function (b) { return b.mean; }),
            borderColor: "#4f46e5", backgroundColor: "#4f46e5", borderWidth: 2, pointRadius: 2, tension: 0.25 },
          { label: "Positive", yAxisID: "y", stack: "n", order: 1,
            data: series.map(function (b) { return b.positive; }), backgroundColor: SENT_COLOURS.positive + "b3" },
          { label: "Neutral", yAxisID: "y", stack: "n", order: 1,
            data: series.map(function (b) { return b.neutral; }), backgroundColor: SENT_COLOURS.neutral + "99" },
          { label: "Negative", yAxisID: "y", stack: "n", order: 1,
            data: series.map(function (b) { return b.negative; }), backgroundColor: SENT_COLOURS.negative + "b3" }
        ]
      },
      options: {
        responsive: true,
        maintainAspectRatio: false,
        interaction: { mode: "index", intersect: false },
        plugins: { legend: { position: "bottom", labels: { boxWidth: 12, boxHeight: 12 } } },
        scales: {
          x: { stacked: true, grid: { display: false }, ticks: { maxRotation: 0, autoSkipPadding: 12 } },
          y: { stacked: true, beginAtZero: true, title: { display: true, text: "posts" } },
          y1: { position: "right", min: -1, max: 1, grid: { drawOnChartArea: false },
                title: { display: true, text: "mean compound" } }
        },
        // Zoom in: the clicked bucket becomes the time range.
        onClick: function (evt, elements) {
          if (!elements.length) return;
          var b = series[elements[0].index];
          if (b) go({ from: iso(b.start), to: iso(b.start + bucket) }, ["from", "to"]);
        }
      }
    });
  }

  var trackedCanvas = document.getElementById("tracked-chart");
  var tracked = summary.tracked || [];
  if (trackedCanvas && tracked.length) {
    var PALETTE = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
                   "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"];
    new Chart(trackedCanvas, {
      type: "line",
      data: {
        labels: series.map(function (b) { return labelFmt.format(new Date(b.start * 1000)); }),
        datasets: tracked.map(function (t, k) {
          var colour = PALETTE[k % PALETTE.length];
          return { label: String(t.name), data: t.counts || [], borderColor: colour,
                   backgroundColor: colour, borderWidth: 2, pointRadius: 1, tension: 0.25 };
        })
      },
      options: {
        responsive: true,
        maintainAspectRatio: false,
        interaction: { mode: "index", intersect: false },
        plugins: { legend: { position: "bottom", labels: { boxWidth: 12, boxHeight: 12 } } },
        scales: { y: { beginAtZero: true, title: { display: true, text: "posts" } } }
      }
    });
  }

  var zoomOut = document.getElementById("zoom-out");
  if (zoomOut) {
    var start = summary.start, end = summary.end;
    zoomOut.disabled = !(isFinite(start) && isFinite(end) && (args.from || args.to));
    zoomOut.addEventListener("click", function () {
      var width = Math.max(end - start, bucket);
      var from = Math.max(0, start - width), to = end + width;
      go({ from: iso(Math.floor(from)), to: iso(Math.ceil(to)) }, ["from", "to"]);
    });
  }

  var clusterCanvas = document.getElementById("cluster-chart");
  var clusters = summary.clusters || [];
  if (clusterCanvas) {
    clusterCanvas.parentNode.classList.add("clickable-chart");
    new Chart(clusterCanvas, {
      type: "bar",
      data: {
        labels: clusters.map(function (c) { return c.label || "cluster " + c.id; }),
        datasets: [{ label: "Posts", data: clusters.map(function (c) { return c.count; }),
                     backgroundColor: clusters.map(function (c) { return "hsl(" + ((c.id * 137) % 360) + " 60% 55%)"; }),
                     borderRadius: 3 }]
      },
      options: {
        responsive: true,
        maintainAspectRatio: false,
        indexAxis: "y",
        plugins: { legend: { display: false } },
        scales: {
          x: { beginAtZero: true },
          y: { grid: { display: false }, ticks: { autoSkip: false, callback: function (v) {
            var s = String(this.getLabelForValue(v));
            return s.length > 28 ? s.slice(0, 27) + "…" : s;
          } } }
        },
        onClick: function (evt, elements) {
          if (!elements.length) return;
          var c = clusters[elements[0].index];
          if (c) go({ cluster: String(c.id) }, []);
        }
      }
    });
  }
})();
