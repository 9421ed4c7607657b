/*
 * meshserve's charts: one look for the console and the HTML reports (sidecars/reports/html.py
 * inlines this file and Chart.js into each report), drawn by Chart.js, chart.umd.min.js beside
 * this file: Chart.js 4.6.2 (MIT, LICENSE in chart.js-LICENSE.md), the minified UMD build from
 * the npm package chart.js@4.6.2 (`npm pack chart.js@4.6.2`, package/dist/chart.umd.min.js).
 *
 * A chart is described by a spec (Python builds the same specs for reports):
 *   line: {kind: "line", title, y_label, times (x in seconds since the epoch), series: [{name, points: [[x, y]]}]}
 *   bars: {kind: "bars", title, y_label, labels: [...], series: [{name, values: [...]}]}
 */
(function (global) {
  "use strict";
  const PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"];

  function colour(i) { return PALETTE[i % PALETTE.length]; }

  function number(value) {
    return Math.abs(value) >= 1e4 || (value !== 0 && Math.abs(value) < 1e-3) ? value.toExponential(2)
      : String(Math.round(value * 1000) / 1000);
  }

  function utc(seconds) {  // as the reports print times: MM-DD HH:MM:SS, UTC
    return new Date(seconds * 1000).toISOString().slice(5, 19).replace("T", " ");
  }

  function options(spec, x) {
    return {
      animation: false, responsive: spec.responsive === true, maintainAspectRatio: spec.responsive !== true,
      plugins: {title: {display: Boolean(spec.title), text: spec.title || "", align: "start", font: {size: 14}},
                legend: {position: "bottom", labels: {boxWidth: 12}}},
      scales: {x: x, y: {beginAtZero: spec.kind === "bars" || spec.from_zero === true,
                         title: {display: Boolean(spec.y_label), text: spec.y_label || ""}}},
    };
  }

  function lineData(spec) {
    return {datasets: spec.series.map((s, i) => ({
      label: s.name, data: s.points.map(p => ({x: p[0], y: p[1]})), borderColor: colour(i),
      backgroundColor: colour(i), borderWidth: 2, pointRadius: s.points.length > 60 ? 0 : 3, spanGaps: false}))};
  }

  function barData(spec) {
    return {labels: spec.labels, datasets: spec.series.map((s, i) => ({
      label: s.name, data: s.values, backgroundColor: colour(i), borderColor: colour(i)}))};
  }

  function draw(canvas, spec) {
    if (spec.kind === "bars") {
      return new global.Chart(canvas, {type: "bar", data: barData(spec), options: options(spec, {
        ticks: {autoSkip: false, maxRotation: 50, font: {size: 9}}})});
    }
    const x = {type: "linear", ticks: {maxTicksLimit: 6, callback: v => spec.times ? utc(v) : number(v)}};
    return new global.Chart(canvas, {type: "line", data: lineData(spec), options: options(spec, x)});
  }

  function update(chart, spec) {
    chart.data = spec.kind === "bars" ? barData(spec) : lineData(spec);
    chart.options.plugins.title.text = spec.title || "";
    chart.update("none");
  }

  /* Every <script type="application/json" class="meshserve-chart"> in DOC becomes a chart drawn
     in the canvas before it (what the reports hold). */
  function drawAll(doc) {
    doc.querySelectorAll("script.meshserve-chart").forEach(node => {
      const canvas = node.previousElementSibling;
      if (canvas && canvas.tagName === "CANVAS") { draw(canvas, JSON.parse(node.textContent)); }
    });
  }

  global.MeshCharts = {PALETTE: PALETTE, draw: draw, update: update, drawAll: drawAll, utc: utc};
})(window);
