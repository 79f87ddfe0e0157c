/* The Replay page: starts a replay, controls it, and feeds its own Socket.IO room
 * (namespace /replay) into the dashboard's renderer (window.SocialPulseDashboard). */
(function () {
  "use strict";
  var page = document.getElementById("replay-page");
  if (!page) return;
  var csrf = page.dataset.csrf;
  var form = document.getElementById("replay-form");
  var errorBox = document.getElementById("replay-error");
  var buttons = {
    start: document.getElementById("replay-start-button"),
    pause: document.getElementById("replay-pause"),
    resume: document.getElementById("replay-resume"),
    stop: document.getElementById("replay-stop")
  };
  var bar = document.getElementById("replay-bar");
  var stateEl = document.getElementById("replay-state");
  var statusEl = document.getElementById("status");
  var clockFmt = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium", timeZone: "UTC" });
  var socket = null;
  var sessionId = page.dataset.session || "";

  function setText(id, text) {
    var el = document.getElementById(id);
    if (el && el.textContent !== text) el.textContent = text;
  }

  function showError(message) {
    errorBox.textContent = message || "";
    errorBox.hidden = !message;
  }

  function showSource() {
    var source = form.elements.source.value;
    form.querySelectorAll("[data-for]").forEach(function (el) {
      var f = el.dataset.for;
      el.hidden = !(f === source || (f === "range" && source !== "file"));
    });
  }

  function controls(state) {
    var active = state === "running" || state === "paused";
    buttons.pause.disabled = state !== "running";
    buttons.resume.disabled = state !== "paused";
    buttons.stop.disabled = !active;
    buttons.start.disabled = active;
  }

  function duration(seconds) {
    if (seconds >= 3600) return (seconds / 3600) + " h";
    if (seconds >= 60) return (seconds / 60) + " min";
    return seconds + " s";
  }

  function renderReplay(r) {
    if (!r || typeof r !== "object") return;
    var p = r.progress || {};
    var fraction = typeof p.fraction === "number" ? p.fraction : 0;
    bar.value = fraction;
    bar.dataset.fraction = String(fraction);
    bar.dataset.handedOut = String(p.handed_out || 0);
    setText("replay-clock", typeof p.replay_clock === "number" ? clockFmt.format(new Date(p.replay_clock * 1000)) + " UTC" : "–");
    setText("replay-count", String(p.handed_out || 0) + (p.total ? " / " + p.total : ""));
    setText("replay-window", duration(r.window_seconds || 0));
    var label = r.state + (r.error ? ": " + r.error : "");
    setText("replay-state", label);
    stateEl.dataset.state = r.state;
    statusEl.className = "status status--" + (r.state === "running" ? "connected" : "reconnecting");
    setText("status", r.state);
    var list = document.getElementById("replay-letters");
    var letters = Array.isArray(r.dead_letters) ? r.dead_letters : [];
    if (String(letters.length) !== list.dataset.count) {
      list.textContent = "";
      letters.forEach(function (d) {
        var where = d.position && d.position.line ? "line " + d.position.line : JSON.stringify(d.position || {});
        var li = document.createElement("li");
        li.textContent = where + ": " + String(d.reason || "");
        list.appendChild(li);
      });
      list.dataset.count = String(letters.length);
    }
    controls(r.state);
  }

  function connect(id) {
    if (socket) socket.disconnect();
    if (typeof io === "undefined") { showError("the Socket.IO client is missing"); return; }
    socket = io("/replay", { transports: ["websocket", "polling"], auth: { session: id } });
    socket.on("update", function (msg) {
      if (msg && msg.replay) renderReplay(msg.replay);
      if (window.SocialPulseDashboard) window.SocialPulseDashboard.handleUpdate(msg);
    });
    socket.on("connect_error", function (err) {
      showError("cannot follow this replay: " + (err && err.message ? err.message : "refused"));
    });
  }

  function post(url, body) {
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrf },
      body: JSON.stringify(body || {})
    }).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (data) {
        if (!response.ok) throw new Error(data.error || ("the server answered " + response.status));
        return data;
      });
    });
  }

  form.elements.source.addEventListener("change", showSource);
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    showError("");
    var source = form.elements.source.value;
    var body = { source: source, speed: form.elements.speed.value, learning: form.elements.learning.value };
    if (source === "file") {
      body.file = form.elements.file.value;
      ["text_col", "id_col", "author_col", "time_col"].forEach(function (name) { body[name] = form.elements[name].value; });
    } else {
      body.start = form.elements.start.value;
      body.end = form.elements.end.value;
      if (source === "kafka") body.topic = form.elements.topic.value;
    }
    if (form.elements.to_archive) body.to_archive = form.elements.to_archive.checked;
    buttons.start.disabled = true;
    post("/replay/sessions", body).then(function (status) {
      sessionId = status.id;
      history.replaceState(null, "", "/replay?session=" + encodeURIComponent(status.id));
      renderReplay(status);
      connect(status.id);
    }).catch(function (err) {
      buttons.start.disabled = false;
      showError(err.message);
    });
  });

  ["pause", "resume", "stop"].forEach(function (action) {
    buttons[action].addEventListener("click", function () {
      if (!sessionId) return;
      post("/replay/sessions/" + encodeURIComponent(sessionId) + "/" + action).then(renderReplay).catch(function (err) { showError(err.message); });
    });
  });

  showSource();
  if (sessionId) connect(sessionId);
})();
