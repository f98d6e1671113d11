/* orchestrator dashboard: the sweep and deployment pages (progressive enhancement).
 * Owns: a sweep's objective-per-trial + best-so-far chart and its parallel coordinates (ECharts),
 * polling an open sweep (the page reloads when its status changes); a deployment's log follow and
 * status poll, and the "try it" form sent with fetch (its CSRF token is a form field, as for every
 * POST) with the predictor's answer shown. No inline script (the CSP forbids it): wired from ids
 * and data-* attributes. */
(function () {
  "use strict";

  function $(sel) { return document.querySelector(sel); }

  function getJSON(url) {
    return fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } }).then(function (r) {
      if (!r.ok) { throw new Error(url + ": " + r.status); }
      return r.json();
    });
  }

  var STATUS_COLORS = { COMPLETED: "#1565c0", STOPPED: "#8d6e63", DEAD: "#c62828", RUNNING: "#90caf9" };

  // ------------------------------------------------------------------ a sweep
  // a number to n significant digits, as the CLI's and the tables' %.{n}g (0.935673, 2)
  function sig(v, n) {
    var x = Number(v);
    return isFinite(x) ? String(Number(x.toPrecision(n))) : String(v);
  }

  function SweepPage(root) {
    this.root = root;
    this.status = root.dataset.status;
    this.objective = null;
    this.parallel = null;
  }

  SweepPage.prototype.load = function () {
    var self = this;
    getJSON(this.root.dataset.src).then(function (d) {
      if (d.status !== self.status) { location.reload(); return; }
      self.draw(d);
      self.root.dataset.ready = "1";
      if (d.open) { setTimeout(function () { self.load(); }, 2000); }
    }).catch(function (e) { console.warn(e); setTimeout(function () { self.load(); }, 4000); });
  };

  SweepPage.prototype.draw = function (d) {
    if (!window.echarts) { return; }
    var box = $("#objective-chart"), best = d.best, many = d.trial.length > 2000;
    if (box) {
      this.objective = this.objective || echarts.init(box);
      var pts = [];
      d.trial.forEach(function (t, i) {
        var v = d.value[i];
        if (v === null) { return; }
        var isBest = best && best.trial === t && d.trialStatus[i] === "COMPLETED" && best.value === v;
        pts.push({ value: [t, v], status: d.trialStatus[i], policy: d.policy[i],
                   symbol: d.policy[i] ? "triangle" : "circle", symbolSize: isBest ? 16 : (many ? 4 : 10),
                   itemStyle: { color: isBest ? "#f9a825" : (STATUS_COLORS[d.trialStatus[i]] || "#9e9e9e") } });
      });
      this.objective.setOption({
        animation: false, title: { text: d.metric + " (" + d.goal + ")", textStyle: { fontSize: 13 } },
        legend: { top: 0, right: 10 }, grid: { left: 56, right: 16, top: 40, bottom: 36 },
        tooltip: { trigger: "item", formatter: function (q) {
          var h = echarts.format.encodeHTML;
          var extra = q.data && q.data.policy ? "<br>stopped by " + h(String(q.data.policy)) : (q.data && q.data.status ? "<br>" + h(String(q.data.status)) : "");
          return "trial " + h(String(q.value[0])) + ": " + h(sig(q.value[1], 6)) + extra;
        } },
        xAxis: { type: "value", name: "trial", minInterval: 1 }, yAxis: { type: "value", scale: true },
        dataZoom: [{ type: "inside" }],
        series: [
          { name: "objective", type: "scatter", large: many, data: pts },
          { name: "best so far", type: "line", step: "end", showSymbol: false,
            lineStyle: { color: "#f9a825", width: 2 }, itemStyle: { color: "#f9a825" },
            data: d.trial.map(function (t, i) { return [t, d.bestSoFar[i]]; }) }
        ]
      }, true);
    }
    var par = $("#parallel-chart");
    if (par && d.rows.length) {
      this.parallel = this.parallel || echarts.init(par);
      var axes = d.parameters.map(function (p, i) {
        var vals = d.rows.map(function (r) { return r[i]; });
        var numeric = vals.every(function (v) { return v !== null && v !== undefined && v !== "" && !isNaN(Number(v)); });
        return numeric ? { dim: i, name: p, scale: true } : { dim: i, name: p, type: "category",
          data: Array.from(new Set(vals.map(String))) };
      });
      axes.push({ dim: d.parameters.length, name: d.metric, scale: true });
      this.parallel.setOption({
        animation: false, parallelAxis: axes, parallel: { left: 60, right: 80, top: 40, bottom: 30 },
        tooltip: {},
        series: [{ type: "parallel", progressive: 1000, lineStyle: { width: many ? 1 : 2, opacity: many ? 0.25 : 0.6 },
          data: d.rows.map(function (r, j) {
            var row = r.map(function (v, i) {
              if (i === r.length - 1) { return v; }
              return axes[i].type === "category" ? String(v) : Number(v);
            });
            return { value: row, lineStyle: j === d.rowBest ? { color: "#f9a825", width: 4, opacity: 1 }
              : (d.rowStatus[j] === "STOPPED" ? { type: "dashed" } : {}) };
          }) }]
      }, true);
    }
  };

  // ------------------------------------------------------------------ a deployment
  function DeploymentPage(root) {
    this.root = root;
    this.offset = 0;
    this.busy = false;
    this.status = $("#status") ? $("#status").textContent : "";
  }

  DeploymentPage.prototype.tail = function () {
    var self = this, pre = $("#log");
    if (!pre || this.busy) { return; }
    this.busy = true;
    getJSON(this.root.dataset.log + "?offset=" + this.offset).then(function (r) {
      self.busy = false;
      if (r.text) {
        pre.appendChild(document.createTextNode(r.text));
        if ($("#log-follow") && $("#log-follow").checked) { pre.scrollTop = pre.scrollHeight; }
      }
      self.offset = r.offset;
      if (r.status !== self.status) {  // a status change redraws the page's facts and buttons
        if (self.status === "" || !$("#predict-answer") || !$("#predict-answer").textContent) { location.reload(); return; }
        self.status = r.status;
        var badge = $("#status");
        if (badge) { badge.textContent = r.status; badge.className = "st st-" + r.status; }
        var btn = $("#predict");
        if (btn) { btn.disabled = r.status !== "RUNNING"; }
      }
      var note = $("#log-note");
      if (note) { note.textContent = r.done ? "" : "· following…"; }
      self.root.dataset.logReady = "1";
      var follow = $("#log-follow");
      if (!r.done && follow && follow.checked) { setTimeout(function () { self.tail(); }, r.text ? 300 : 1000); }
    }).catch(function (e) { self.busy = false; console.warn(e); });
  };

  DeploymentPage.prototype.wirePredict = function () {
    var form = $("#predict-form");
    if (!form) { return; }
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var out = $("#predict-answer"), status = $("#predict-status");
      status.textContent = "sending…";
      fetch(form.action, { method: "POST", credentials: "same-origin", headers: { "Accept": "application/json" },
                           body: new URLSearchParams(new FormData(form)) }).then(function (r) {
        var ctype = r.headers.get("content-type") || "";
        return (ctype.indexOf("application/json") >= 0 ? r.json() : r.text()).then(function (x) { return [r.status, x]; });
      }).then(function (pair) {
        var code = pair[0], x = pair[1];
        if (code !== 200 || typeof x !== "object") {  // refused here (not JSON, wrong path): the dashboard's message
          status.textContent = "refused (" + code + ")";
          out.textContent = typeof x === "string" ? x : JSON.stringify(x);
        } else {
          status.textContent = "HTTP " + x.status + (x.truncated ? " (truncated)" : "");
          var text = x.body;
          try { text = JSON.stringify(JSON.parse(x.body), null, 2); } catch (e) { /* not JSON: as sent */ }
          out.textContent = text;
        }
        form.dataset.answered = String(code === 200 ? x.status : code);
      }).catch(function (e) { status.textContent = "failed: " + e; });
    });
  };

  document.addEventListener("DOMContentLoaded", function () {
    var sw = $("#sweep");
    if (sw) { new SweepPage(sw).load(); }
    var dep = $("#deployment");
    if (dep) {
      var page = new DeploymentPage(dep);
      page.wirePredict();
      page.tail();
      var follow = $("#log-follow");
      if (follow) { follow.addEventListener("change", function () { if (follow.checked) { page.tail(); } }); }
    }
  });
})();
