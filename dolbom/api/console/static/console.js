/* Dolbom console: small progressive enhancements, no libraries, no external requests.
   Every page works without this file; with it:
   - the alert inbox updates live from the server-sent event stream (new alerts appear,
     changed ones update, resolved ones move down) and announces changes politely;
   - acknowledge / resolve happen in place (the server returns the updated row);
   - the escalation clocks tick;
   - an expired session is refreshed (or the browser is sent to the login page). */
(function () {
  "use strict";

  var doc = document;
  var meta = doc.querySelector('meta[name="csrf-token"]');
  var csrf = meta ? meta.getAttribute("content") : "";
  var strings = {};
  try { strings = JSON.parse(doc.getElementById("i18n").textContent || "{}"); } catch (e) { strings = {}; }
  var serverNow = Number(doc.body.getAttribute("data-now")) || Date.now();
  var skew = serverNow - Date.now();  // the server's clock decides escalation, not the phone's

  function t(key, values) {
    var s = strings[key] || key;
    if (values) {
      Object.keys(values).forEach(function (k) { s = s.split("{" + k + "}").join(String(values[k])); });
    }
    return s;
  }

  function now() { return Date.now() + skew; }

  function duration(seconds) {
    var s = Math.max(0, Math.floor(seconds));
    if (s < 60) { return t("unit.s", { n: s }); }
    var m = Math.floor(s / 60);
    if (m < 60) { return t("unit.min", { n: m }); }
    var h = Math.floor(m / 60); m = m % 60;
    if (h < 48) { return m ? t("unit.h", { n: h }) + t("unit.join") + t("unit.min", { n: m }) : t("unit.h", { n: h }); }
    var d = Math.floor(h / 24); h = h % 24;
    return h ? t("unit.d", { n: d }) + t("unit.join") + t("unit.h", { n: h }) : t("unit.d", { n: d });
  }

  function announce(text) {
    var live = doc.getElementById("live");
    if (!live) { return; }
    live.textContent = "";
    window.setTimeout(function () { live.textContent = text; }, 50);
  }

  /* -- ticking clocks --------------------------------------------------------- */
  function tick() {
    var n = now();
    doc.querySelectorAll("[data-since]").forEach(function (el) {
      var since = Number(el.getAttribute("data-since"));
      if (since) { el.textContent = t("alert.raised_ago", { ago: duration((n - since) / 1000) }); }
    });
    doc.querySelectorAll("[data-until]").forEach(function (el) {
      var until = Number(el.getAttribute("data-until"));
      if (!until) { return; }
      var left = (until - n) / 1000;
      if (left > 0) {
        el.textContent = t("alert.escalates_in", { left: duration(left) });
        el.className = "esc esc-counting";
      } else {
        el.textContent = t("alert.escalation_due");
        el.className = "esc esc-due";
      }
    });
  }

  /* -- session: refresh the access cookie, or go to the login page ----------- */
  // One refresh at a time: a refresh token works once, and the server revokes the whole
  // session when one is presented twice, so concurrent 401s share this one request.
  var refreshing = null;
  function refreshSession() {
    if (refreshing) { return refreshing; }
    refreshing = fetch("/console/session/refresh", {
      method: "POST", credentials: "same-origin",
      headers: { "X-CSRF-Token": csrf, "X-Requested-With": "fetch" }
    }).then(function (r) {
      if (r.status === 401) {
        window.location.assign("/console/login?next=" + encodeURIComponent(window.location.pathname + window.location.search));
        return false;
      }
      return r.ok;
    });
    refreshing.then(function () { refreshing = null; }, function () { refreshing = null; });
    return refreshing;
  }

  /* -- rows: fetch the server's rendering of one alert ------------------------ */
  var RANK = { high: 2, medium: 1, low: 0 };
  var inbox = doc.getElementById("inbox");
  var recent = doc.getElementById("recent");

  function updateEmpty() {
    var empty = doc.getElementById("inbox-empty");
    if (empty && inbox) { empty.hidden = inbox.querySelector(".alert-row") !== null; }
    var count = doc.getElementById("nav-open-count");
    if (count && inbox) {
      var n = inbox.querySelectorAll('.alert-row:not([data-status="resolved"])').length;
      count.textContent = String(n);
      count.hidden = n === 0;
    }
  }

  function parseRow(html) {
    var tpl = doc.createElement("template");
    tpl.innerHTML = html.trim();
    var li = tpl.content.firstElementChild;
    return li && li.classList.contains("alert-row") ? li : null;
  }

  function place(li, announceIt) {
    var id = li.getAttribute("data-alert-id");
    var old = doc.getElementById("alert-" + id);
    var resolved = li.getAttribute("data-status") === "resolved";
    var wasNew = !old;
    var changed = wasNew || old.getAttribute("data-status") !== li.getAttribute("data-status");
    var keepOpen = old && old.querySelector("details[open]") && !resolved;
    if (old && (old.parentNode === inbox || old.parentNode === recent || !inbox)) {
      if (resolved && inbox && recent && old.parentNode === inbox) {
        old.parentNode.removeChild(old);
        recent.insertBefore(li, recent.firstChild);
      } else {
        old.parentNode.replaceChild(li, old);
      }
    } else if (inbox && resolved && recent) {
      recent.insertBefore(li, recent.firstChild);
    } else if (inbox) {
      // Where the server would put it: after the alerts at least as urgent (they waited
      // longer), before the less urgent ones.
      var mine = RANK[li.getAttribute("data-priority")] || 0;
      var before = null;
      inbox.querySelectorAll(".alert-row").forEach(function (row) {
        if (!before && (RANK[row.getAttribute("data-priority")] || 0) < mine) { before = row; }
      });
      inbox.insertBefore(li, before);
    } else if (old) {
      old.parentNode.replaceChild(li, old);
    }
    if (keepOpen) { var d = li.querySelector("details"); if (d) { d.open = true; } }
    li.classList.add("fresh");
    enhance(li);
    updateEmpty();
    tick();
    if (announceIt && changed) {  // a note or a repeat does not interrupt anyone
      var title = li.getAttribute("data-title") || "";
      announce(t(wasNew ? "inbox.new_alert" : "inbox.updated_alert", { title: title }));
    }
  }

  function loadRow(id, announceIt) {
    if (!inbox && !doc.getElementById("alert-" + id)) { return Promise.resolve(); }
    var base = (inbox && inbox.getAttribute("data-row-url")) || "/console/alerts/";
    return fetch(base + encodeURIComponent(id) + "/row?next=" + encodeURIComponent(window.location.pathname),
                 { credentials: "same-origin", headers: { "X-Requested-With": "fetch" } })
      .then(function (r) {
        if (r.status === 404) {
          var gone = doc.getElementById("alert-" + id);
          if (gone) { gone.parentNode.removeChild(gone); updateEmpty(); }
          return null;
        }
        if (r.status === 401) { return refreshSession().then(function (ok) { return ok ? loadRow(id, announceIt) : null; }); }
        return r.ok ? r.text() : null;
      })
      .then(function (html) {
        if (typeof html === "string") { var li = parseRow(html); if (li) { place(li, announceIt); } }
      })
      .catch(function () { /* the next event or a reload fixes it */ });
  }

  /* -- the live stream -------------------------------------------------------- */
  function alertId(data) {
    if (!data || typeof data !== "object") { return null; }
    var id = data.id !== undefined ? data.id : data.alert_id;
    if (id === undefined && data.alert && typeof data.alert === "object") { id = data.alert.id; }
    return id === undefined || id === null ? null : String(id);
  }

  function setLive(state) {
    var el = doc.getElementById("live-status");
    if (!el) { return; }
    el.setAttribute("data-state", state);
    el.textContent = t(state === "on" ? "inbox.live_on" : state === "off" ? "inbox.live_off" : "inbox.live_connecting");
  }

  var source = null;
  var failures = 0;
  var lastEventId = "";  // a new EventSource resumes after it (?after=): nothing is missed
  function connect() {
    if (!inbox || !window.EventSource) { return; }
    var url = inbox.getAttribute("data-stream") || "/api/v1/alerts/stream";
    if (/^[0-9]+$/.test(lastEventId)) { url += (url.indexOf("?") < 0 ? "?" : "&") + "after=" + lastEventId; }
    source = new EventSource(url, { withCredentials: true });
    var onData = function (ev) {
      if (ev.lastEventId) { lastEventId = ev.lastEventId; }
      var data = null;
      try { data = JSON.parse(ev.data); } catch (e) { return; }
      var id = alertId(data);
      if (id !== null) { loadRow(id, true); }
    };
    source.onopen = function () { failures = 0; setLive("on"); };
    source.onmessage = onData;
    source.addEventListener("alert", onData);  // the stream names its events "alert"
    // More changed while away than the stream replays: the page itself is out of date.
    source.addEventListener("reset", function () { window.location.reload(); });
    source.onerror = function () {
      setLive("off");
      if (source.readyState === EventSource.CLOSED) {
        // The server refused the stream (expired cookie?): refresh, then reconnect.
        source.close();
        failures += 1;
        var wait = Math.min(30000, 1000 * Math.pow(2, Math.min(failures, 5)));
        refreshSession().then(function (ok) {
          if (ok !== false) { window.setTimeout(connect, failures > 1 ? wait : 200); }
        }).catch(function () { window.setTimeout(connect, wait); });
      }
    };
  }

  /* -- forms: acknowledge / resolve in place ---------------------------------- */
  function enhance(root) {
    root.querySelectorAll("form[data-enhance]").forEach(function (form) {
      if (form.getAttribute("data-enhanced")) { return; }
      form.setAttribute("data-enhanced", "1");
      form.addEventListener("submit", function (ev) {
        ev.preventDefault();
        var body = new FormData(form);
        if (ev.submitter && ev.submitter.name) { body.append(ev.submitter.name, ev.submitter.value); }
        var buttons = form.querySelectorAll("button");
        buttons.forEach(function (b) { b.disabled = true; });
        var send = function () {
          return fetch(form.action, { method: "POST", body: body, credentials: "same-origin",
                                      headers: { "X-Requested-With": "fetch", "X-CSRF-Token": csrf } });
        };
        send().then(function (r) {
          if (r.status === 401) {
            return refreshSession().then(function (ok) { return ok ? send() : r; });
          }
          return r;
        }).then(function (r) {
          return r.text().then(function (text) { return { r: r, text: text }; });
        }).then(function (res) {
          var li = res.r.ok ? parseRow(res.text) : null;
          if (li) {
            place(li, false);
            var msg = res.r.headers.get("X-Console-Message");
            if (msg) { announce(decodeURIComponent(msg)); }
            var h = li.querySelector("h3 a");
            if (h) { h.focus(); }
          } else {
            buttons.forEach(function (b) { b.disabled = false; });
            var err = res.r.headers.get("X-Console-Message");
            announce(err ? decodeURIComponent(err) : String(res.r.status));
            if (err) { window.alert(decodeURIComponent(err)); }
          }
        }).catch(function () {
          // The request failed on the way: fall back to a plain POST (a full page load).
          buttons.forEach(function (b) { b.disabled = false; });
          if (ev.submitter && ev.submitter.name) {
            var keep = doc.createElement("input");
            keep.type = "hidden"; keep.name = ev.submitter.name; keep.value = ev.submitter.value;
            form.appendChild(keep);
          }
          HTMLFormElement.prototype.submit.call(form);
        });
      });
    });
  }

  enhance(doc);
  tick();
  window.setInterval(tick, 1000);
  connect();
  updateEmpty();
})();
