// Interlock dashboard: live figures without reloading the page, and small SVG charts.
// No dependencies, no build step. Reads the same JSON the page was rendered from.
"use strict";
(function () {
  const prefix = document.body.dataset.prefix || "/ui";
  const REFRESH_MS = 3000;

  const fmt = {
    ms: (v) => (v === null || v === undefined ? "–" : v < 10 ? `${Math.round(v * 1000)} ms` : `${v.toFixed(1)} s`),
    pct: (v) => (v === null || v === undefined ? "–" : `${(v * 100).toFixed(1)} %`),
    secs: (v) => (v === null || v === undefined ? "–" : v < 120 ? `${Math.round(v)} s` : v < 7200 ? `${Math.round(v / 60)} min` : `${(v / 3600).toFixed(1)} h`),
    num: (v) => (v === null || v === undefined ? "–" : String(v)),
    rate: (v) => (v === null || v === undefined ? "–" : v.toFixed(1)),
  };
  const UPSTREAM_FIELDS = { p50: fmt.ms, p95: fmt.ms, p99: fmt.ms, error_rate: fmt.pct, hit_rate: fmt.pct,
    headroom: fmt.pct, exhausted_in: fmt.secs, breaker: fmt.num, retry_share: fmt.pct, pace: fmt.rate };
  const SOURCE_FIELDS = { received: fmt.num, duplicates: fmt.num, queue_depth: fmt.num, oldest_age: fmt.secs,
    processing_p95: fmt.ms };
  const SYNC_FIELDS = { polls: fmt.num, lag: fmt.secs, dead_letters: fmt.num };
  const text = (v) => (v === null || v === undefined || v === "" ? "–" : String(v));
  const STREAM_FIELDS = {
    connected: (v) => (v ? "connected" : "down"), lag_seconds: fmt.secs, events: fmt.num, duplicates: fmt.num,
    reconnects: fmt.num, errors: fmt.num, reconciliations: fmt.num, position: text, last_error: text,
  };

  function setText(el, text) { if (el && el.textContent !== text) el.textContent = text; }

  function badgesHtml(cell, badges) {
    cell.replaceChildren(...badges.map((b) => {
      const span = document.createElement("span");
      span.className = `badge ${b.state}`;
      span.dataset.rule = b.rule;
      span.title = b.detail;
      span.textContent = `${b.label}: ${b.state.replaceAll("_", " ")}`;
      return span;
    }));
  }

  function updateRows(selector, attr, rows, fields) {
    for (const row of rows) {
      const tr = document.querySelector(`${selector} tr[data-${attr}="${CSS.escape(row.name)}"]`);
      if (!tr) continue;
      for (const [field, f] of Object.entries(fields)) setText(tr.querySelector(`[data-field="${field}"]`), f(row[field]));
      const cell = tr.querySelector(".badges");
      if (cell && row.badges) badgesHtml(cell, row.badges);
      const dlq = tr.querySelector('[data-field="dlq_size"] a');
      if (dlq) setText(dlq, fmt.num(row.dlq_size));
    }
  }

  // A chart: one SVG path per series, scaled to the series' own maximum, with its label.
  function drawChart(svg, points, series) {
    const W = 600, H = Number(svg.getAttribute("viewBox").split(" ")[3]) || 80;
    const parts = [], legend = [];
    const n = points.length;
    series.forEach((s) => {
      const values = points.map((p) => p[s.key]).filter((v) => v !== null && v !== undefined);
      const max = Math.max(...values, s.floor || 0) || 1;
      let d = "";
      points.forEach((p, j) => {
        const v = p[s.key];
        if (v === null || v === undefined) return;
        const x = n > 1 ? (j / (n - 1)) * W : W;
        const y = H - 3 - (v / max) * (H - 6);
        d += `${d ? "L" : "M"}${x.toFixed(1)},${y.toFixed(1)}`;
      });
      parts.push(`<path class="${s.cls}" d="${d}"></path>`);
      const last = values.length ? s.format(values[values.length - 1]) : "–";
      legend.push(`<span class="${s.cls}">${s.label} ${last}</span>`);
    });
    svg.innerHTML = parts.join("");
    svg.dataset.points = String(n);
    let box = svg.previousElementSibling;
    if (!box || !box.classList.contains("legend")) {
      box = document.createElement("div");
      box.className = "legend";
      svg.before(box);
    }
    box.innerHTML = legend.join(" ");
  }
  const UPSTREAM_SERIES = [
    { key: "p50", cls: "p50", label: "p50", format: fmt.ms, floor: 0.01 },
    { key: "p95", cls: "p95", label: "p95", format: fmt.ms, floor: 0.01 },
    { key: "p99", cls: "p99", label: "p99", format: fmt.ms, floor: 0.01 },
    { key: "error_rate", cls: "errors", label: "errors", format: fmt.pct, floor: 0.01 },
  ];
  const INBOX_SERIES = [
    { key: "queue_depth", cls: "depth", label: "queued", format: fmt.num, floor: 1 },
    { key: "processing_p95", cls: "processing", label: "processing p95", format: fmt.ms, floor: 0.01 },
  ];

  async function refreshOverview() {
    let data;
    try {
      const response = await fetch(`${prefix}/api/overview`, { credentials: "same-origin", headers: { Accept: "application/json" } });
      if (response.status === 401) { window.location.assign(`${prefix}/login?next=${encodeURIComponent(location.pathname)}`); return; }
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      data = await response.json();
    } catch (err) {
      setText(document.getElementById("updated"), `offline (${err.message}); retrying`);
      return;
    }
    updateRows("#upstreams", "upstream", data.upstreams, UPSTREAM_FIELDS);
    updateRows("#sources", "source", data.sources, SOURCE_FIELDS);
    updateRows("#syncs", "sync", data.syncs, SYNC_FIELDS);
    updateRows("#streams", "stream", data.streams || [], STREAM_FIELDS);
    setText(document.getElementById("issue-count"), String(data.issues));
    for (const svg of document.querySelectorAll("svg[data-chart]")) {
      const name = svg.dataset.chart;
      if (name === "__inbox__") drawChart(svg, data.inbox_chart, INBOX_SERIES);
      else if (data.charts[name]) drawChart(svg, data.charts[name], UPSTREAM_SERIES);
    }
    const updated = document.getElementById("updated");
    updated.dataset.at = String(data.at);
    setText(updated, `live · updated ${new Date(data.at * 1000).toLocaleTimeString()}`);
  }

  async function refreshJob(box) {
    const response = await fetch(`${prefix}/api/dlq/jobs/${encodeURIComponent(box.dataset.job)}`, { credentials: "same-origin" });
    if (!response.ok) return false;
    const job = await response.json();
    const bar = document.getElementById("job-progress");
    bar.max = job.total || 1;
    bar.value = job.done;
    setText(document.getElementById("job-done"), String(job.done));
    setText(document.getElementById("job-replayed"), String(job.replayed));
    setText(document.getElementById("job-state"), job.state);
    setText(document.getElementById("job-error"), job.error);
    box.dataset.state = job.state;
    return job.state === "running";
  }

  // At phone width a wide table becomes one card per row (see dashboard.css): each cell is
  // labelled with its column's heading, which the stacked layout shows beside the value.
  function labelCells(table) {
    const headings = Array.from(table.tHead.rows[0].cells, (th) => th.textContent.trim());
    for (const tr of table.tBodies[0]?.rows || []) {
      let column = 0;
      for (const td of tr.cells) {
        if (td.colSpan === 1 && headings[column]) td.dataset.label = headings[column];
        column += td.colSpan;
      }
    }
    table.classList.add("stacked");
  }

  document.addEventListener("DOMContentLoaded", () => {
    for (const table of document.querySelectorAll(".scroll > table")) if (table.tHead) labelCells(table);
    if (document.getElementById("upstreams")) {
      refreshOverview();
      setInterval(refreshOverview, REFRESH_MS);
    }
    const detail = document.getElementById("detail-chart");
    const data = document.getElementById("chart-data");
    if (detail && data) {
      drawChart(detail, JSON.parse(data.textContent), detail.dataset.kind === "inbox" ? INBOX_SERIES : UPSTREAM_SERIES);
    }
    const box = document.getElementById("job");
    if (box && box.dataset.state === "running") {
      const timer = setInterval(async () => { if (!(await refreshJob(box))) clearInterval(timer); }, 500);
    }
  });
})();
