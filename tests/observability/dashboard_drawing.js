/*
 * Draws the dashboard dashboard_drawing.py wrote into <script id="dashboard"> as Grafana lays it
 * out: every panel at its gridPos on a 24-column grid, time series through the console's
 * MeshCharts (charts.js, Chart.js), stats as a number on the colour of their threshold. Once all
 * are drawn, <body> carries data-panels-drawn, data-panels-with-data, data-panels-without-data and
 * each panel data-state ("data" or "no-data"), which the tests read.
 */
(function () {
  "use strict";
  // Grafana's classic palette, and its named threshold colours.
  const PALETTE = ["#73BF69", "#F2CC0C", "#5794F2", "#FF9830", "#F2495C", "#B877D9", "#8AB8FF", "#FADE2A",
                   "#96D98D", "#FFB357", "#CA95E5", "#FF7383"];
  const NAMED = {green: "#73BF69", orange: "#FF9830", red: "#F2495C", yellow: "#FADE2A", blue: "#5794F2"};
  const spec = JSON.parse(document.getElementById("dashboard").textContent);

  function colour(i) { return PALETTE[i % PALETTE.length]; }

  function fixed(v) {
    const a = Math.abs(v);
    // Three significant digits at most, no trailing zeros: 4 req/s, 2.5 s, 0.012.
    return a === 0 ? "0" : String(+(a >= 100 ? v.toFixed(0) : a >= 0.1 ? v.toPrecision(3) : v.toPrecision(2)));
  }

  function prefixed(v, base, names) {
    let i = 0;
    while (Math.abs(v) >= base && i < names.length - 1) { v /= base; i += 1; }
    return fixed(v) + names[i];
  }

  /* A value in a panel's unit, as Grafana writes it. */
  function formatted(unit, v) {
    if (v === null || v === undefined || !isFinite(v)) { return "–"; }
    switch (unit) {
      case "percentunit": return fixed(v * 100) + "%";
      case "s": return Math.abs(v) >= 1 || v === 0 ? fixed(v) + " s" : Math.abs(v) >= 1e-3 ? fixed(v * 1e3) + " ms"
        : fixed(v * 1e6) + " µs";
      case "ms": return Math.abs(v) >= 1000 ? fixed(v / 1000) + " s" : fixed(v) + " ms";
      case "reqps": return prefixed(v, 1000, ["", "K", "M"]) + " req/s";
      case "ops": return prefixed(v, 1000, ["", "K", "M"]) + " ops/s";
      case "bytes": return prefixed(v, 1024, [" B", " KiB", " MiB", " GiB"]);
      case "none": return fixed(v);
      default: return prefixed(v, 1000, ["", "K", "M", "G"]);
    }
  }

  function clock(seconds) { return new Date(seconds * 1000).toTimeString().slice(0, 8); }

  function element(tag, className, text) {
    const node = document.createElement(tag);
    if (className) { node.className = className; }
    if (text !== undefined) { node.textContent = text; }
    return node;
  }

  function values(series) { return series.points.map(p => p[1]).filter(v => v !== null); }

  function legendTable(panel) {
    const table = element("table", "legend");
    const head = table.insertRow();
    ["", "Last *", "Max"].forEach(text => head.appendChild(element("th", "", text)));
    panel.series.forEach((s, i) => {
      const row = table.insertRow();
      const name = row.insertCell();
      const swatch = element("span", "swatch");
      swatch.style.background = colour(i);
      name.append(swatch, s.name);
      name.title = s.name;
      const seen = values(s);
      row.insertCell().textContent = formatted(panel.unit, seen.length ? seen[seen.length - 1] : null);
      row.insertCell().textContent = formatted(panel.unit, seen.length ? Math.max(...seen) : null);
    });
    return table;
  }

  function timeseries(panel, body) {
    const plot = element("div", "plot");
    const canvas = element("canvas");
    plot.appendChild(canvas);
    const legend = element("div", "legend-box");
    legend.style.maxHeight = `${Math.round(0.4 * (panel.grid.h * 38 - 8))}px`;  // 30 px rows, 8 px gaps
    legend.appendChild(legendTable(panel));
    body.append(plot, legend);
    // The console's chart settings (charts.js), given Grafana's look: MeshCharts draws, and the chart
    // is drawn again from its settings changed, as Chart.js keeps points' first options otherwise.
    const first = MeshCharts.draw(canvas, {kind: "line", times: true, responsive: true, from_zero: true,
      series: panel.series.map(s => ({name: s.name, points: s.points}))});
    const data = first.config.data, options = first.config.options;
    first.destroy();
    options.plugins.legend.display = false;
    options.plugins.title.display = false;
    Object.assign(options.scales.x, {min: spec.start, max: spec.end, ticks: {maxTicksLimit: 6, callback: clock}});
    Object.assign(options.scales.y, {stacked: panel.stacked, ticks: {maxTicksLimit: 5,
                                                                     callback: v => formatted(panel.unit, v)}});
    data.datasets.forEach((d, i) => Object.assign(d, {
      borderColor: colour(i), backgroundColor: colour(i) + "1a", borderWidth: 1, pointRadius: 0,
      fill: panel.stacked ? (i === 0 ? "origin" : "-1") : "origin"}));
    new Chart(canvas, {type: "line", data: data, options: options});
  }

  function thresholdColour(panel, v) {
    let chosen = "green";
    panel.thresholds.forEach(step => { if (step.value === null || v >= step.value) { chosen = step.color; } });
    return NAMED[chosen] || chosen;
  }

  function stat(panel, node, body) {
    const seen = panel.series.length ? values(panel.series[0]) : [];
    const last = seen.length ? seen[seen.length - 1] : null;
    node.classList.add("stat");
    node.style.background = thresholdColour(panel, last);
    body.appendChild(element("div", "value", formatted(panel.unit, last)));
    const canvas = element("canvas");
    body.appendChild(canvas);
    new Chart(canvas, {type: "line", data: {datasets: [{data: panel.series[0].points.map(p => ({x: p[0], y: p[1]})),
      borderColor: "rgba(255,255,255,0.55)", backgroundColor: "rgba(255,255,255,0.18)", fill: "origin",
      borderWidth: 1, pointRadius: 0}]},
      options: {animation: false, responsive: true, maintainAspectRatio: false,
                plugins: {legend: {display: false}, tooltip: {enabled: false}},
                scales: {x: {type: "linear", display: false, min: spec.start, max: spec.end},
                         y: {display: false, beginAtZero: true}}}});
  }

  function table(panel, body) {
    body.style.overflow = "hidden";
    const rows = element("table", "rows");
    const head = rows.insertRow();
    panel.columns.forEach(c => head.appendChild(element("th", "", c)));
    panel.rows.forEach(r => { const row = rows.insertRow(); r.forEach(v => { row.insertCell().textContent = v; }); });
    body.appendChild(rows);
  }

  function placed(panel) {
    const node = element("section", panel.kind === "row" ? "row" : "panel");
    node.style.gridColumn = `${panel.grid.x + 1} / span ${panel.grid.w}`;
    node.style.gridRow = `${panel.grid.y + 1} / span ${panel.grid.h}`;
    node.dataset.title = panel.title;
    if (panel.kind === "row") { node.textContent = panel.title; return node; }
    const title = element("h2", "", panel.title);
    title.title = panel.description;
    const body = element("div", "body");
    node.append(title, body);
    return node;
  }

  function draw() {
    const header = element("header");
    header.appendChild(element("h1", "", spec.title));
    spec.variables.forEach(([name, value]) => {
      const pill = element("span", "pill");
      pill.append(element("b", "", name), value);
      header.appendChild(pill);
    });
    header.appendChild(element("span", "pill", spec.range));
    const grid = element("div", "grid");
    document.body.append(header, element("div", "source", `Drawn from ${spec.source}`), grid);
    const counts = {drawn: 0, data: 0, empty: 0};
    spec.panels.forEach(panel => {
      const node = placed(panel);
      grid.appendChild(node);
      if (panel.kind === "row") { return; }
      const body = node.querySelector(".body");
      if (!panel.has_data) {
        body.appendChild(element("div", "nodata", "No data"));
      } else if (panel.kind === "stat") {
        stat(panel, node, body);
      } else if (panel.kind === "table") {
        table(panel, body);
      } else {
        timeseries(panel, body);
      }
      node.dataset.state = panel.has_data ? "data" : "no-data";
      counts.drawn += 1;
      counts[panel.has_data ? "data" : "empty"] += 1;
    });
    // After the browser has laid out and painted the charts.
    requestAnimationFrame(() => requestAnimationFrame(() => {
      Object.assign(document.body.dataset, {panelsDrawn: counts.drawn, panelsWithData: counts.data,
                                            panelsWithoutData: counts.empty});
    }));
  }

  Chart.defaults.color = "#ccccdc";
  Chart.defaults.borderColor = "rgba(204, 204, 220, 0.1)";
  Chart.defaults.font.size = 11;
  draw();
})();
