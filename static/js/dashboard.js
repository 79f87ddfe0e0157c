/* SocialPulse live dashboard.
 *
 * One Socket.IO event, "update", on namespace /live. Incoming updates are
 * merged into a pending state and rendered at most once per animation frame.
 * User-provided text is only ever inserted with textContent / text nodes.
 */
(function () {
  "use strict";

  var FEED_MAX = 50;
  // A busy stream brings dozens of new posts every frame, more than anyone reads: once the
  // feed is filled, each frame adds only the newest few. Rebuilding all 50 rows every frame
  // cost more than the rest of the page together.
  var FEED_PER_FRAME = 10;
  // Charts redraw at most this often (their data keeps arriving with every update; the
  // latest is drawn): a redraw lays out the axes again, the page's largest cost per update.
  var CHART_INTERVAL_MS = 500;

  // 20 distinct colours; a cluster's colour is PALETTE[id % 20] everywhere.
  var PALETTE = [
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
    "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac",
    "#1f77b4", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
    "#e377c2", "#17becf", "#bcbd22", "#393b79", "#637939"
  ];
  var NO_CLUSTER_COLOUR = "#9ca3af";
  var SENT_COLOURS = { positive: "#16a34a", neutral: "#9ca3af", negative: "#dc2626" };

  function clusterColour(id) {
    var n = Number(id);
    if (id === null || id === undefined || !isFinite(n) || n < 0) return NO_CLUSTER_COLOUR;
    return PALETTE[Math.floor(n) % PALETTE.length];
  }

  // ---------------------------------------------------------------- formatting
  function isNum(v) { return typeof v === "number" && isFinite(v); }

  function fmtCompact(v) {
    if (!isNum(v)) return "–";
    var a = Math.abs(v);
    if (a >= 1e9) return (v / 1e9).toFixed(a >= 1e10 ? 0 : 1) + "B";
    if (a >= 1e6) return (v / 1e6).toFixed(a >= 1e7 ? 0 : 1) + "M";
    if (a >= 1e3) return (v / 1e3).toFixed(a >= 1e4 ? 0 : 1) + "k";
    if (Number.isInteger(v)) return String(v);
    return v.toFixed(a < 10 ? 1 : 0);
  }

  function fmtInt(v) {
    return isNum(v) ? Math.round(v).toLocaleString() : "–";
  }

  function fmtSigned(v, digits) {
    if (!isNum(v)) return "–";
    var s = v.toFixed(digits === undefined ? 2 : digits);
    if (Number(s) === 0) return s.replace("-", "");
    return v > 0 ? "+" + s : s;
  }

  function fmtMs(v) {
    if (!isNum(v)) return "–";
    if (v >= 1000) return (v / 1000).toFixed(v >= 10000 ? 0 : 1) + " s";
    if (v >= 10) return Math.round(v) + " ms";
    return v.toFixed(1) + " ms";
  }

  function sentimentClass(v) {
    if (!isNum(v)) return "";
    if (v >= 0.05) return "positive";
    if (v <= -0.05) return "negative";
    return "neutral";
  }

  var timeFmt = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" });
  var fullFmt = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });
  var dayFmt = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });

  function parseDate(s) {
    if (!s) return null;
    var d = new Date(s);
    return isNaN(d.getTime()) ? null : d;
  }

  // ---------------------------------------------------------------- elements
  function $(id) { return document.getElementById(id); }
  var els = {
    status: $("status"),
    rate: $("stat-rate"),
    total: $("stat-total"),
    sentiment: $("stat-sentiment"),
    latency: $("stat-latency"),
    dead: $("stat-dead"),
    version: $("stat-version"),
    source: $("stat-source"),
    feed: $("feed"),
    trending: $("trending"),
    wordcloud: $("wordcloud"),
    wordcloudPlaceholder: $("wordcloud-placeholder"),
    wordcloudMeta: $("wordcloud-meta"),
    sentimentCanvas: $("sentiment-chart"),
    clusterCanvas: $("cluster-chart")
  };

  // Explore: every chart opens the archived posts behind what was clicked.
  var grid = document.querySelector(".dash-grid");
  var EXPLORE = !!(grid && grid.dataset.explore === "1");
  function toExplore(params) {
    return "/explore?" + new URLSearchParams(params).toString();
  }
  var seriesStarts = [];  // epoch seconds of the sentiment chart's windows
  var clusterIds = [];  // the cluster of each bar

  function setText(el, text) {
    if (el && el.textContent !== text) el.textContent = text;
  }

  function el(tag, className, text) {
    var e = document.createElement(tag);
    if (className) e.className = className;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }

  // ---------------------------------------------------------------- charts
  var sentimentChart = null;
  var clusterChart = null;

  function initCharts() {
    if (typeof Chart === "undefined") return;
    Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
    Chart.defaults.color = "#4b5563";
    Chart.defaults.borderColor = "#e5e7eb";
    Chart.defaults.animation = false;

    sentimentChart = new Chart(els.sentimentCanvas, {
      type: "bar",
      data: {
        labels: [],
        datasets: [
          { type: "line", label: "Mean compound", data: [], yAxisID: "y1", order: 0,
            borderColor: "#4f46e5", backgroundColor: "#4f46e5", borderWidth: 2,
            pointRadius: 2, pointHoverRadius: 4, tension: 0.25, spanGaps: true },
          { label: "Positive", data: [], yAxisID: "y", stack: "n", order: 1,
            backgroundColor: SENT_COLOURS.positive + "b3" },
          { label: "Neutral", data: [], yAxisID: "y", stack: "n", order: 1,
            backgroundColor: SENT_COLOURS.neutral + "99" },
          { label: "Negative", data: [], yAxisID: "y", stack: "n", order: 1,
            backgroundColor: SENT_COLOURS.negative + "b3" }
        ]
      },
      options: {
        animation: false,
        responsive: true,
        maintainAspectRatio: false,
        interaction: { mode: "index", intersect: false },
        onClick: function (evt, elements) {
          var i = elements.length ? elements[0].index : -1;
          if (!EXPLORE || i < 0 || !isNum(seriesStarts[i])) return;
          var step = seriesStarts.length > 1 ? seriesStarts[1] - seriesStarts[0] : 10;
          window.location.assign(toExplore({
            from: new Date(seriesStarts[i] * 1000).toISOString(),
            to: new Date((seriesStarts[i] + step) * 1000).toISOString()
          }));
        },
        plugins: {
          legend: { position: "bottom", labels: { boxWidth: 12, boxHeight: 12 } },
          tooltip: {
            callbacks: {
              label: function (ctx) {
                var v = ctx.parsed.y;
                if (ctx.dataset.yAxisID === "y1") return " Mean compound: " + fmtSigned(v, 3);
                return " " + ctx.dataset.label + ": " + fmtInt(v);
              }
            }
          }
        },
        scales: {
          x: { stacked: true, grid: { display: false }, ticks: { maxRotation: 0, autoSkipPadding: 12 } },
          y: { stacked: true, beginAtZero: true, position: "left",
               title: { display: true, text: "posts" },
               ticks: { callback: function (v) { return fmtCompact(v); } } },
          y1: { position: "right", min: -1, max: 1,
                title: { display: true, text: "mean compound" },
                grid: { drawOnChartArea: false },
                ticks: { stepSize: 0.5 } }
        }
      }
    });

    clusterChart = new Chart(els.clusterCanvas, {
      type: "bar",
      data: { labels: [], datasets: [{ label: "Posts", data: [], backgroundColor: [], borderRadius: 3 }] },
      options: {
        animation: false,
        responsive: true,
        maintainAspectRatio: false,
        indexAxis: "y",
        onClick: function (evt, elements) {
          var i = elements.length ? elements[0].index : -1;
          if (EXPLORE && i >= 0 && isNum(clusterIds[i])) {
            window.location.assign(toExplore({ cluster: String(clusterIds[i]) }));
          }
        },
        plugins: {
          legend: { display: false },
          tooltip: { callbacks: { label: function (ctx) { return " " + fmtInt(ctx.parsed.x) + " posts"; } } }
        },
        scales: {
          x: { beginAtZero: true, ticks: { callback: function (v) { return fmtCompact(v); } } },
          y: { grid: { display: false },
               ticks: { autoSkip: false,
                        callback: function (v) {
                          var s = String(this.getLabelForValue(v));
                          return s.length > 28 ? s.slice(0, 27) + "…" : s;
                        } } }
        }
      }
    });
  }

  // Cheap change detection: redrawing a chart costs a few ms, skip it when
  // the (full-state) data did not change since the last render.
  var lastSig = { series: null, clusters: null, trending: null };
  function signature(arr, keys) {
    var out = new Array(arr.length);
    for (var i = 0; i < arr.length; i++) {
      var o = arr[i] || {}, row = "";
      for (var k = 0; k < keys.length; k++) row += String(o[keys[k]]) + "\u0001";
      out[i] = row;
    }
    return out.join("\u0002");
  }
  function changed(name, arr, keys) {
    var sig = signature(arr, keys);
    if (sig === lastSig[name]) return false;
    lastSig[name] = sig;
    return true;
  }

  function renderSentimentSeries(series) {
    if (!sentimentChart) return;
    if (!changed("series", series, ["start", "mean", "positive", "neutral", "negative"])) return;
    var labels = [], mean = [], pos = [], neu = [], neg = [], starts = [];
    // Windows over more than a day (a replay of days) are labelled with their date.
    var first = series.length ? parseDate((series[0] || {}).start) : null;
    var last = series.length ? parseDate((series[series.length - 1] || {}).start) : null;
    var labelFmt = first && last && last - first > 86400000 ? dayFmt : timeFmt;
    for (var i = 0; i < series.length; i++) {
      var w = series[i] || {};
      var d = parseDate(w.start);
      starts.push(d ? d.getTime() / 1000 : null);
      labels.push(d ? labelFmt.format(d) : String(w.start || ""));
      mean.push(isNum(w.mean) ? w.mean : null);
      pos.push(isNum(w.positive) ? w.positive : 0);
      neu.push(isNum(w.neutral) ? w.neutral : 0);
      neg.push(isNum(w.negative) ? w.negative : 0);
    }
    var ds = sentimentChart.data.datasets;
    sentimentChart.data.labels = labels;
    seriesStarts = starts;
    ds[0].data = mean; ds[1].data = pos; ds[2].data = neu; ds[3].data = neg;
    sentimentChart.update("none");
    els.sentimentCanvas.dataset.points = String(series.length);
    els.sentimentCanvas.dataset.first = first ? first.toISOString() : "";
    els.sentimentCanvas.dataset.last = last ? last.toISOString() : "";
  }

  var newTopics = {};  // ids of topics born in the last ten minutes
  var lastClusters = [];
  var CLUSTERS_SHOWN = 15;

  function renderClusters(clusters) {
    if (!clusterChart) return;
    lastClusters = clusters;
    if (!changed("clusters", clusters, ["id", "label", "count"]) && !newTopicsChanged) return;
    newTopicsChanged = false;
    var sorted = clusters.filter(function (c) { return c && typeof c === "object"; }).slice();
    sorted.sort(function (a, b) { return (b.count || 0) - (a.count || 0); });
    sorted = sorted.slice(0, CLUSTERS_SHOWN);
    var labels = [], data = [], colours = [];
    for (var i = 0; i < sorted.length; i++) {
      var c = sorted[i];
      var name = c.label ? String(c.label) : "cluster " + c.id;
      labels.push(newTopics[c.id] ? "★ " + name : name);
      data.push(isNum(c.count) ? c.count : 0);
      colours.push(clusterColour(c.id));
    }
    clusterChart.data.labels = labels;
    clusterIds = sorted.map(function (c) { return Number(c.id); });
    clusterChart.data.datasets[0].data = data;
    clusterChart.data.datasets[0].backgroundColor = colours;
    clusterChart.update("none");
    els.clusterCanvas.dataset.points = String(sorted.length);
  }

  // ---------------------------------------------------------------- topic lineage
  var newTopicsChanged = false;
  var TOPIC_VERBS = { birth: "born", merge: "merged", retirement: "retired" };

  function renderTopics(events, fresh) {
    if (Array.isArray(fresh)) {
      var next = {};
      fresh.forEach(function (id) { if (isNum(id)) next[id] = true; });
      newTopicsChanged = JSON.stringify(Object.keys(next)) !== JSON.stringify(Object.keys(newTopics));
      newTopics = next;
      if (newTopicsChanged) renderClusters(lastClusters);
    }
    if (!Array.isArray(events)) return;
    var list = $("topic-events");
    if (!list) return;
    list.textContent = "";
    events.slice(0, 12).forEach(function (e) {
      if (!e || typeof e !== "object" || !Array.isArray(e.cluster_ids)) return;
      var item = el("li", "topic-event topic-event--" + String(e.kind || ""));
      // A split shows the new topic's terms; other events the first topic's.
      var named = Array.isArray(e.top_terms) ? e.top_terms[e.kind === "split" ? e.top_terms.length - 1 : 0] : null;
      var terms = Array.isArray(named) ? named.slice(0, 3).join(" · ") : "";
      var ids = e.cluster_ids.map(function (id) { return "#" + id; });
      var what = e.kind === "merge" && ids.length > 1 ?
        ids.slice(1).join(", ") + " merged into " + ids[0] :
        e.kind === "split" && ids.length > 1 ?
        "topic " + ids[0] + " split: " + ids.slice(1).join(", ") + " is new" :
        "topic " + ids.join(", ") + " " + (TOPIC_VERBS[e.kind] || String(e.kind || ""));
      item.appendChild(el("span", "topic-event__what", what));
      if (terms) item.appendChild(el("span", "topic-event__terms", terms));
      if (isNum(e.time)) {
        item.appendChild(el("span", "muted", new Date(e.time * 1000).toLocaleTimeString()));
      }
      list.appendChild(item);
    });
    list.dataset.count = String(list.children.length);
    var empty = $("topic-events-empty");
    if (empty) empty.hidden = list.children.length > 0;
  }

  // ---------------------------------------------------------------- alerts
  // The newest alerts in a panel; an alert that opens while the page is open also shows as
  // a toast. Every text goes in as text; a link is followed only to Explore.
  var ALERTS_MAX = 8;
  var alertsById = {};
  var alertsSeenUpdate = false;  // the first update is the snapshot: no toasts for it

  function exploreHref(url) {
    return typeof url === "string" && url.indexOf("/explore?") === 0 ? url : "/alerts";
  }

  function alertItem(a) {
    var item = el("li", "alert-item alert-item--" + String(a.severity || "warning"));
    item.dataset.id = String(a.id || "");
    item.dataset.status = String(a.status || "");
    var head = el("div", "alert-item__head");
    head.appendChild(el("span", "badge severity severity--" + String(a.severity || ""), a.severity));
    head.appendChild(el("span", "alert-item__kind", String(a.kind || "").replace(/_/g, " ")));
    if (a.status && a.status !== "open") head.appendChild(el("span", "muted", a.status));
    // Raised when its window ended; the window's close (its late posts) confirms it.
    if (a.provisional === true) head.appendChild(el("span", "muted", "window still open"));
    item.appendChild(head);
    item.appendChild(el("p", "alert-item__text", a.explanation));
    var list = $("alerts-list");
    if (list && list.dataset.explore === "1") {
      var link = el("a", "alert-item__link", "Explore these posts");
      link.href = exploreHref(a.explore_url);
      item.appendChild(link);
    }
    return item;
  }

  function toast(a) {
    var box = $("toasts");
    if (!box) return;
    var t = el("div", "toast toast--" + String(a.severity || "warning"));
    t.setAttribute("role", "status");
    t.appendChild(el("strong", null, String(a.kind || "alert").replace(/_/g, " ")));
    t.appendChild(el("p", null, a.explanation));
    box.appendChild(t);
    while (box.children.length > 4) box.removeChild(box.firstChild);
    setTimeout(function () { if (t.parentNode) t.parentNode.removeChild(t); }, 10000);
  }

  function renderAlerts(changes) {
    var snapshot = !alertsSeenUpdate;
    alertsSeenUpdate = true;
    for (var i = 0; i < changes.length; i++) {
      var a = changes[i];
      if (!a || typeof a !== "object" || typeof a.id !== "string") continue;
      var known = Object.prototype.hasOwnProperty.call(alertsById, a.id);
      if (!known && !snapshot && a.status === "open") toast(a);
      a._order = known ? alertsById[a.id]._order : (snapshot ? -i : Date.now() + i);
      alertsById[a.id] = a;
    }
    var all = Object.keys(alertsById).map(function (k) { return alertsById[k]; });
    all.sort(function (x, y) { return y._order - x._order; });
    alertsById = {};
    all.slice(0, 50).forEach(function (a) { alertsById[a.id] = a; });
    var list = $("alerts-list");
    if (!list) return;
    list.textContent = "";
    all.slice(0, ALERTS_MAX).forEach(function (a) { list.appendChild(alertItem(a)); });
    var empty = $("alerts-empty");
    if (empty) empty.hidden = all.length > 0;
    list.dataset.count = String(Math.min(all.length, ALERTS_MAX));
  }

  // ---------------------------------------------------------------- degraded banner
  // What the server reports failing, with the cause and since when; gone on recovery.
  function renderProblems(problems) {
    var banner = document.getElementById("degraded");
    var list = document.getElementById("degraded-list");
    if (!banner || !list) return;
    list.textContent = "";
    for (var i = 0; i < problems.length && i < 10; i++) {
      var problem = problems[i] || {};
      var item = document.createElement("li");
      var since = isNum(problem.since) ? new Date(problem.since * 1000).toLocaleTimeString() : "";
      item.textContent = String(problem.component || "") + ": " + String(problem.reason || "") +
        (since ? " (since " + since + ")" : "");
      list.appendChild(item);
    }
    banner.hidden = problems.length === 0;
  }

  // ---------------------------------------------------------------- stats
  function renderStats(s) {
    setText(els.rate, fmtCompact(s.posts_per_second));
    setText(els.total, fmtCompact(s.total));
    if (els.total) els.total.title = isNum(s.total) ? fmtInt(s.total) + " posts" : "";

    setText(els.sentiment, fmtSigned(s.mean_sentiment, 2));
    els.sentiment.className = "stat__value " + sentimentClass(s.mean_sentiment);

    var p50 = s.latency_p50_ms, p99 = s.latency_p99_ms;
    if (isNum(p50) && isNum(p99) && p50 < 1000 && p99 < 1000) {
      // "35 / 120 ms" keeps the tile compact
      setText(els.latency, fmtMs(p50).replace(" ms", "") + " / " + fmtMs(p99));
    } else {
      setText(els.latency, fmtMs(p50) + " / " + fmtMs(p99));
    }
    els.latency.title = "end-to-end latency p50 " + fmtMs(p50) + ", p99 " + fmtMs(p99);

    setText(els.dead, fmtInt(s.dead_lettered));
    els.dead.className = "stat__value" + (isNum(s.dead_lettered) && s.dead_lettered > 0 ? " negative" : "");

    var v = s.model_version ? String(s.model_version) : "–";
    setText(els.version, v);
    els.version.title = v;
    var src = s.source ? String(s.source) : "–";
    setText(els.source, src);
    els.source.title = src;
  }

  // ---------------------------------------------------------------- trending
  function renderTrending(items) {
    if (!changed("trending", items, ["tag", "count", "delta"])) return;
    var frag = document.createDocumentFragment();
    var max = 0, i;
    for (i = 0; i < items.length; i++) if (items[i] && isNum(items[i].count)) max = Math.max(max, items[i].count);
    var n = 0;
    for (i = 0; i < items.length && n < 20; i++) {
      var t = items[i];
      if (!t || t.tag === undefined || t.tag === null) continue;
      n++;
      var li = el("li", "trend");
      li.appendChild(el("span", "trend__rank", n));
      var tag = el(EXPLORE ? "a" : "span", "trend__tag", "#" + String(t.tag).replace(/^#/, ""));
      if (EXPLORE) tag.href = toExplore({ hashtag: String(t.tag).replace(/^#/, "") });
      tag.title = tag.textContent;
      li.appendChild(tag);
      var bar = el("span", "trend__bar");
      var fill = el("span", "trend__fill");
      fill.style.width = (max > 0 && isNum(t.count) ? Math.max(2, 100 * t.count / max) : 0) + "%";
      bar.appendChild(fill);
      li.appendChild(bar);
      li.appendChild(el("span", "trend__count", fmtCompact(t.count)));
      var d = t.delta, delta;
      if (isNum(d) && d > 0) delta = el("span", "trend__delta up", "▲ " + fmtCompact(d));
      else if (isNum(d) && d < 0) delta = el("span", "trend__delta down", "▼ " + fmtCompact(-d));
      else delta = el("span", "trend__delta flat", "–");
      delta.title = isNum(d) ? "change: " + (d > 0 ? "+" : "") + d : "no change data";
      li.appendChild(delta);
      frag.appendChild(li);
    }
    if (!n) frag.appendChild(el("li", "empty", "No hashtags yet"));
    els.trending.replaceChildren(frag);
  }

  // ---------------------------------------------------------------- feed
  var feedIds = new Set();

  function buildPost(p) {
    var li = el("li", "post");
    li.dataset.id = String(p.id);

    var head = el("div", "post__head");
    var author = el(EXPLORE && p.author ? "a" : "span", "post__author", p.author ? "@" + String(p.author).replace(/^@/, "") : "unknown");
    if (EXPLORE && p.author) author.href = toExplore({ author: String(p.author) });
    head.appendChild(author);
    var d = parseDate(p.created_at);
    if (d) {
      var time = el("time", "post__time", timeFmt.format(d));
      time.dateTime = d.toISOString();
      time.title = fullFmt.format(d);
      head.appendChild(time);
    }
    var s = p.sentiment;
    if (s && (s.label || isNum(s.compound))) {
      var lbl = s.label ? String(s.label) : sentimentClass(s.compound);
      var cls = (lbl === "positive" || lbl === "negative" || lbl === "neutral") ? lbl : "neutral";
      var sb = el("span", "badge sent " + cls, lbl + " " + fmtSigned(s.compound, 2));
      sb.title = "compound " + fmtSigned(s.compound, 3) +
        (isNum(s.pos) ? " · pos " + s.pos.toFixed(2) + " · neu " + (isNum(s.neu) ? s.neu.toFixed(2) : "–") +
          " · neg " + (isNum(s.neg) ? s.neg.toFixed(2) : "–") : "");
      head.appendChild(sb);
    }
    li.appendChild(head);

    var text = el("p", "post__text", p.text === undefined || p.text === null ? "" : String(p.text));
    if (p.lang && /^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$/.test(String(p.lang))) text.lang = String(p.lang);
    li.appendChild(text);

    var meta = el("div", "post__meta");
    var tags = Array.isArray(p.hashtags) ? p.hashtags : [];
    for (var i = 0; i < tags.length && i < 8; i++) {
      meta.appendChild(el("span", "tag", "#" + String(tags[i]).replace(/^#/, "")));
    }
    var c = p.cluster;
    if (c && (c.label || c.id !== undefined)) {
      var cb = el("span", "badge cluster");
      cb.style.setProperty("--cluster-colour", clusterColour(c.id));
      cb.appendChild(el("span", "cluster__dot"));
      cb.appendChild(document.createTextNode(c.label ? String(c.label) : "cluster " + c.id));
      cb.title = "topic cluster " + c.id;
      meta.appendChild(cb);
    }
    var e = p.engagement;
    if (e && (isNum(e.predicted) || e.band)) {
      var band = String(e.band || "");
      var bandCls = (band === "low" || band === "medium" || band === "high") ? band : "unknown";
      var eb = el("span", "badge band " + bandCls, "≈" + fmtCompact(e.predicted) + (band ? " · " + band : ""));
      eb.title = "predicted engagement";
      meta.appendChild(eb);
    }
    if (meta.childNodes.length) li.appendChild(meta);
    return li;
  }

  function renderPosts(posts) {
    // posts: newest first, already capped at FEED_MAX.
    var frag = document.createDocumentFragment();
    var added = 0;
    var room = feedIds.size ? FEED_PER_FRAME : FEED_MAX;
    for (var i = 0; i < posts.length && added < room; i++) {
      var p = posts[i];
      if (!p || typeof p !== "object" || p.id === undefined || p.id === null) continue;
      var id = String(p.id);
      if (feedIds.has(id)) continue;
      feedIds.add(id);
      frag.appendChild(buildPost(p));
      added++;
    }
    if (!added) return;
    var feed = els.feed;
    var first = feed.firstElementChild;
    if (first && !first.classList.contains("post")) feed.removeChild(first); // placeholder
    feed.insertBefore(frag, feed.firstChild);
    while (feed.children.length > FEED_MAX) {
      var last = feed.lastElementChild;
      feedIds.delete(last.dataset.id);
      feed.removeChild(last);
    }
  }

  // ---------------------------------------------------------------- word cloud
  var wordcloudVersion = null;

  // The word cloud's words are drawn in an image: a click opens Explore on the charts' span.
  if (EXPLORE && els.wordcloud) {
    els.wordcloud.title = "Explore the posts behind these words";
    els.wordcloud.addEventListener("click", function () {
      if (!seriesStarts.length || !isNum(seriesStarts[0])) return;
      window.location.assign(toExplore({ from: new Date(seriesStarts[0] * 1000).toISOString() }));
    });
  }

  function renderWordcloud(wc) {
    if (!wc || !wc.url || wc.version === undefined || wc.version === null) return;
    if (String(wc.version) === wordcloudVersion) return;
    wordcloudVersion = String(wc.version);
    var img = els.wordcloud;
    img.src = String(wc.url);
    img.dataset.version = wordcloudVersion;
    img.hidden = false;
    els.wordcloudPlaceholder.hidden = true;
    setText(els.wordcloudMeta, "version " + wordcloudVersion);
  }

  if (els.wordcloud) {
    els.wordcloud.addEventListener("error", function () {
      els.wordcloud.hidden = true;
      els.wordcloudPlaceholder.hidden = false;
      setText(els.wordcloudPlaceholder, "Word cloud could not be loaded.");
    });
  }

  // ---------------------------------------------------------------- tracked topics
  var trackedChart = null;

  function renderTracked(topics, series) {
    var box = $("tracked-box"), table = $("tracked-share"), empty = $("tracked-empty");
    if (!box || !table || !empty) return;
    var shown = topics.length > 0;
    box.hidden = !shown; table.hidden = !shown; empty.hidden = shown;
    if (!changed("tracked", topics, ["name", "total", "share", "mean_sentiment", "counts"])) return;
    var labels = [];
    for (var i = 0; i < series.length; i++) {
      var d = parseDate((series[i] || {}).start);
      labels.push(d ? timeFmt.format(d) : "");
    }
    var datasets = topics.map(function (t, k) {
      var colour = PALETTE[k % PALETTE.length];
      return { label: String(t.name), data: Array.isArray(t.counts) ? t.counts : [],
               borderColor: colour, backgroundColor: colour, borderWidth: 2, pointRadius: 1,
               tension: 0.25 };
    });
    if (typeof Chart !== "undefined") {
      if (!trackedChart) {
        trackedChart = new Chart($("tracked-chart"), {
          type: "line",
          data: { labels: labels, datasets: datasets },
          options: { animation: false, responsive: true, maintainAspectRatio: false,
                     scales: { y: { beginAtZero: true, title: { display: true, text: "posts" } } } }
        });
      } else {
        trackedChart.data.labels = labels;
        trackedChart.data.datasets = datasets;
        trackedChart.update("none");
      }
      $("tracked-chart").dataset.points = String(labels.length);
    }
    var body = table.tBodies[0];
    body.textContent = "";
    topics.forEach(function (t, k) {
      var row = el("tr", "tracked-row");
      row.dataset.name = String(t.name);
      var name = el("td");
      var swatch = el("span", "swatch");
      swatch.style.background = PALETTE[k % PALETTE.length];
      name.appendChild(swatch);
      name.appendChild(document.createTextNode(String(t.name)));
      row.appendChild(name);
      row.appendChild(el("td", "num", isNum(t.total) ? t.total : 0));
      row.appendChild(el("td", "num tracked-share__value", isNum(t.share) ? (t.share * 100).toFixed(1) + " %" : "–"));
      row.appendChild(el("td", "num", isNum(t.mean_sentiment) ? t.mean_sentiment.toFixed(2) : "–"));
      body.appendChild(row);
    });
  }

  // ---------------------------------------------------------------- update coalescing
  var updatesHandled = 0;
  var pending = null;
  var frameRequested = false;
  var perf = { last: 0, max: 0, total: 0, frames: 0, lastPosts: 0, chartDraws: 0 };

  function emptyPending() {
    return { posts: [], stats: null, series: null, clusters: null, trending: null, wordcloud: null, problems: null, alerts: null, topicEvents: null, newTopics: null, tracked: null };
  }

  function onUpdate(msg) {
    updatesHandled++;
    if (!pending) pending = emptyPending();
    if (msg && typeof msg === "object") {
      if (Array.isArray(msg.posts) && msg.posts.length) {
        // Newer posts go in front of posts still pending from earlier updates.
        var merged = msg.posts.slice(0, FEED_MAX);
        if (merged.length < FEED_MAX && pending.posts.length) {
          merged = merged.concat(pending.posts.slice(0, FEED_MAX - merged.length));
        }
        pending.posts = merged;
      }
      if (msg.stats && typeof msg.stats === "object") pending.stats = msg.stats;
      if (Array.isArray(msg.sentiment_series)) pending.series = msg.sentiment_series;
      if (Array.isArray(msg.clusters)) pending.clusters = msg.clusters;
      if (Array.isArray(msg.trending)) pending.trending = msg.trending;
      if (msg.wordcloud && typeof msg.wordcloud === "object") pending.wordcloud = msg.wordcloud;
      if (Array.isArray(msg.problems)) pending.problems = msg.problems;
      if (Array.isArray(msg.alerts)) pending.alerts = (pending.alerts || []).concat(msg.alerts);
      if (Array.isArray(msg.topic_events)) pending.topicEvents = msg.topic_events;
      if (Array.isArray(msg.new_topics)) pending.newTopics = msg.new_topics;
      if (msg.tracked && Array.isArray(msg.tracked.topics) && Array.isArray(msg.sentiment_series)) {
        pending.tracked = { topics: msg.tracked.topics, series: msg.sentiment_series };
      }
    }
    if (!frameRequested) {
      frameRequested = true;
      requestAnimationFrame(flush);
    }
  }

  var chartData = { series: null, clusters: null };
  var lastChartDraw = -Infinity;
  var chartTimer = null;

  function scheduleCharts(series, clusters) {
    if (series) chartData.series = series;
    if (clusters) chartData.clusters = clusters;
    if (chartTimer !== null) return;
    var wait = lastChartDraw + CHART_INTERVAL_MS - performance.now();
    if (wait <= 0) {
      drawCharts();
    } else {
      chartTimer = setTimeout(function () { requestAnimationFrame(drawCharts); }, wait);
    }
  }

  function drawCharts() {
    chartTimer = null;
    lastChartDraw = performance.now();
    perf.chartDraws++;
    var d = chartData;
    chartData = { series: null, clusters: null };
    try { if (d.series) renderSentimentSeries(d.series); } catch (err) { if (window.console) console.warn("sentiment chart failed", err); }
    try { if (d.clusters) renderClusters(d.clusters); } catch (err) { if (window.console) console.warn("cluster chart failed", err); }
  }

  function flush() {
    frameRequested = false;
    var p = pending;
    pending = null;
    if (!p) return;
    var t0 = performance.now();
    var steps = [
      function () { if (p.posts.length) renderPosts(p.posts); },
      function () { if (p.stats) renderStats(p.stats); },
      function () { if (p.series || p.clusters) scheduleCharts(p.series, p.clusters); },
      function () { if (p.trending) renderTrending(p.trending); },
      function () { if (p.wordcloud) renderWordcloud(p.wordcloud); },
      function () { if (p.problems) renderProblems(p.problems); },
      function () { if (p.alerts) renderAlerts(p.alerts); },
      function () { if (p.topicEvents || p.newTopics) renderTopics(p.topicEvents, p.newTopics); },
      function () { if (p.tracked) renderTracked(p.tracked.topics, p.tracked.series); }
    ];
    for (var i = 0; i < steps.length; i++) {
      try { steps[i](); } catch (err) { if (window.console) console.warn("dashboard render step failed", err); }
    }
    document.body.dataset.updates = String(updatesHandled);
    var dt = performance.now() - t0;
    perf.last = dt;
    perf.max = Math.max(perf.max, dt);
    perf.total += dt;
    perf.frames++;
    perf.lastPosts = p.posts.length;
  }

  // Exposed for tests / debugging (read-only use).
  window.SocialPulseDashboard = {
    perf: perf,
    clusterColour: clusterColour,
    handleUpdate: onUpdate
  };

  // ---------------------------------------------------------------- connection
  function setStatus(state, text) {
    els.status.className = "status status--" + state;
    setText(els.status, text);
  }

  document.body.dataset.updates = "0";
  initCharts();

  if (typeof io === "undefined") {
    setStatus("error", "offline (client library missing)");
    return;
  }

  // A page with its own connection (the Replay page) feeds handleUpdate itself.
  if (document.querySelector("[data-own-socket]")) return;
  var socket = io("/live", { transports: ["websocket", "polling"] });
  socket.on("connect", function () { setStatus("connected", "connected"); });
  socket.on("disconnect", function (reason) {
    setStatus("reconnecting", "reconnecting…");
    // A server-side disconnect is not retried automatically by socket.io.
    if (reason === "io server disconnect") socket.connect();
  });
  socket.on("connect_error", function (err) {
    // Refused for want of a login (the session ended, or the user was removed).
    if (err && err.message === "authentication required") {
      window.location.assign("/login?next=%2F");
      return;
    }
    // socket.active is false when the server refused the connection (no retry).
    if (socket.active) setStatus("reconnecting", "reconnecting…");
    else setStatus("error", "disconnected");
  });
  socket.on("update", onUpdate);
  // This login ended (logged out in another tab, perhaps on another node).
  socket.on("signed_out", function () { window.location.assign("/login?next=%2F"); });
})();
