/*
 * The console's pages, drawn from /console/api/ (meshserve/console/routes.py). Every value from the
 * server goes into the page as text (textContent, attributes), never as markup. The model page
 * asks for its data again every POLL_MS and updates its charts in place.
 */
(function () {
  "use strict";
  const POLL_MS = 2000;
  const WINDOWS = ["5m", "15m", "1h", "6h", "24h"];
  let me = {may_change: false, may_read_records: false, name: ""};
  let timer = null;

  // -- small DOM helpers: text only --------------------------------------------------------------
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (key === "class") { node.className = value; } else if (key.startsWith("on")) {
        node.addEventListener(key.slice(2), value);
      } else if (value !== undefined && value !== null) { node.setAttribute(key, String(value)); }
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined) { continue; }
      node.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }
  function table(headers, rows, attrs) {
    return el("table", attrs || {}, el("thead", {}, el("tr", {}, headers.map(h => el("th", {}, h)))),
              el("tbody", {}, rows));
  }
  function badge(state, text, kind) {
    const shown = {ok: "ok", alert: "alert", none: "n/a", warn: "warn"}[state] || state;
    return el("span", {class: `badge ${state}`, title: text || "", "data-badge": kind, "data-state": state},
              `${kind}: ${shown}`);
  }
  function fixed(value, digits) { return value === null || value === undefined ? "–" : Number(value).toFixed(digits); }
  function when(seconds) { return seconds ? MeshCharts.utc(seconds) + " UTC" : "–"; }
  function show(...nodes) { const page = document.getElementById("page"); page.replaceChildren(...nodes); }

  async function api(path, options) {
    const response = await fetch("/console/api/" + path, options);
    if (response.status === 401) {  // no credential, or the login cookie ran out: log in again
      location.assign("/console/login" + location.hash);
      throw new Error("Log in again to go on.");
    }
    let body = null;
    try { body = await response.json(); } catch (e) { body = {error: `HTTP ${response.status}`}; }
    if (!response.ok) { throw new Error(body && body.error ? body.error : `HTTP ${response.status}`); }
    return body;
  }
  function failure(error) { return el("div", {class: "error", role: "alert"}, error.message || String(error)); }

  // -- Models ------------------------------------------------------------------------------------
  async function modelsPage() {
    const {models} = await api("models");
    const rows = [];
    for (const model of models) {
      model.versions.forEach((v, i) => {
        const healthy = v.replicas.filter(r => r.health === "healthy").length;
        const replicas = v.replicas.length ? `${healthy}/${v.replicas.length} healthy` : "–";
        rows.push(el("tr", {"data-model": model.name, "data-version": v.version},
          i === 0 ? el("td", {rowspan: model.versions.length}, el("a", {href: `#/model/${encodeURIComponent(model.name)}`}, model.name)) : null,
          el("td", {}, v.version), el("td", {}, v.runtime), el("td", {title: v.digest}, (v.digest || "").slice(0, 12)),
          el("td", {}, replicas), el("td", {}, v.ready ? "ready" : "not ready"),
          el("td", {class: "number weight"}, v.weight), el("td", {class: "number"}, v.shadow === null ? "–" : v.shadow),
          i === 0 ? el("td", {rowspan: model.versions.length}, gateText(model.gate)) : null,
          i === 0 ? el("td", {rowspan: model.versions.length}, badge(model.drift.state, model.drift.text, "drift"), " ",
                       badge(model.quality.state, model.quality.text, "quality")) : null));
      });
    }
    show(el("h1", {}, "Models"),
         table(["model", "version", "runtime", "digest", "replicas", "health", "weight", "shadow", "last gate", "status"],
               rows, {id: "models"}),
         el("p", {class: "note"}, "Weights are relative shares of primary traffic; a shadow gets a copy of that fraction of requests."));
  }
  function gateText(gate) {
    if (!gate) { return "–"; }
    return `${gate.result} (version ${gate.version || "?"}, ${gate.time || ""})`;
  }

  // -- A model -----------------------------------------------------------------------------------
  function modelPage(name, query) {
    const window = WINDOWS.includes(query.get("window")) ? query.get("window") : "15m";
    const charts = {};
    const parts = {
      split: el("div", {class: "split", id: "split-now"}, "…"),
      summary: el("div", {id: "summary"}),
      control: el("div", {id: "traffic-control"}),
      agreement: el("div", {id: "agreement"}), drift: el("div", {id: "drift"}), quality: el("div", {id: "quality"}),
      log: el("div", {id: "deployment-log"}), error: el("div", {}),
    };
    const canvases = {};
    const grid = el("div", {class: "charts"}, ["traffic", "errors", "latency", "batches", "histogram"].map(id => {
      canvases[id] = el("canvas", {id: `chart-${id}`});
      return el("div", {class: "chart"}, canvases[id]);
    }));
    const windows = el("p", {class: "windows"}, "Window: ", WINDOWS.map(w => el("a", {
      href: `#/model/${encodeURIComponent(name)}?window=${w}`, class: w === window ? "chosen" : ""}, w)));
    show(el("h1", {}, `Model ${name}`), windows, parts.error, parts.split, parts.summary, parts.control, grid,
         el("h2", {}, "Shadow and canary agreement"), parts.agreement, el("h2", {}, "Drift"), parts.drift,
         el("h2", {}, "Live quality"), parts.quality, el("h2", {}, "Deployment log"), parts.log);
    let selectedFeature = null;
    let controlDrawn = false;

    async function refresh() {
      let page;
      try {
        page = await api(`models/${encodeURIComponent(name)}?window=${window}`);
        parts.error.replaceChildren();
      } catch (error) {
        parts.error.replaceChildren(failure(error));
        return;
      }
      drawSplit(parts.split, page);
      parts.summary.replaceChildren(summaryTable(page));
      if (!controlDrawn && me.may_change) { parts.control.replaceChildren(trafficControl(name, page)); controlDrawn = true; }
      chart(charts, canvases, "traffic", perVersion(page, "requests_per_s", "requests per second", "req/s"));
      chart(charts, canvases, "errors", perVersion(page, "errors_per_s", "errors per second", "errors/s"));
      chart(charts, canvases, "latency", latency(page));
      chart(charts, canvases, "batches", batches(page));
      const drift = page.drift || [];
      if (!selectedFeature && drift.length) { selectedFeature = worstFeature(drift); }
      chart(charts, canvases, "histogram", histogram(drift, selectedFeature));
      parts.agreement.replaceChildren(agreementTable(page.agreement));
      parts.drift.replaceChildren(driftTable(drift, f => { selectedFeature = f; refresh(); }));
      parts.quality.replaceChildren(qualityTable(page.quality));
      parts.log.replaceChildren(logTable(page.log || []));
    }
    const tick = async () => { await refresh(); timer = setTimeout(tick, POLL_MS); };
    tick();
  }

  function chart(charts, canvases, id, spec) {
    spec.responsive = true;
    if (charts[id]) { MeshCharts.update(charts[id], spec); } else { charts[id] = MeshCharts.draw(canvases[id], spec); }
  }
  function label(s) { return `version ${s.version} (${s.role})`; }
  function perVersion(page, field, title, unit) {
    const x = page.x || [];
    return {kind: "line", title: title, y_label: unit, times: true, from_zero: true,
            series: (page.series || []).map(s => ({name: label(s), points: x.map((t, i) => [t, s[field][i]])}))};
  }
  function latency(page) {
    const x = page.x || [];
    const series = [];
    for (const s of page.series || []) {
      series.push({name: `${label(s)} p50`, points: x.map((t, i) => [t, s.p50_ms[i]])});
      series.push({name: `${label(s)} p99`, points: x.map((t, i) => [t, s.p99_ms[i]])});
    }
    return {kind: "line", title: "latency p50 / p99", y_label: "ms", times: true, from_zero: true, series: series};
  }
  function batches(page) {
    const rows = page.batch_sizes || [];
    const sizes = [...new Set(rows.map(r => r.batch_size === null ? "none" : String(r.batch_size)))];
    const keys = [...new Set(rows.map(r => `version ${r.version} (${r.role})`))];
    return {kind: "bars", title: "micro-batch sizes (answered requests)", y_label: "requests", labels: sizes,
            series: keys.map(k => ({name: k, values: sizes.map(size => rows.filter(r =>
              `version ${r.version} (${r.role})` === k && (r.batch_size === null ? "none" : String(r.batch_size)) === size)
              .reduce((n, r) => n + r.n, 0))}))};
  }
  function worstFeature(drift) {
    return drift.reduce((a, b) => ((b.score || 0) / b.threshold > (a.score || 0) / a.threshold ? b : a)).feature;
  }
  function histogram(drift, feature) {
    const row = drift.find(r => r.feature === feature && r.window_kind === "rows") || drift.find(r => r.feature === feature);
    if (!row || !row.body || !row.body.labels) {
      return {kind: "bars", title: "drift: no column checked yet", labels: [], series: []};
    }
    const body = row.body;
    return {kind: "bars", title: `${feature} (version ${row.version}, ${row.role}): training vs live`,
            y_label: "share of rows", labels: body.labels,
            series: [{name: "training baseline", values: body.baseline_shares || []},
                     {name: `live: ${body.window || ""}`, values: body.live_shares || []}]};
  }
  function drawSplit(node, page) {
    const split = page.split_now || {};
    const text = Object.keys(split).length
      ? Object.entries(split).map(([v, share]) => `version ${v}: ${share}%`).join(" · ")
      : "no answers in the last 30 s";
    const weights = Object.entries((page.rollout || {}).weights || {}).map(([v, w]) => `${v}=${w}`).join(", ");
    node.replaceChildren(el("strong", {}, "Answers in the last 30 s: "), el("span", {id: "split-values"}, text),
                         el("span", {class: "note"}, `  (weights set: ${weights})`));
    node.dataset.split = JSON.stringify(split);
  }
  function summaryTable(page) {
    const rows = (page.series || []).map(s => el("tr", {}, el("td", {}, label(s)), el("td", {class: "number"}, s.requests),
      el("td", {}, Object.entries(s.errors_by_code).map(([c, n]) => `${c}: ${n}`).join(", ") || "none"),
      el("td", {class: "number"}, fixed(s.p50_ms_window, 2)), el("td", {class: "number"}, fixed(s.p99_ms_window, 2))));
    if (page.no_records) { return el("p", {class: "note"}, page.no_records); }
    return table(["version (role)", "requests in window", "errors by status", "p50 ms", "p99 ms"], rows);
  }
  function agreementTable(agreement) {
    if (!agreement) { return el("p", {class: "note"}, "–"); }
    const rows = [...agreement.shadows, ...agreement.canaries].map(e => {
      const outputs = Object.entries(e.outputs || {}).map(([name, o]) =>
        o.agreement !== undefined ? `${name}: ${(100 * o.agreement).toFixed(1)}% agree` : name).join("; ");
      return el("tr", {}, el("td", {}, `${e.kind} ${e.version}`), el("td", {}, e.primary_version),
                el("td", {class: "number"}, e.pairs !== undefined ? e.pairs : e.requests), el("td", {}, outputs),
                el("td", {}, badge(e.verdict && e.verdict.startsWith && e.verdict.startsWith("ok") ? "ok" : "warn",
                                   (e.warnings || []).join("; "), "verdict")), el("td", {}, (e.warnings || []).join("; ")));
    });
    return rows.length ? table(["candidate", "against", "requests", "outputs", "verdict", "warnings"], rows)
      : el("p", {class: "note"}, "No shadow or canary answered in this window.");
  }
  function driftTable(drift, choose) {
    if (!drift.length) { return el("p", {class: "note"}, "No drift check yet (drift needs a baseline in the package and enough rows)."); }
    const rows = drift.map(r => el("tr", {class: r.alerting ? "alerting" : "", "data-feature": r.feature},
      el("td", {}, el("a", {href: "#", onclick: e => { e.preventDefault(); choose(r.feature); }}, r.feature)),
      el("td", {}, r.version), el("td", {}, r.role), el("td", {}, r.window_kind), el("td", {class: "number"}, r.row_count),
      el("td", {class: "number"}, fixed(r.score, 3)), el("td", {class: "number"}, fixed(r.threshold, 3)),
      el("td", {class: "number"}, r.p_value === null ? "–" : Number(r.p_value).toPrecision(3)),
      el("td", {}, badge(r.alerting ? "alert" : "ok", "", "drift"))));
    return table(["feature", "version", "role", "window", "rows", "score", "threshold", "p-value", "state"], rows);
  }
  function qualityTable(report) {
    if (!report || !report.groups || !report.groups.length) {
      return el("p", {class: "note"}, "No outcomes reported in this window (meshserve outcomes, or RecordOutcomes).");
    }
    const rows = [];
    for (const g of report.groups) {
      for (const [output, f] of Object.entries(g.outputs)) {
        rows.push(el("tr", {}, el("td", {}, `version ${g.version} (${g.role})`), el("td", {}, output),
          el("td", {class: "number"}, f.n), el("td", {class: "number"}, fixed(f.accuracy, 3)),
          el("td", {class: "number"}, fixed(f.auc, 3)), el("td", {class: "number"}, fixed(f.mae, 3))));
      }
    }
    return table(["version (role)", "output", "outcomes", "accuracy", "AUC", "MAE"], rows);
  }
  function logTable(entries) {
    if (!entries.length) { return el("p", {class: "note"}, "No change logged for this model."); }
    return table(["time", "what", "result", "by", "why", "details"], entries.map(e => el("tr", {},
      el("td", {}, e.time), el("td", {}, e.action || e.what || ""), el("td", {}, e.result || ""), el("td", {}, e.by || ""),
      el("td", {class: "why"}, e.why || ""),
      el("td", {}, JSON.stringify(e.applied || e.weights || e.reason || e.gate || "")))), {id: "log"});
  }

  // -- Traffic control (admins) ------------------------------------------------------------------
  function trafficControl(name, page) {
    const versions = (page.summary && page.summary.versions || []).map(v => v.version);
    const rollout = page.rollout || {weights: {}, shadows: {}};
    const inputs = {};
    const rows = versions.map(v => {
      inputs[v] = {weight: el("input", {type: "number", min: 0, max: 10000, step: 1, name: `weight-${v}`,
                                        value: rollout.weights[v] || 0}),
                   shadow: el("input", {type: "number", min: 0, max: 1, step: 0.05, name: `shadow-${v}`,
                                        value: rollout.shadows[v] || 0})};
      return el("tr", {}, el("td", {}, v), el("td", {}, inputs[v].weight), el("td", {}, inputs[v].shadow),
                el("td", {}, el("button", {type: "button", name: `promote-${v}`, onclick: () => {
                  versions.forEach(o => { inputs[o].weight.value = o === v ? 100 : 0; inputs[o].shadow.value = 0; });
                }}, `all traffic to ${v}`)));
    });
    const reason = el("input", {type: "text", class: "reason", name: "reason", maxlength: 500,
                                placeholder: "why (kept in the deployment log)"});
    const result = el("div", {id: "change-result"});
    const apply = el("button", {type: "button", name: "apply", onclick: async () => {
      const weights = {}, shadows = {};
      versions.forEach(v => {
        weights[v] = Number(inputs[v].weight.value);
        if (Number(inputs[v].shadow.value) > 0) { shadows[v] = Number(inputs[v].shadow.value); }
      });
      try {
        const done = await api(`models/${encodeURIComponent(name)}/rollout`, {method: "POST",
          headers: {"Content-Type": "application/json"}, body: JSON.stringify({weights, shadows, reason: reason.value})});
        result.replaceChildren(el("div", {class: "done"}, `Applied: ${JSON.stringify(done.weights)}` +
          (Object.keys(done.shadows).length ? ` shadows ${JSON.stringify(done.shadows)}` : "")));
      } catch (error) { result.replaceChildren(failure(error)); }
    }}, "Apply");
    const parts = [el("h2", {}, "Traffic control"),
      table(["version", "weight", "shadow fraction", ""], rows),
      el("p", {}, "Reason: ", reason), el("p", {}, apply), result];
    if (page.progressive) {
      parts.push(el("p", {}, "Progressive rollout: ", ["promote", "pause", "resume", "rollback"].map(action =>
        el("button", {type: "button", name: `progressive-${action}`, onclick: async () => {
          try {
            await api(`models/${encodeURIComponent(name)}/progressive`, {method: "POST",
              headers: {"Content-Type": "application/json"}, body: JSON.stringify({action, reason: reason.value})});
            result.replaceChildren(el("div", {class: "done"}, `${action}: done`));
          } catch (error) { result.replaceChildren(failure(error)); }
        }}, action))));
    }
    return el("div", {class: "panel"}, parts);
  }

  // -- A prediction ------------------------------------------------------------------------------
  function predictionPage(query) {
    const id = el("input", {type: "text", name: "request_id", size: 40, value: query.get("request_id") || ""});
    const trace = el("input", {type: "text", name: "trace_id", size: 40, value: query.get("trace_id") || ""});
    const out = el("div", {id: "prediction"});
    const find = el("button", {type: "button", name: "find", onclick: () => {
      const q = id.value ? `request_id=${encodeURIComponent(id.value.trim())}` : `trace_id=${encodeURIComponent(trace.value.trim())}`;
      location.hash = `#/prediction?${q}`;
    }}, "Find");
    show(el("h1", {}, "A prediction"),
         me.may_read_records ? el("p", {}, "Request id ", id, " or trace id ", trace, " ", find)
           : el("p", {class: "error"}, "Only records readers and admins may open records."), out);
    if (me.may_read_records && (query.get("request_id") || query.get("trace_id"))) {
      const q = query.get("request_id") ? `request_id=${encodeURIComponent(query.get("request_id"))}`
        : `trace_id=${encodeURIComponent(query.get("trace_id"))}`;
      api(`predictions?${q}`).then(({records}) => out.replaceChildren(...(records.length ? records.map(recordView)
        : [el("p", {class: "note"}, "No record of that request (records reach the store a second or two after the answer).")])))
        .catch(error => out.replaceChildren(failure(error)));
    }
  }
  function recordView(r) {
    const pkg = r.package || {};
    const provenance = pkg.provenance || {};
    const link = r.trace_url && /^https?:\/\//.test(r.trace_url) ? el("a", {href: r.trace_url, rel: "noopener noreferrer", target: "_blank"}, "open in Jaeger") : "";
    const facts = [["request id", r.request_id], ["slot", r.slot], ["model", r.model], ["version", r.version],
      ["role", r.role], ["recorded by", r.side], ["time", when(r.time)], ["latency", `${fixed(r.latency_s * 1000, 2)} ms`],
      ["status", r.code + (r.error ? `: ${r.error}` : "")], ["package digest", r.digest],
      ["training data sha256", r.training_data_sha256 || "(not declared)"],
      ["training data", provenance.training_data || "–"], ["code revision", r.code_revision || "(not declared)"],
      ["environment", pkg.environment ? JSON.stringify(pkg.environment).slice(0, 300) : "(not captured)"],
      ["trace id", r.trace_id || "(none)"]];
    const tensors = kind => Object.entries(r[kind] || {}).map(([name, t]) => el("div", {},
      el("strong", {}, `${kind.slice(0, -1)} ${name} ${t.datatype || ""}${JSON.stringify(t.shape || [])}${t.pii ? " (PII: HMAC-SHA256)" : ""}`),
      el("pre", {}, "omitted" in t ? `(not kept: ${t.omitted})` : JSON.stringify(t.values))));
    return el("section", {class: "panel record", "data-request-id": r.request_id},
      el("h2", {}, r.slot === "answer" ? "Answer" : `Shadow copy (${r.slot})`),
      table(["", ""], facts.map(([k, v]) => el("tr", {}, el("th", {}, k), el("td", {}, v)))), link,
      tensors("inputs"), tensors("outputs"),
      el("h3", {}, "Explanation"), el("pre", {}, r.explanation ? JSON.stringify(r.explanation, null, 1)
        : "(none yet: meshserve explain REQUEST_ID computes one)"));
  }

  // -- routing -----------------------------------------------------------------------------------
  async function route() {
    if (timer) { clearTimeout(timer); timer = null; }
    const [path, search] = (location.hash.slice(1) || "/").split("?");
    const query = new URLSearchParams(search || "");
    try {
      if (path.startsWith("/model/")) { modelPage(decodeURIComponent(path.slice(7)), query); }
      else if (path.startsWith("/prediction")) { predictionPage(query); }
      else { await modelsPage(); }
    } catch (error) { show(failure(error)); }
  }

  async function logOut() {
    try {
      await fetch("/console/logout", {method: "POST", headers: {"Content-Type": "application/json"}, body: "{}"});
    } finally { location.assign("/console/login?out"); }
  }

  async function start() {
    try {
      me = await api("me");
      document.getElementById("viewer").textContent =
        `${me.name}: ${me.may_change ? "may change traffic" : me.may_read_records ? "may read records" : "may look"}`;
      const out = document.getElementById("log-out");
      out.hidden = !me.may_log_out;
      out.addEventListener("click", logOut);
    } catch (error) { show(failure(error)); return; }
    window.addEventListener("hashchange", route);
    route();
  }
  document.addEventListener("DOMContentLoaded", start);
})();
