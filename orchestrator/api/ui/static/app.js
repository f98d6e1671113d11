/* orchestrator dashboard: progressive enhancement of the server-rendered pages.
 * Owns: auto-submitting filter forms, the live execution page (DAG drawn with cytoscape + dagre,
 * step states, log follow, metric charts with ECharts), and the compare page's charts.
 * No inline script anywhere (the Content-Security-Policy forbids it): everything is wired here
 * from data-* attributes. */
(function () {
  "use strict";

  var COLORS = {
    SUCCEEDED: "#2e7d32", CACHED: "#00897b", RUNNING: "#1565c0", PENDING: "#9e9e9e", FAILED: "#c62828",
    STOPPED: "#6d4c41", SKIPPED: "#bdbdbd", OMITTED: "#bdbdbd"
  };

  function $(sel, root) { return (root || document).querySelector(sel); }
  function $all(sel, root) { return Array.prototype.slice.call((root || document).querySelectorAll(sel)); }

  function getJSON(url) {
    return fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } }).then(function (r) {
      if (!r.ok) { throw new Error(url + ": " + r.status); }
      return r.json();
    });
  }

  // ------------------------------------------------------------------ forms
  function wireForms() {
    $all("[data-autosubmit]").forEach(function (el) {
      el.addEventListener("change", function () { if (el.form) { el.form.requestSubmit(); } });
    });
    $all("[data-debounce]").forEach(function (el) {
      var t = null;
      el.addEventListener("input", function () {
        clearTimeout(t);
        t = setTimeout(function () { if (el.form) { el.form.requestSubmit(); } }, 400);
      });
    });
  }

  // ------------------------------------------------------------------ execution page
  function ExecutionPage(root) {
    this.root = root;
    this.terminal = root.dataset.terminal === "1";
    this.cy = null;
    this.signature = "";
    this.logStep = null;
    this.logOffset = 0;
    this.logDone = false;
    this.charts = {};
  }

  ExecutionPage.prototype.start = function () {
    var self = this;
    this.poll(true);
    var sel = $("#log-step");
    if (sel) {
      sel.addEventListener("change", function () { self.setLogStep(sel.value); });
      if (sel.value) { this.setLogStep(sel.value); }
    }
    var follow = $("#log-follow");
    if (follow) { follow.addEventListener("change", function () { if (follow.checked) { self.tailLog(); } }); }
    this.loadCharts();
  };

  ExecutionPage.prototype.poll = function (first) {
    var self = this;
    getJSON(this.root.dataset.state + "?dag=1").then(function (s) {
      self.apply(s, first);
      if (!s.terminal) { setTimeout(function () { self.poll(false); }, 1000); }
    }).catch(function (e) { console.warn(e); setTimeout(function () { self.poll(false); }, 3000); });
  };

  ExecutionPage.prototype.apply = function (s, first) {
    var badge = $("#status");
    if (badge) { badge.textContent = s.status; badge.className = "st st-" + s.status; }
    var dur = $("#duration");
    if (dur && s.duration !== null) { dur.textContent = s.duration.toFixed(1) + "s"; }
    var msg = $("#status-message");
    if (msg) { msg.textContent = s.message || ""; }
    document.body.dataset.execStatus = s.status;
    this.drawDag(s.dag);
    var sig = s.steps.map(function (x) { return x.name + ":" + x.state + ":" + x.attempts; }).join("|");
    if (!first && sig !== this.signature && window.htmx) {
      htmx.ajax("GET", location.pathname, { target: "#steps", swap: "outerHTML", select: "#steps" });
      htmx.ajax("GET", location.pathname, { target: "#details", swap: "outerHTML", select: "#details" });
    }
    this.signature = sig;
    var sel = $("#log-step");
    if (sel) {
      var have = $all("option", sel).map(function (o) { return o.value; });
      s.steps.forEach(function (x) {
        if (have.indexOf(x.name) < 0) { var o = document.createElement("option"); o.value = o.textContent = x.name; sel.appendChild(o); }
      });
      if (!this.logStep && sel.value) { this.setLogStep(sel.value); }
    }
    if (s.terminal && !this.terminal) {
      this.terminal = true;
      ["#stop-form"].forEach(function (q) { var f = $(q); if (f) { f.classList.add("hidden"); } });
      ["#resume-form", "#rerun-form"].forEach(function (q) { var f = $(q); if (f) { f.classList.remove("hidden"); } });
      this.loadCharts();
      if (this.logDone === false) { this.tailLog(); }
    }
  };

  ExecutionPage.prototype.drawDag = function (dag) {
    var box = $("#dag");
    if (!box || !window.cytoscape || !dag) { return; }
    if (this.cy) {
      var cy = this.cy;
      dag.nodes.forEach(function (n) {
        var el = cy.getElementById(n.id);
        if (el.nonempty()) { el.data("state", n.state); el.data("color", COLORS[n.state] || "#9e9e9e"); }
      });
      box.dataset.states = dag.nodes.map(function (n) { return n.id + "=" + n.state; }).join(",");
      return;
    }
    var els = dag.nodes.map(function (n) {
      return { data: { id: n.id, label: n.id, state: n.state, color: COLORS[n.state] || "#9e9e9e" } };
    }).concat(dag.edges.map(function (e, i) { return { data: { id: "e" + i, source: e[0], target: e[1] } }; }));
    var self = this;
    this.cy = cytoscape({
      container: box, elements: els, autoungrabify: true, maxZoom: 1.6, minZoom: 0.2,
      style: [
        { selector: "node", style: { "label": "data(label)", "background-color": "data(color)", "color": "#222",
          "font-size": 11, "text-valign": "bottom", "text-margin-y": 4, "width": 22, "height": 22 } },
        { selector: "node[state = 'RUNNING']", style: { "border-width": 4, "border-color": "#90caf9" } },
        { selector: "edge", style: { "width": 1.5, "line-color": "#b0bec5", "target-arrow-color": "#b0bec5",
          "target-arrow-shape": "triangle", "curve-style": "bezier" } }
      ],
      // dagre lays out a few hundred steps in well under a second; beyond that a plain grid keeps the page responsive
      layout: dag.nodes.length <= 400 ? { name: "dagre", rankDir: "LR", nodeSep: 20, rankSep: 60, fit: true, padding: 16 }
        : { name: "grid", fit: true, padding: 16, avoidOverlap: true }
    });
    this.cy.on("tap", "node", function (evt) {
      var sel = $("#log-step");
      if (sel) { sel.value = evt.target.id(); self.setLogStep(sel.value); }
    });
    box.dataset.ready = "1";
    box.dataset.states = dag.nodes.map(function (n) { return n.id + "=" + n.state; }).join(",");
  };

  ExecutionPage.prototype.setLogStep = function (step) {
    this.logStep = step;
    this.logOffset = 0;
    this.logDone = false;
    this.logGen = (this.logGen || 0) + 1;
    var pre = $("#log");
    if (pre) { pre.textContent = ""; }
    this.tailLog();
  };

  ExecutionPage.prototype.tailLog = function () {
    var self = this, gen = this.logGen, pre = $("#log");
    if (!pre || !this.logStep || this.busy) { return; }
    this.busy = true;
    var url = this.root.dataset.log + "?step=" + encodeURIComponent(this.logStep) + "&offset=" + this.logOffset;
    getJSON(url).then(function (r) {
      self.busy = false;
      if (gen !== self.logGen) { self.tailLog(); return; }
      if (r.text) {
        pre.appendChild(document.createTextNode(r.text));
        if ($("#log-follow") && $("#log-follow").checked) { pre.scrollTop = pre.scrollHeight; }
      }
      self.logOffset = r.offset;
      self.logDone = r.done;
      var note = $("#log-note");
      if (note) { note.textContent = (r.from ? "reused from execution " + r.from : "") + (r.done ? "" : " following…"); }
      var follow = $("#log-follow");
      if (!r.done && follow && follow.checked) { setTimeout(function () { self.tailLog(); }, r.text ? 200 : 1000); }
    }).catch(function (e) { self.busy = false; console.warn(e); });
  };

  var EAGER_CHARTS = 8;  // charts drawn at once; the others when scrolled into view (many charts never freeze the tab)

  function chartOption(s) {
    return {
      animation: false,
      title: { text: s.name, subtext: s.x.length < s.total ? s.total + " points, " + s.x.length + " shown (LTTB)" : s.total + " points",
               textStyle: { fontSize: 13 } },
      tooltip: { trigger: "axis" }, grid: { left: 50, right: 16, top: 56, bottom: 30 },
      xAxis: { type: "value", name: "step", scale: true }, yAxis: { type: "value", scale: true },
      dataZoom: [{ type: "inside" }],
      series: [{ type: "line", showSymbol: s.x.length < 60, data: s.x.map(function (x, i) { return [x, s.y[i]]; }) }]
    };
  }

  ExecutionPage.prototype.loadCharts = function () {
    var box = $("#charts"), self = this;
    if (!box || !window.echarts) { return; }
    var t0 = performance.now();
    getJSON(this.root.dataset.series).then(function (d) {
      var pending = Math.min(d.series.length, EAGER_CHARTS);
      var done = function () {
        pending -= 1;
        if (pending === 0) {
          document.body.dataset.chartsMs = String(Math.round(performance.now() - t0));
          document.body.dataset.chartsAt = String(Math.round(performance.now()));
        }
      };
      var lazy = self.lazy = self.lazy || (window.IntersectionObserver ? new IntersectionObserver(function (entries) {
        entries.forEach(function (e) {
          if (!e.isIntersecting) { return; }
          lazy.unobserve(e.target);
          var s = self.pendingSeries[e.target.dataset.series];
          if (s) { delete self.pendingSeries[s.name]; self.draw(e.target, s, null); }
        });
      }, { rootMargin: "200px" }) : null);
      self.pendingSeries = self.pendingSeries || {};
      self.divs = self.divs || {};
      d.series.forEach(function (s, i) {
        var chart = self.charts[s.name];
        if (chart) { chart.setOption(chartOption(s)); return; }
        if (self.divs[s.name]) { self.pendingSeries[s.name] = s; return; }  // not scrolled into view yet
        var div = self.divs[s.name] = document.createElement("div");
        div.className = "chart";
        div.dataset.series = s.name;
        box.appendChild(div);
        if (i < EAGER_CHARTS || !lazy) {
          self.draw(div, s, i < EAGER_CHARTS ? done : null);
        } else {
          self.pendingSeries[s.name] = s;
          lazy.observe(div);
        }
      });
      if (d.series.length === 0) { document.body.dataset.chartsMs = "0"; document.body.dataset.chartsAt = "0"; }
      box.dataset.ready = "1";
      if (!self.terminal) { setTimeout(function () { self.loadCharts(); }, 3000); }
    }).catch(function (e) { console.warn(e); });
  };

  ExecutionPage.prototype.draw = function (div, s, onDone) {
    var chart = this.charts[s.name] = echarts.init(div, null, { renderer: "canvas" });
    if (onDone) {
      var h = function () { chart.off("finished", h); onDone(); };
      chart.on("finished", h);
    }
    chart.setOption(chartOption(s));
    return chart;
  };

  // ------------------------------------------------------------------ compare page
  function comparePage(root) {
    getJSON(root.dataset.src).then(function (d) {
      var runs = d.executions, metrics = d.metrics;
      var label = function (e) { return e.id.slice(0, 8) + (e.best ? " ★" : ""); };
      var val = function (e, m) { var v = e.metrics[m]; return v ? (v.best !== null && v.best !== undefined ? v.best : v.last) : null; };
      var bars = echarts.init($("#bars"));
      bars.setOption({
        animation: false, tooltip: { trigger: "axis" }, legend: { top: 0 }, grid: { top: 40, left: 50, right: 10, bottom: 60 },
        xAxis: { type: "category", data: runs.map(label), axisLabel: { rotate: 30 } }, yAxis: { type: "value" },
        series: metrics.map(function (m) {
          return { name: m, type: "bar", data: runs.map(function (e) {
            return { value: val(e, m), itemStyle: e.best ? { borderColor: "#f9a825", borderWidth: 3 } : {} };
          }) };
        })
      });
      var scatter = echarts.init($("#scatter"));
      var drawScatter = function () {
        var m = $("#sc-metric").value, p = $("#sc-param").value;
        var pts = runs.map(function (e) {
          var x = e.parameters[p], n = Number(x);
          return { value: [isNaN(n) ? String(x) : n, val(e, m)], name: e.id, itemStyle: e.best ? { color: "#f9a825" } : {} };
        });
        var numeric = pts.every(function (q) { return typeof q.value[0] === "number"; });
        scatter.setOption({
          animation: false, tooltip: { formatter: function (q) { var h = echarts.format.encodeHTML; return h(String(q.name)) + "<br>" + h(String(p)) + "=" + h(String(q.value[0])) + ", " + h(String(m)) + "=" + h(String(q.value[1])); } },
          grid: { top: 20, left: 50, right: 10, bottom: 40 },
          xAxis: numeric ? { type: "value", name: p, scale: true } : { type: "category", name: p },
          yAxis: { type: "value", name: m, scale: true },
          series: [{ type: "scatter", symbolSize: 12, data: pts }]
        }, true);
      };
      if ($("#sc-metric") && $("#sc-param") && metrics.length) {
        $("#sc-metric").addEventListener("change", drawScatter);
        $("#sc-param").addEventListener("change", drawScatter);
        drawScatter();
      }
      var axesP = d.differingParameters.length ? d.differingParameters : d.parameters.slice(0, 8);
      var axes = axesP.map(function (p, i) {
        var vals = runs.map(function (e) { return e.parameters[p]; });
        var numeric = vals.every(function (v) { return v !== undefined && v !== "" && !isNaN(Number(v)); });
        return numeric ? { dim: i, name: p } : { dim: i, name: p, type: "category",
          data: Array.from(new Set(vals.map(String))) };
      }).concat(metrics.map(function (m, j) { return { dim: axesP.length + j, name: m }; }));
      var par = echarts.init($("#parallel"));
      par.setOption({
        animation: false, parallelAxis: axes, parallel: { left: 60, right: 80, top: 40, bottom: 30 },
        tooltip: {},
        series: [{ type: "parallel", lineStyle: { width: 2, opacity: 0.6 }, data: runs.map(function (e) {
          var row = axesP.map(function (p) { var v = e.parameters[p]; var n = Number(v); return isNaN(n) ? String(v) : n; })
            .concat(metrics.map(function (m) { return val(e, m); }));
          return { value: row, name: e.id, lineStyle: e.best ? { color: "#f9a825", width: 4, opacity: 1 } : {} };
        }) }]
      });
      root.dataset.ready = "1";
    }).catch(function (e) { console.warn(e); });
  }

  document.addEventListener("DOMContentLoaded", function () {
    wireForms();
    var ex = $("#execution");
    if (ex) { new ExecutionPage(ex).start(); }
    var cmp = $("#compare");
    if (cmp) { comparePage(cmp); }
  });
})();
