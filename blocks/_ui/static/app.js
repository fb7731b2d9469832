// eventblocks web UI: runs list, run timeline, block view, blocks list.
//
// Plain JavaScript, no build step and nothing fetched but this server's /api/.
// Every text that comes from the store goes into the page through textContent
// (the el() helper below makes text nodes) or is drawn on a canvas: never as HTML.
"use strict";

(function () {
  const POLL_MS = 5000;

  // ---------------------------------------------------------------- DOM helpers

  // el("td", {className: "num"}, "12"): an element with properties and children;
  // a string child becomes a text node, null and false are skipped, arrays flatten.
  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    if (props) {
      for (const [key, value] of Object.entries(props)) {
        if (value === undefined || value === null || value === false) continue;
        if (key === "dataset") {
          for (const [k, v] of Object.entries(value)) node.dataset[k] = String(v);
        } else if (key.startsWith("on")) {
          node.addEventListener(key.slice(2), value);
        } else if (key === "className" || key === "id" || key === "value" ||
                   key === "checked" || key === "hidden" || key === "disabled" ||
                   key === "tabIndex" || key === "type") {
          node[key] = value;
        } else {
          node.setAttribute(key, String(value));
        }
      }
    }
    append(node, children);
    return node;
  }

  function append(node, children) {
    for (const child of children) {
      if (child === null || child === undefined || child === false) continue;
      if (Array.isArray(child)) append(node, child);
      else if (child instanceof Node) node.appendChild(child);
      else node.appendChild(document.createTextNode(String(child)));
    }
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
  }

  // ---------------------------------------------------------------- links

  function runHref(id) {
    return "#/runs/" + encodeURIComponent(id);
  }

  // "slug/name" for a saved block, "slug" for an unsaved one. The name is one
  // part, whatever it holds ("/" and "?" included): encoded whole.
  function blockHref(block) {
    const text = String(block);
    const cut = text.indexOf("/");
    const parts = cut < 0 ? [text] : [text.slice(0, cut), text.slice(cut + 1)];
    return "#/blocks/" + parts.map(encodeURIComponent).join("/");
  }

  function go(href) {
    if (location.hash !== href) location.hash = href;
  }

  // ---------------------------------------------------------------- formatting

  const ISO = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:?\d\d)?$/;

  // Milliseconds since the epoch, keeping the microseconds the API gives.
  function parseTime(text) {
    if (!text) return null;
    const m = ISO.exec(text);
    if (!m) {
      const t = Date.parse(text);
      return Number.isNaN(t) ? null : t;
    }
    const base = Date.parse(m[1] + (m[3] || "Z"));
    const fraction = m[2] ? parseFloat("0" + m[2]) * 1000 : 0;
    return base + fraction;
  }

  function pad(n, width) {
    return String(n).padStart(width || 2, "0");
  }

  // Local time, to the second: 2024-06-02 14:03:05.
  function formatTime(text) {
    const t = parseTime(text);
    if (t === null) return "";
    const d = new Date(t);
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
      `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  }

  function formatClock(date) {
    return `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
  }

  function formatDuration(ms) {
    if (ms === null || ms === undefined || Number.isNaN(ms)) return "";
    if (ms < 1) return `${ms.toFixed(2)} ms`;
    if (ms < 10) return `${ms.toFixed(1)} ms`;
    if (ms < 1000) return `${Math.round(ms)} ms`;
    const s = ms / 1000;
    if (s < 60) return `${s.toFixed(s < 10 ? 2 : 1)} s`;
    const min = Math.floor(s / 60);
    if (min < 60) return `${min} min ${Math.round(s - min * 60)} s`;
    const h = Math.floor(min / 60);
    return `${h} h ${min - h * 60} min`;
  }

  // An offset into the run: +1.250 s, +120 ms.
  function formatOffset(ms) {
    if (Math.abs(ms) < 1000) return `+${ms.toFixed(ms < 10 ? 2 : 1)} ms`;
    return `+${(ms / 1000).toFixed(3)} s`;
  }

  function failureText(failure) {
    if (!failure) return "";
    const call = failure.method ? `${failure.block}.${failure.method}` : String(failure.block);
    return failure.error_type ? `${call}: ${failure.error_type}` : call;
  }

  function labelsText(labels) {
    return Object.entries(labels || {}).map(([k, v]) => `${k}=${v}`).join(" ");
  }

  function plural(n, word) {
    return `${n} ${word}${n === 1 ? "" : "s"}`;
  }

  // ---------------------------------------------------------------- API

  class ApiError extends Error {
    constructor(status, message, candidates) {
      super(message);
      this.status = status;
      this.candidates = candidates || [];
    }
  }

  async function api(path, signal) {
    let response;
    try {
      response = await fetch(path, { headers: { Accept: "application/json" }, signal });
    } catch (err) {
      if (err.name === "AbortError") throw err;
      throw new ApiError(0, "The server did not answer; is `eventblocks ui` still running?");
    }
    let body = null;
    try {
      body = await response.json();
    } catch (err) {
      body = null;
    }
    if (!response.ok) {
      const message = body && body.error ? body.error : `${response.status} ${response.statusText}`;
      throw new ApiError(response.status, message, body && body.candidates);
    }
    return body;
  }

  function errorBanner(err) {
    const box = el("div", { className: "error-banner", role: "alert" }, err.message || String(err));
    if (err.candidates && err.candidates.length) {
      const list = el("ul");
      for (const candidate of err.candidates) {
        const id = typeof candidate === "string" ? candidate : candidate.id;
        const label = typeof candidate === "string" ? candidate
          : [candidate.name, candidate.id, candidate.started && formatTime(candidate.started)]
            .filter(Boolean).join("  ");
        list.appendChild(el("li", null, el("a", { href: runHref(id) }, label)));
      }
      box.appendChild(list);
    }
    return box;
  }

  function setStatus(text) {
    document.getElementById("status").textContent = text;
  }

  // ---------------------------------------------------------------- tooltip

  const tooltip = {
    show(lines, x, y) {
      const node = document.getElementById("tooltip");
      node.textContent = lines.filter(Boolean).join("\n");
      node.hidden = false;
      const width = node.offsetWidth;
      const height = node.offsetHeight;
      let left = x + 14;
      let top = y + 14;
      if (left + width > window.innerWidth - 8) left = Math.max(8, x - width - 14);
      if (top + height > window.innerHeight - 8) top = Math.max(8, y - height - 14);
      node.style.left = `${left}px`;
      node.style.top = `${top}px`;
    },
    hide() {
      document.getElementById("tooltip").hidden = true;
    },
  };

  // ---------------------------------------------------------------- router

  const app = document.getElementById("app");
  let cleanup = null;

  function parseHash() {
    const raw = location.hash.replace(/^#/, "") || "/";
    const [path, query] = raw.split("?");
    const parts = path.split("/").filter(Boolean).map((part) => {
      try {
        return decodeURIComponent(part);
      } catch (err) {
        return part;
      }
    });
    return { parts, query: new URLSearchParams(query || "") };
  }

  function route() {
    if (cleanup) cleanup();
    cleanup = null;
    tooltip.hide();
    clear(app);
    const { parts, query } = parseHash();
    let view;
    let nav = "runs";
    if (parts.length === 0) {
      view = () => runsView(query);
    } else if (parts[0] === "runs" && parts.length === 2) {
      view = () => runView(parts[1]);
    } else if (parts[0] === "blocks" && parts.length === 1) {
      nav = "blocks";
      view = () => blocksView();
    } else if (parts[0] === "blocks" && (parts.length === 2 || parts.length === 3)) {
      nav = "blocks";
      view = () => blockView(parts.slice(1));
    } else {
      view = () => {
        app.appendChild(el("h1", null, "Not found"));
        app.appendChild(el("p", { className: "notice" }, "This page has no view at ",
          el("span", { className: "mono" }, location.hash), ". ",
          el("a", { href: "#/" }, "Back to the runs"), "."));
        return null;
      };
    }
    document.getElementById("nav-runs").classList.toggle("current", nav === "runs");
    document.getElementById("nav-blocks").classList.toggle("current", nav === "blocks");
    cleanup = view();
  }

  // ---------------------------------------------------------------- runs list

  const SINCE_PRESETS = [
    ["", "any time"],
    ["15m", "last 15 minutes"],
    ["1h", "last hour"],
    ["24h", "last 24 hours"],
    ["7d", "last 7 days"],
    ["30d", "last 30 days"],
    ["custom", "between…"],
  ];

  function toIso(localValue) {
    if (!localValue) return "";
    const t = new Date(localValue);
    return Number.isNaN(t.getTime()) ? "" : t.toISOString();
  }

  function toLocalInput(iso) {
    const t = parseTime(iso);
    if (t === null) return "";
    const d = new Date(t);
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T` +
      `${pad(d.getHours())}:${pad(d.getMinutes())}`;
  }

  function runsView(query) {
    const filters = {
      name: query.get("name") || "",
      failed: query.get("failed") === "true",
      since: query.get("since") || "",
      until: query.get("until") || "",
    };
    let limit = Math.min(500, Math.max(1, parseInt(query.get("limit") || "50", 10) || 50));
    const presetValues = SINCE_PRESETS.map(([value]) => value);
    const custom = !!filters.until || (filters.since && !presetValues.includes(filters.since));

    const nameInput = el("input", {
      type: "text", id: "filter-name", value: filters.name,
      placeholder: "nightly-*", "aria-label": "Run name (glob)",
    });
    const failedInput = el("input", { type: "checkbox", id: "filter-failed", checked: filters.failed });
    const sinceSelect = el("select", { id: "filter-since", "aria-label": "Time range" },
      SINCE_PRESETS.map(([value, label]) => el("option", { value }, label)));
    sinceSelect.value = custom ? "custom" : filters.since;
    const fromInput = el("input", {
      type: "datetime-local", id: "filter-from", "aria-label": "From",
      value: custom ? toLocalInput(filters.since) : "",
    });
    const untilInput = el("input", {
      type: "datetime-local", id: "filter-until", "aria-label": "Until",
      value: custom ? toLocalInput(filters.until) : "",
    });
    const range = el("span", { className: "filters", hidden: !custom },
      fromInput, el("span", { className: "muted" }, "to"), untilInput);

    const banner = el("div");
    const tbody = el("tbody");
    const table = el("table", { id: "runs-table" },
      el("thead", null, el("tr", null,
        el("th", null, "name"),
        el("th", null, "source"),
        el("th", null, "started"),
        el("th", { className: "num" }, "duration"),
        el("th", { className: "num" }, "calls"),
        el("th", { className: "num" }, "failures"),
        el("th", { className: "num" }, "events lost"),
        el("th", null, "first failure"))),
      tbody);
    const shown = el("span", { className: "muted" });
    const more = el("button", { type: "button", className: "more", hidden: true }, "Show more");

    app.appendChild(el("h1", null, "Runs"));
    app.appendChild(el("form", { className: "filters", onsubmit: (e) => e.preventDefault() },
      el("label", null, "name", nameInput),
      el("label", null, failedInput, "failed only"),
      el("label", null, "started", sinceSelect),
      range,
      shown));
    app.appendChild(banner);
    app.appendChild(el("div", { className: "table-wrap" }, table));
    app.appendChild(more);

    let seen = null; // run ids of the previous answer: new ones are highlighted
    let shownSignature = null;
    let timer = null;
    let controller = null;
    let stopped = false;

    function currentParams() {
      const params = new URLSearchParams();
      if (filters.name) params.set("name", filters.name);
      if (filters.failed) params.set("failed", "true");
      if (filters.since) params.set("since", filters.since);
      if (filters.until) params.set("until", filters.until);
      return params;
    }

    function readFilters() {
      filters.name = nameInput.value.trim();
      filters.failed = failedInput.checked;
      if (sinceSelect.value === "custom") {
        range.hidden = false;
        filters.since = toIso(fromInput.value);
        filters.until = toIso(untilInput.value);
      } else {
        range.hidden = true;
        filters.since = sinceSelect.value;
        filters.until = "";
      }
      const params = currentParams();
      const hash = "#/" + (params.toString() ? "?" + params.toString() : "");
      history.replaceState(null, "", hash);
      seen = null;
      shownSignature = null;
      load();
    }

    let typing = null;
    nameInput.addEventListener("input", () => {
      clearTimeout(typing);
      typing = setTimeout(readFilters, 300);
    });
    for (const input of [failedInput, sinceSelect, fromInput, untilInput]) {
      input.addEventListener("change", readFilters);
    }
    more.addEventListener("click", () => {
      limit = Math.min(500, limit + 50);
      load();
    });

    function row(run, fresh) {
      const failed = run.failures > 0 || !!run.first_failure;
      const tr = el("tr", {
        className: "run" + (failed ? " failed" : "") + (fresh ? " fresh" : ""),
        dataset: { runId: run.id },
      },
        el("td", null, el("a", { href: runHref(run.id), title: run.id }, run.name || run.short_id || run.id),
          labelsText(run.labels) ? el("span", { className: "labels" }, labelsText(run.labels)) : null),
        el("td", null, run.source || ""),
        el("td", { title: run.started || "" }, formatTime(run.started)),
        el("td", { className: "num" }, formatDuration(run.duration_ms)),
        el("td", { className: "num" }, String(run.calls)),
        el("td", { className: "num failures" }, String(run.failures)),
        el("td", { className: "num" }, run.events_lost ? String(run.events_lost) : ""),
        el("td", { className: "first-failure mono" }, failureText(run.first_failure)));
      tr.addEventListener("click", (event) => {
        if (event.target.closest("a")) return;
        go(runHref(run.id));
      });
      return tr;
    }

    async function load() {
      clearTimeout(timer);
      if (controller) controller.abort();
      controller = new AbortController();
      const params = currentParams();
      params.set("limit", String(limit));
      try {
        const body = await api("/api/runs?" + params.toString(), controller.signal);
        if (stopped) return;
        clear(banner);
        setStatus("updated " + formatClock(new Date()));
        shown.textContent = plural(body.runs.length, "run") + " shown";
        more.hidden = body.runs.length < limit || limit >= 500;
        // An answer like the last one leaves the rows (and the focus) alone.
        const signature = JSON.stringify(body.runs);
        if (signature === shownSignature) {
          timer = setTimeout(tick, POLL_MS);
          return;
        }
        shownSignature = signature;
        const ids = new Set(body.runs.map((run) => run.id));
        clear(tbody);
        for (const run of body.runs) tbody.appendChild(row(run, seen !== null && !seen.has(run.id)));
        if (!body.runs.length) {
          tbody.appendChild(el("tr", null, el("td", { colSpan: 8, className: "muted" },
            filters.name || filters.failed || filters.since
              ? "No run matches these filters."
              : "No runs yet: runs appear here as soon as a flow run's events reach the store.")));
        }
        seen = ids;
      } catch (err) {
        if (err.name === "AbortError" || stopped) return;
        clear(banner);
        banner.appendChild(errorBanner(err));
        setStatus("not updated");
      }
      if (!stopped) timer = setTimeout(tick, POLL_MS);
    }

    // Polls while the page is visible; a hidden tab asks again when shown.
    function tick() {
      if (document.hidden) {
        timer = setTimeout(tick, POLL_MS);
        return;
      }
      load();
    }

    load();
    return () => {
      stopped = true;
      clearTimeout(timer);
      clearTimeout(typing);
      if (controller) controller.abort();
      setStatus("");
    };
  }

  // ---------------------------------------------------------------- run view

  function runView(ref) {
    const controller = new AbortController();
    let chart = null;
    app.appendChild(el("p", { className: "muted" }, "Loading the run…"));
    api(`/api/runs/${encodeURIComponent(ref)}/timeline`, controller.signal).then((data) => {
      clear(app);
      chart = renderRun(data, controller.signal);
    }, (err) => {
      if (err.name === "AbortError") return;
      clear(app);
      app.appendChild(el("h1", null, "Run ", el("span", { className: "mono" }, ref)));
      app.appendChild(errorBanner(err));
    });
    return () => {
      controller.abort();
      if (chart) chart.destroy();
    };
  }

  function renderRun(data, signal) {
    const run = data.run;
    const summary = el("div", { className: "summary" },
      el("span", { title: run.id }, "id ", el("b", { className: "mono" }, run.short_id || run.id)),
      el("span", null, "source ", el("b", null, run.source || "")),
      el("span", { title: run.started || "" }, "started ", el("b", null, formatTime(run.started))),
      el("span", null, "duration ", el("b", null, formatDuration(run.duration_ms))),
      el("span", null, "calls ", el("b", null, String(run.calls))),
      el("span", { className: run.failures ? "fail" : "" }, "failures ", el("b", null, String(run.failures))),
      run.events_lost ? el("span", { className: "fail" }, "events lost ", el("b", null, String(run.events_lost))) : null,
      run.infrastructure_events ? el("span", null, "infrastructure events ", el("b", null, String(run.infrastructure_events))) : null,
      labelsText(run.labels)
        ? el("span", null, "labels ", el("b", { className: "mono" }, labelsText(run.labels)))
        : null);

    const detail = el("aside", { id: "call-detail", className: "detail", "aria-live": "polite" },
      el("p", { className: "muted" }, "Hover over a call for its duration; click it for its payload and error."));

    const heading = el("div", { className: "summary" });
    app.appendChild(el("div", null, el("h1", null, run.name || run.id), heading));
    app.appendChild(summary);

    const chartCard = el("section", { className: "chart-card", "aria-label": "Timeline" });
    app.appendChild(el("div", { className: "run-body" }, chartCard, detail));

    const chart = new Gantt(chartCard, data, {
      onSelect: (item) => showDetail(detail, item, run, signal, chart),
    });
    const first = chart.firstFailure;
    if (first) {
      const d = first.data;
      const label = first.kind === "call"
        ? `${d.block}.${d.method}: ${d.error_type || "failed"}`
        : d.summary || d.event;
      const button = el("button", { type: "button", id: "first-failure", title: "Show the first failure" }, label);
      button.addEventListener("click", () => {
        chart.reveal(d);
        chart.select(d);
      });
      append(heading, ["first failure ", button]);
    } else if (run.first_failure) {
      append(heading, ["first failure ", el("span", { id: "first-failure", className: "mono" }, failureText(run.first_failure))]);
    } else {
      append(heading, ["no failure"]);
    }
    return chart;
  }

  // The detail panel: what the timeline knows at once, then the stored event.
  function showDetail(panel, item, run, signal, chart) {
    clear(panel);
    const isCall = item.kind === "call";
    const data = item.data;
    if (isCall) {
      panel.appendChild(el("h2", null,
        el("a", { href: blockHref(data.block) }, data.block), "." + data.method));
      const outcomeClass = data.outcome === "failed" ? "outcome-failed"
        : data.outcome === "running" ? "outcome-running" : "";
      panel.appendChild(el("dl", null,
        el("dt", null, "outcome"), el("dd", { className: outcomeClass }, data.outcome),
        el("dt", null, "started"), el("dd", { title: data.started }, formatTime(data.started),
          el("span", { className: "muted" }, "  " + formatOffset(item.start))),
        el("dt", null, "duration"), el("dd", null, data.duration_ms === null ? "still running" : formatDuration(data.duration_ms)),
        data.task_run_name || data.task_run_id ? [el("dt", null, "task run"), el("dd", null, data.task_run_name || data.task_run_id)] : null,
        data.caller ? [el("dt", null, "called from"), el("dd", null, callerLink(data.caller, chart))] : null,
        data.error_type ? [el("dt", null, "error"), el("dd", { className: "mono outcome-failed" }, data.error_type)] : null));
      if (data.error_message) {
        panel.appendChild(el("pre", { className: "error-message" }, data.error_message));
      }
    } else {
      panel.appendChild(el("h2", null, data.event));
      panel.appendChild(el("dl", null,
        el("dt", null, "occurred"), el("dd", { title: data.occurred }, formatTime(data.occurred),
          el("span", { className: "muted" }, "  " + formatOffset(item.start))),
        el("dt", null, "resource"), el("dd", { className: "mono" }, data.resource && data.resource.id ? data.resource.id : String(data.resource || "")),
        el("dt", null, "failure"), el("dd", { className: data.failure ? "outcome-failed" : "" }, data.failure ? "yes" : "no")));
      if (data.summary) panel.appendChild(el("pre", { className: data.failure ? "error-message" : "" }, data.summary));
    }
    if (!data.event_id) return;
    const holder = el("div", null, el("p", { className: "muted" }, "Loading the event…"));
    panel.appendChild(holder);
    loadEvents(data, signal).then(([started, outcome]) => {
      clear(holder);
      // The outcome holds what the call did: its duration, error and detail.
      const main = outcome || started;
      holder.appendChild(el("h2", null, "Payload"));
      holder.appendChild(el("pre", { className: "payload" }, JSON.stringify(main.payload || {}, null, 2)));
      if (outcome && started.payload && Object.keys(started.payload).length) {
        holder.appendChild(el("h2", null, "Payload at the start"));
        holder.appendChild(el("pre", { className: "payload" }, JSON.stringify(started.payload, null, 2)));
      }
      holder.appendChild(el("h2", null, outcome ? "Events" : "Event"));
      holder.appendChild(el("dl", null, [started, outcome].filter(Boolean).map((event) => [
        el("dt", null, "event"), el("dd", { className: "mono" }, event.event),
        el("dt", null, "id"), el("dd", { className: "mono" }, event.id),
        el("dt", null, "occurred"), el("dd", { title: event.occurred }, formatTime(event.occurred)),
      ]), el("dt", null, "resource"), el("dd", { className: "mono" }, resourceText(main.resource))));
      if (main.related && main.related.length) {
        holder.appendChild(el("h2", null, "Related"));
        holder.appendChild(el("dl", null, main.related.map((rel) => [
          el("dt", null, rel.role || ""),
          el("dd", { className: "mono" }, resourceText(rel)),
        ])));
      }
    }, (err) => {
      if (err.name === "AbortError") return;
      clear(holder);
      holder.appendChild(errorBanner(err));
    });
  }

  // A call's started event and its outcome (null while it runs). The API answers
  // a started event with its outcome beside it; a call may also name its outcome.
  async function loadEvents(data, signal) {
    const body = await api(`/api/events/${encodeURIComponent(data.event_id)}`, signal);
    let outcome = body.outcome || null;
    if (body.outcome === undefined && data.outcome_event_id && data.outcome_event_id !== data.event_id) {
      outcome = (await api(`/api/events/${encodeURIComponent(data.outcome_event_id)}`, signal)).event;
    }
    return [body.event, outcome];
  }

  // The call that made this one, as a button that selects it on the chart.
  function callerLink(eventId, chart) {
    const caller = chart && chart.callByEvent(eventId);
    if (!caller) return el("span", { className: "mono" }, eventId);
    const d = caller.data;
    return el("button", {
      type: "button", className: "link",
      onclick: () => {
        chart.reveal(d);
        chart.select(caller);
      },
    }, `${d.block}.${d.method}`);
  }

  function resourceText(resource) {
    if (!resource) return "";
    const name = resource.name ? ` (${resource.name})` : "";
    return `${resource.id}${name}`;
  }

  // ---------------------------------------------------------------- the Gantt chart

  const ROW_PAD = 6;      // space above and below a row's lanes
  const LANE_H = 20;      // one lane of bars
  const BAR_H = 12;
  const X_PAD = 16;       // space before the run's start and after its end
  const MAX_LANES = 8;    // more concurrent calls than this share lanes
  const MAX_WIDTH = 8e6;  // browsers cap element sizes near 2^24 pixels

  const COLORS = {
    ok: "#4a7fb5",
    fail: "#c9473e",
    running: "#c08a1e",
    task: "rgba(120, 96, 190, 0.09)",
    taskAlt: "rgba(120, 96, 190, 0.04)",
    taskBar: "#b9acdf",
    taskText: "#4b3f73",
    infra: "#6e7781",
    grid: "#eceef0",
    axis: "#656d76",
    select: "#1f2328",
  };

  // Puts items (sorted by start) into lanes so that bars in a lane do not overlap.
  function packLanes(items) {
    const ends = [];
    for (const item of items) {
      let lane = ends.findIndex((end) => end <= item.start);
      if (lane === -1) {
        if (ends.length < MAX_LANES) {
          lane = ends.length;
          ends.push(0);
        } else {
          lane = ends.indexOf(Math.min(...ends));
        }
      }
      item.lane = lane;
      ends[lane] = Math.max(ends[lane], item.end);
    }
    const lanes = ends.map(() => []);
    for (const item of items) lanes[item.lane].push(item);
    // The running maximum of the ends lets a binary search find the first bar
    // that can reach into a time window, even where bars share a lane.
    for (const lane of lanes) {
      let max = -Infinity;
      lane.maxEnd = lane.map((item) => (max = Math.max(max, item.end)));
    }
    return lanes.length ? lanes : [[]];
  }

  function firstReaching(lane, t) {
    let lo = 0;
    let hi = lane.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (lane.maxEnd[mid] < t) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  function niceStep(rough) {
    const power = Math.pow(10, Math.floor(Math.log10(rough)));
    for (const m of [1, 2, 5, 10]) if (m * power >= rough) return m * power;
    return 10 * power;
  }

  function axisLabel(ms, step) {
    if (step < 1) return `${ms.toFixed(2)} ms`;
    if (step < 1000) return `${Math.round(ms)} ms`;
    if (step < 60000) return `${(ms / 1000).toFixed(step < 10000 ? 1 : 0)} s`;
    return `${(ms / 60000).toFixed(1)} min`;
  }

  class Gantt {
    constructor(card, data, options) {
      this.onSelect = options.onSelect;
      this.selected = null;
      this.drawn = 0;
      this.frame = 0;
      this.buildModel(data);

      this.zoomLabel = el("span", { className: "zoom-label" });
      const tools = el("div", { className: "chart-tools" },
        el("button", { type: "button", title: "Zoom out (-)", "aria-label": "Zoom out", onclick: () => this.zoomBy(0.5) }, "−"),
        el("button", { type: "button", title: "Zoom in (+)", "aria-label": "Zoom in", onclick: () => this.zoomBy(2) }, "+"),
        el("button", { type: "button", title: "The whole run (0)", onclick: () => this.fit() }, "Fit"),
        this.zoomLabel,
        this.failures.length > 1 ? [
          el("button", { type: "button", title: "The previous failure", onclick: () => this.stepFailure(-1) }, "◀ failure"),
          el("button", { type: "button", title: "The next failure", onclick: () => this.stepFailure(1) }, "failure ▶"),
        ] : null,
        el("span", { className: "legend" },
          el("span", null, el("span", { className: "swatch ok" }), "succeeded"),
          el("span", null, el("span", { className: "swatch fail" }), "failed"),
          el("span", null, el("span", { className: "swatch running" }), "running"),
          this.tasks.length ? el("span", null, el("span", { className: "swatch task" }), "task run") : null));

      this.axisCanvas = el("canvas", { "aria-hidden": "true" });
      this.canvas = el("canvas", { role: "img", "aria-label": `Timeline of ${this.callCount} calls` });
      this.spacer = el("div", { className: "chart-spacer" });
      this.mark = null;
      this.scroller = el("div", { className: "chart-scroll", tabIndex: 0, "aria-label": "Timeline: scroll, or +, - and 0 to zoom" }, this.spacer);
      this.labelsInner = el("div", { className: "chart-labels-inner" });
      this.body = el("div", { className: "chart-body" }, this.canvas, this.scroller);
      this.axis = el("div", { className: "chart-axis" }, this.axisCanvas);
      this.root = el("div", { id: "timeline" },
        el("div", { className: "chart-corner" }),
        this.axis,
        el("div", { className: "chart-labels" }, this.labelsInner),
        this.body);
      card.appendChild(tools);
      card.appendChild(this.root);
      this.buildLabels();
      if (!this.rows.length) {
        this.body.appendChild(el("p", { className: "muted chart-empty" },
          "No call of this run is stored yet."));
      }

      if (this.firstFailure) {
        this.mark = el("div", { id: "first-failure-mark", "aria-hidden": "true" });
        this.spacer.appendChild(this.mark);
      }

      this.scroller.addEventListener("scroll", () => this.schedule());
      this.scroller.addEventListener("mousemove", (e) => this.hover(e));
      this.scroller.addEventListener("mouseleave", () => {
        this.hovered = null;
        tooltip.hide();
        this.scroller.style.cursor = "";
      });
      this.scroller.addEventListener("click", (e) => {
        const hit = this.hitTest(e);
        if (hit) this.select(hit);
      });
      this.scroller.addEventListener("wheel", (e) => {
        if (!e.ctrlKey && !e.metaKey) return;
        e.preventDefault();
        const rect = this.scroller.getBoundingClientRect();
        this.zoomBy(e.deltaY < 0 ? 1.25 : 0.8, e.clientX - rect.left);
      }, { passive: false });
      this.scroller.addEventListener("keydown", (e) => {
        if (e.key === "+" || e.key === "=") this.zoomBy(2);
        else if (e.key === "-") this.zoomBy(0.5);
        else if (e.key === "0") this.fit();
        else if (e.key === "f" && this.firstFailure) this.reveal(this.firstFailure.data);
        else return;
        e.preventDefault();
      });
      this.resizeObserver = new ResizeObserver(() => this.resize());
      this.resizeObserver.observe(this.body);
      this.resize();
      this.initialView();
    }

    buildModel(data) {
      const run = data.run;
      const times = [];
      const push = (t) => { if (t !== null) times.push(t); };
      push(parseTime(run.started));
      for (const c of data.calls || []) push(parseTime(c.started));
      for (const t of data.tasks || []) push(parseTime(t.started));
      for (const i of data.infrastructure || []) push(parseTime(i.occurred));
      const t0 = times.length ? Math.min(...times) : 0;
      this.t0 = t0;
      let end = Math.max(0, (parseTime(run.last_event) ?? t0) - t0);
      const calls = (data.calls || []).map((c) => {
        const start = (parseTime(c.started) ?? t0) - t0;
        const duration = c.duration_ms === null || c.duration_ms === undefined ? null : Number(c.duration_ms);
        return { kind: "call", data: c, start, end: duration === null ? null : start + duration };
      });
      for (const c of calls) if (c.end !== null) end = Math.max(end, c.end);
      const infra = (data.infrastructure || []).map((i) => {
        const start = (parseTime(i.occurred) ?? t0) - t0;
        end = Math.max(end, start);
        return { kind: "infra", data: i, start, end: start, lane: 0 };
      });
      for (const c of calls) if (c.end === null) c.end = Math.max(end, c.start); // running
      this.span = Math.max(end, 1);
      this.callCount = calls.length;

      this.rows = [];
      this.tasks = (data.tasks || []).map((t) => {
        const start = (parseTime(t.started) ?? t0) - t0;
        const stop = (parseTime(t.ended) ?? t0 + start) - t0;
        return { kind: "task", data: t, start, end: Math.max(stop, start) };
      }).sort((a, b) => a.start - b.start);
      if (this.tasks.length) {
        this.rows.push({ kind: "tasks", label: "task runs", lanes: packLanes(this.tasks), count: this.tasks.length });
      }
      if (infra.length) {
        infra.sort((a, b) => a.start - b.start);
        this.rows.push({ kind: "infra", label: "infrastructure", lanes: [Object.assign(infra, { maxEnd: infra.map((i) => i.end) })], count: infra.length, failures: infra.filter((i) => i.data.failure).length });
      }
      const byBlock = new Map();
      for (const c of calls.sort((a, b) => a.start - b.start)) {
        if (!byBlock.has(c.data.block)) byBlock.set(c.data.block, []);
        byBlock.get(c.data.block).push(c);
      }
      for (const [block, items] of byBlock) {
        this.rows.push({
          kind: "block", label: block, lanes: packLanes(items), count: items.length,
          failures: items.filter((c) => c.data.outcome === "failed").length,
        });
      }
      let y = 0;
      for (const row of this.rows) {
        row.y = y;
        row.height = row.lanes.length * LANE_H + 2 * ROW_PAD;
        y += row.height;
        for (const lane of row.lanes) for (const item of lane) item.row = row;
      }
      this.height = y;
      this.failures = [];
      for (const row of this.rows) {
        if (row.kind === "tasks") continue;
        for (const lane of row.lanes) {
          for (const item of lane) {
            if (item.data.outcome === "failed" || (item.kind === "infra" && item.data.failure)) this.failures.push(item);
          }
        }
      }
      this.failures.sort((a, b) => a.start - b.start);
      const failureId = data.first_failure;
      this.firstFailure = failureId
        ? this.failures.find((item) => item.data.event_id === failureId) || null
        : null;
      if (!this.firstFailure) this.firstFailure = this.failures[0] || null;
    }

    buildLabels() {
      clear(this.labelsInner);
      for (const row of this.rows) {
        const count = row.failures
          ? el("span", { className: "count" }, `${row.count} · `, el("span", { className: "pill fail" }, `${row.failures} failed`))
          : el("span", { className: "count" }, String(row.count));
        const name = row.kind === "block"
          ? el("a", { href: blockHref(row.label), title: `Runs of ${row.label}` }, row.label)
          : el("span", { className: "name" }, row.label);
        const label = el("div", { className: "row-label" + (row.kind === "block" ? "" : " lane") }, name, count);
        label.style.top = `${row.y}px`;
        label.style.height = `${row.height}px`;
        this.labelsInner.appendChild(label);
      }
      this.labelsInner.style.height = `${this.height}px`;
    }

    // ---- geometry

    x(t) {
      return X_PAD + t * this.scale;
    }

    time(x) {
      return (x - X_PAD) / this.scale;
    }

    itemRect(item) {
      const laneTop = item.row.y + ROW_PAD + item.lane * LANE_H;
      const x = this.x(item.start);
      if (item.kind === "infra") return { x: x - 6, y: laneTop + LANE_H / 2 - 7, w: 12, h: 14 };
      const w = Math.max(2, (item.end - item.start) * this.scale);
      return { x, y: laneTop + (LANE_H - BAR_H) / 2, w, h: BAR_H };
    }

    fitScale() {
      return Math.max(1e-9, (this.viewW - 2 * X_PAD) / this.span);
    }

    setScale(scale, anchor) {
      const minScale = this.fitScale();
      const maxScale = Math.max(minScale, Math.min(1000, (MAX_WIDTH - 2 * X_PAD) / this.span));
      const next = Math.min(maxScale, Math.max(minScale, scale));
      const at = anchor === undefined ? this.viewW / 2 : anchor;
      const t = this.scale ? this.time(this.scroller.scrollLeft + at) : 0;
      this.scale = next;
      this.spacer.style.width = `${Math.ceil(this.span * next + 2 * X_PAD)}px`;
      this.spacer.style.height = `${this.height}px`;
      this.scroller.scrollLeft = this.x(t) - at;
      this.placeMark();
      const factor = next / minScale;
      this.zoomLabel.textContent = factor < 1.05 ? "whole run" : `zoom ×${factor < 10 ? factor.toFixed(1) : Math.round(factor)}`;
      this.schedule();
    }

    zoomBy(factor, anchor) {
      this.setScale(this.scale * factor, anchor);
    }

    fit() {
      this.setScale(this.fitScale(), 0);
      this.scroller.scrollLeft = 0;
    }

    // Dense runs open zoomed in, about four pixels a call, so a bar can be seen.
    initialView() {
      const fit = this.fitScale();
      const density = this.callCount / Math.max(1, this.viewW - 2 * X_PAD);
      this.scale = 0;
      this.setScale(density > 0.25 ? fit * density * 4 : fit, 0);
      if (this.firstFailure) this.reveal(this.firstFailure.data);
    }

    placeMark() {
      if (!this.mark || !this.firstFailure) return;
      const r = this.itemRect(this.firstFailure);
      this.mark.style.left = `${r.x - 4}px`;
      this.mark.style.top = `${r.y - 4}px`;
      this.mark.style.width = `${r.w + 8}px`;
      this.mark.style.height = `${r.h + 8}px`;
    }

    callByEvent(eventId) {
      for (const row of this.rows) {
        if (row.kind !== "block") continue;
        for (const lane of row.lanes) for (const item of lane) if (item.data.event_id === eventId) return item;
      }
      return null;
    }

    findItem(data) {
      for (const row of this.rows) for (const lane of row.lanes) for (const item of lane) if (item.data === data) return item;
      return null;
    }

    // Scrolls so that a call (or infrastructure event) is in view, a third in.
    reveal(data) {
      const item = this.findItem(data);
      if (!item) return;
      const r = this.itemRect(item);
      const s = this.scroller;
      if (r.x < s.scrollLeft + 8 || r.x + r.w > s.scrollLeft + this.viewW - 8) {
        s.scrollLeft = Math.max(0, r.x - this.viewW / 3);
      }
      if (r.y < s.scrollTop || r.y + r.h > s.scrollTop + this.viewH) {
        s.scrollTop = Math.max(0, r.y - this.viewH / 3);
      }
      this.schedule();
    }

    // Selects the failure before or after the selected item, in time order.
    stepFailure(direction) {
      if (!this.failures.length) return;
      const at = this.selected ? this.selected.start : direction > 0 ? -Infinity : Infinity;
      const current = this.failures.indexOf(this.selected);
      let next;
      if (current !== -1) {
        next = this.failures[(current + direction + this.failures.length) % this.failures.length];
      } else if (direction > 0) {
        next = this.failures.find((item) => item.start > at) || this.failures[0];
      } else {
        next = [...this.failures].reverse().find((item) => item.start < at) || this.failures[this.failures.length - 1];
      }
      this.reveal(next.data);
      this.select(next);
    }

    select(data) {
      const item = data.kind ? data : this.findItem(data);
      if (!item || item.kind === "task") return;
      this.selected = item;
      this.schedule();
      this.onSelect(item);
    }

    resize() {
      const w = this.body.clientWidth;
      const h = this.body.clientHeight;
      this.viewW = this.scroller.clientWidth || w;
      this.viewH = this.scroller.clientHeight || h;
      const dpr = window.devicePixelRatio || 1;
      for (const [canvas, cw, ch] of [[this.canvas, w, h], [this.axisCanvas, this.axis.clientWidth, this.axis.clientHeight]]) {
        canvas.width = Math.max(1, Math.round(cw * dpr));
        canvas.height = Math.max(1, Math.round(ch * dpr));
        canvas.style.width = `${cw}px`;
        canvas.style.height = `${ch}px`;
      }
      if (this.scale && this.scale < this.fitScale()) this.setScale(this.fitScale(), 0);
      this.schedule();
    }

    schedule() {
      if (this.frame) return;
      this.frame = requestAnimationFrame(() => {
        this.frame = 0;
        this.draw();
      });
    }

    // ---- drawing: only what is inside the scrolled window

    draw() {
      const dpr = window.devicePixelRatio || 1;
      const ctx = this.canvas.getContext("2d");
      const left = this.scroller.scrollLeft;
      const top = this.scroller.scrollTop;
      const w = this.canvas.width / dpr;
      const h = this.canvas.height / dpr;
      this.labelsInner.style.transform = `translateY(${-top}px)`;
      ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
      ctx.clearRect(0, 0, w, h);
      ctx.translate(-left, -top);
      const t0 = this.time(left - 4);
      const t1 = this.time(left + w + 4);
      let drawn = 0;

      // grid lines at the axis' ticks
      const step = niceStep(90 / this.scale);
      ctx.strokeStyle = COLORS.grid;
      ctx.lineWidth = 1;
      ctx.beginPath();
      for (let t = Math.max(0, Math.floor(t0 / step) * step); t <= t1; t += step) {
        const x = Math.round(this.x(t)) + 0.5;
        ctx.moveTo(x, top);
        ctx.lineTo(x, top + h);
      }
      ctx.stroke();

      // task bands behind everything, then row separators
      this.tasks.forEach((task, i) => {
        if (task.end < t0 || task.start > t1) return;
        const x = this.x(task.start);
        ctx.fillStyle = i % 2 ? COLORS.taskAlt : COLORS.task;
        ctx.fillRect(x, top, Math.max(1, (task.end - task.start) * this.scale), h);
      });
      ctx.strokeStyle = COLORS.grid;
      ctx.beginPath();
      for (const row of this.rows) {
        const y = row.y + row.height - 0.5;
        if (y < top || y > top + h) continue;
        ctx.moveTo(left, y);
        ctx.lineTo(left + w, y);
      }
      ctx.stroke();

      const failuresInView = [];
      for (const row of this.rows) {
        if (row.y + row.height < top || row.y > top + h) continue;
        for (const lane of row.lanes) {
          let lastX = -Infinity;
          for (let i = firstReaching(lane, t0); i < lane.length; i++) {
            const item = lane[i];
            if (item.start > t1) break;
            if (item.kind === "infra") {
              this.drawMarker(ctx, item);
              drawn++;
              continue;
            }
            if (item.kind === "task") {
              this.drawTask(ctx, item);
              drawn++;
              continue;
            }
            if (item.data.outcome === "failed") {
              failuresInView.push(item);
              continue;
            }
            const r = this.itemRect(item);
            // Bars narrower than a pixel that start where the last one was
            // drawn add nothing to the picture.
            if (r.x + r.w <= lastX + 1 && r.w <= 2) continue;
            ctx.fillStyle = item.data.outcome === "running" ? COLORS.running : COLORS.ok;
            ctx.fillRect(r.x, r.y, r.w, r.h);
            lastX = r.x + r.w;
            drawn++;
          }
        }
      }
      // failures on top, so that no bar hides one
      for (const item of failuresInView) {
        const r = this.itemRect(item);
        ctx.fillStyle = COLORS.fail;
        ctx.fillRect(r.x, r.y, Math.max(r.w, 3), r.h);
        drawn++;
      }
      for (const item of this.failures) {
        if (item.kind === "infra" && item.start >= t0 && item.start <= t1) {
          const x = Math.round(this.x(item.start)) + 0.5;
          ctx.strokeStyle = "rgba(201, 71, 62, 0.35)";
          ctx.setLineDash([3, 3]);
          ctx.beginPath();
          ctx.moveTo(x, top);
          ctx.lineTo(x, top + h);
          ctx.stroke();
          ctx.setLineDash([]);
        }
      }
      for (const item of [this.selected, this.hovered]) {
        if (!item) continue;
        const r = this.itemRect(item);
        ctx.strokeStyle = COLORS.select;
        ctx.lineWidth = item === this.selected ? 2 : 1;
        ctx.strokeRect(r.x - 1.5, r.y - 1.5, Math.max(r.w, 3) + 3, r.h + 3);
      }
      this.drawn = drawn;
      this.root.dataset.drawn = String(drawn);
      this.drawAxis(left, step);
    }

    drawTask(ctx, item) {
      const r = this.itemRect(item);
      ctx.fillStyle = COLORS.taskBar;
      ctx.fillRect(r.x, r.y, r.w, r.h);
      if (r.w > 30) {
        ctx.save();
        ctx.beginPath();
        ctx.rect(r.x, r.y, r.w, r.h);
        ctx.clip();
        ctx.fillStyle = COLORS.taskText;
        ctx.font = "11px system-ui, sans-serif";
        ctx.textBaseline = "middle";
        ctx.fillText(String(item.data.name || item.data.id), r.x + 4, r.y + r.h / 2 + 0.5);
        ctx.restore();
      }
    }

    drawMarker(ctx, item) {
      const r = this.itemRect(item);
      const cx = r.x + r.w / 2;
      const cy = r.y + r.h / 2;
      ctx.fillStyle = item.data.failure ? COLORS.fail : COLORS.infra;
      ctx.beginPath();
      ctx.moveTo(cx, cy - 6);
      ctx.lineTo(cx + 6, cy);
      ctx.lineTo(cx, cy + 6);
      ctx.lineTo(cx - 6, cy);
      ctx.closePath();
      ctx.fill();
    }

    drawAxis(left, step) {
      const dpr = window.devicePixelRatio || 1;
      const ctx = this.axisCanvas.getContext("2d");
      const w = this.axisCanvas.width / dpr;
      const h = this.axisCanvas.height / dpr;
      ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
      ctx.clearRect(0, 0, w, h);
      ctx.fillStyle = COLORS.axis;
      ctx.strokeStyle = COLORS.axis;
      ctx.font = "11px system-ui, sans-serif";
      ctx.textBaseline = "middle";
      const t0 = this.time(left - 60);
      const t1 = this.time(left + w);
      ctx.beginPath();
      for (let t = Math.max(0, Math.floor(t0 / step) * step); t <= t1; t += step) {
        const x = Math.round(this.x(t) - left) + 0.5;
        ctx.moveTo(x, h - 6);
        ctx.lineTo(x, h);
        ctx.fillText(axisLabel(t, step), x + 3, h / 2 - 2);
      }
      ctx.stroke();
    }

    // ---- pointer

    hitTest(event) {
      const rect = this.scroller.getBoundingClientRect();
      const x = event.clientX - rect.left + this.scroller.scrollLeft;
      const y = event.clientY - rect.top + this.scroller.scrollTop;
      const row = this.rows.find((r) => y >= r.y && y < r.y + r.height);
      if (!row) return null;
      const laneIndex = Math.floor((y - row.y - ROW_PAD) / LANE_H);
      const lane = row.lanes[laneIndex];
      if (!lane) return null;
      const slack = 4 / this.scale; // a few pixels either side of a thin bar
      const t = this.time(x);
      let best = null;
      let bestDistance = Infinity;
      for (let i = firstReaching(lane, t - slack); i < lane.length; i++) {
        const item = lane[i];
        if (item.start > t + slack) break;
        const r = this.itemRect(item);
        const distance = x < r.x ? r.x - x : x > r.x + r.w ? x - r.x - r.w : 0;
        if (distance <= 4 && (distance < bestDistance ||
            (distance === bestDistance && item.data.outcome === "failed"))) {
          best = item;
          bestDistance = distance;
        }
      }
      return best;
    }

    hover(event) {
      const hit = this.hitTest(event);
      if (hit !== this.hovered) {
        this.hovered = hit;
        this.schedule();
      }
      this.scroller.style.cursor = hit && hit.kind !== "task" ? "pointer" : "";
      if (!hit) {
        tooltip.hide();
        return;
      }
      const d = hit.data;
      let lines;
      if (hit.kind === "call") {
        lines = [
          `${d.block}.${d.method}`,
          `${d.duration_ms === null ? "still running" : formatDuration(d.duration_ms)} · ${d.outcome}`,
          d.error_type || null,
          `started ${formatOffset(hit.start)}`,
          d.task_run_name ? `task ${d.task_run_name}` : null,
        ];
      } else if (hit.kind === "task") {
        lines = [`task run ${d.name || d.id}`, formatDuration(hit.end - hit.start), `started ${formatOffset(hit.start)}`];
      } else {
        lines = [d.event, d.summary || null, `at ${formatOffset(hit.start)}`];
      }
      tooltip.show(lines, event.clientX, event.clientY);
    }

    destroy() {
      this.resizeObserver.disconnect();
      if (this.frame) cancelAnimationFrame(this.frame);
      tooltip.hide();
    }
  }

  // ---------------------------------------------------------------- block view

  function blockView(parts) {
    const block = parts.join("/");
    const controller = new AbortController();
    app.appendChild(el("p", { className: "muted" }, "Loading the block…"));
    const path = "/api/blocks/" + parts.map(encodeURIComponent).join("/") + "/runs";
    let strip = null;
    api(path, controller.signal).then((data) => {
      clear(app);
      strip = renderBlock(data);
    }, (err) => {
      if (err.name === "AbortError") return;
      clear(app);
      app.appendChild(el("h1", null, block));
      app.appendChild(errorBanner(err));
    });
    return () => {
      controller.abort();
      if (strip) strip.destroy();
    };
  }

  function renderBlock(data) {
    const runs = data.runs || [];
    const last = data.last_error;
    const failedRuns = runs.filter((r) => r.failures > 0).length;
    app.appendChild(el("h1", null, data.block));
    app.appendChild(el("div", { className: "summary" },
      el("span", null, "runs ", el("b", null, String(runs.length))),
      el("span", { className: failedRuns ? "fail" : "" }, "runs with failures ", el("b", null, String(failedRuns))),
      el("a", { href: "#/blocks" }, "all blocks")));

    const cards = el("div", { className: "cards" },
      el("div", { className: "card" + (data.failing_since ? " fail" : ""), id: "failing-since" },
        el("div", { className: "label" }, "failing since"),
        el("div", { className: "value", title: data.failing_since || "" },
          data.failing_since ? formatTime(data.failing_since) : "not failing")),
      el("div", { className: "card" + (data.failed_runs_since ? " fail" : ""), id: "failed-runs-since" },
        el("div", { className: "label" }, "failed runs since"),
        el("div", { className: "value" }, String(data.failed_runs_since || 0))),
      el("div", { className: "card wide" + (last ? " fail" : ""), id: "last-error" },
        el("div", { className: "label" }, "last error"),
        last
          ? [
            el("div", { className: "value mono" }, last.type || "error"),
            el("div", { className: "muted" }, formatTime(last.occurred),
              last.flow_run_id ? [" in ", el("a", { href: runHref(last.flow_run_id) }, "its run")] : null),
            last.message ? el("pre", null, last.message) : null,
          ]
          : el("div", { className: "value" }, "none")));
    app.appendChild(cards);

    let strip = null;
    if (runs.length) {
      const canvas = el("canvas", { role: "img", "aria-label": `${runs.length} runs over time; failed runs in red` });
      app.appendChild(el("div", { className: "strip-card" },
        el("h2", null, "Runs over time"), canvas));
      strip = new RunStrip(canvas, runs, data.failing_since);
    }

    const tbody = el("tbody");
    for (const r of runs) {
      const failed = r.failures > 0;
      const id = r.flow_run_id || "";
      const tr = el("tr", { className: "block-run" + (failed ? " failed" : ""), dataset: { runId: id } },
        el("td", null, id
          ? [el("a", { href: runHref(id), title: id }, r.flow_run_name || id),
            el("span", { className: "short-id mono" }, id.slice(-8))]
          : el("span", { className: "muted" }, "(outside any run)")),
        el("td", { title: r.first_used || "" }, formatTime(r.first_used)),
        el("td", { title: r.last_used || "" }, formatTime(r.last_used)),
        el("td", { className: "num" }, String(r.calls)),
        el("td", { className: "num failures" }, String(r.failures)),
        el("td", { className: "error mono" }, r.last_error_type || ""));
      if (id) {
        tr.addEventListener("click", (event) => {
          if (!event.target.closest("a")) go(runHref(id));
        });
      }
      tbody.appendChild(tr);
    }
    if (!runs.length) {
      tbody.appendChild(el("tr", null, el("td", { colSpan: 6, className: "muted" }, "No run has used this block yet.")));
    }
    app.appendChild(el("div", { className: "table-wrap" },
      el("table", { id: "block-runs" },
        el("thead", null, el("tr", null,
          el("th", null, "run"),
          el("th", null, "first used"),
          el("th", null, "last used"),
          el("th", { className: "num" }, "calls"),
          el("th", { className: "num" }, "failures"),
          el("th", null, "last error"))),
        tbody)));
    return strip;
  }

  // The block's runs on a time line, each from its first use to its last: blue
  // without failure, red with; the block fails from the dashed line on.
  class RunStrip {
    constructor(canvas, runs, failingSince) {
      this.canvas = canvas;
      this.points = runs.map((r) => {
        const start = parseTime(r.first_used);
        const end = parseTime(r.last_used);
        return { run: r, t: start, end: end === null ? start : Math.max(end, start) };
      }).filter((p) => p.t !== null);
      this.since = parseTime(failingSince);
      this.min = Math.min(...this.points.map((p) => p.t));
      this.max = Math.max(...this.points.map((p) => p.end));
      canvas.addEventListener("mousemove", (e) => this.hover(e));
      canvas.addEventListener("mouseleave", () => tooltip.hide());
      canvas.addEventListener("click", (e) => {
        const p = this.nearest(e);
        if (p && p.run.flow_run_id) go(runHref(p.run.flow_run_id));
      });
      this.observer = new ResizeObserver(() => this.draw());
      this.observer.observe(canvas);
    }

    xOf(t, w) {
      const span = this.max - this.min;
      return span > 0 ? 12 + (t - this.min) / span * (w - 24) : w / 2;
    }

    label(t) {
      const text = formatTime(new Date(t).toISOString());
      // runs within a minute of each other: their milliseconds tell them apart
      return this.max - this.min < 60000 ? `${text}.${pad(Math.floor(t % 1000), 3)}` : text;
    }

    draw() {
      const dpr = window.devicePixelRatio || 1;
      const w = this.canvas.clientWidth;
      const h = this.canvas.clientHeight;
      this.canvas.width = Math.max(1, Math.round(w * dpr));
      this.canvas.height = Math.max(1, Math.round(h * dpr));
      const ctx = this.canvas.getContext("2d");
      ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
      ctx.clearRect(0, 0, w, h);
      const mid = h / 2 - 6;
      ctx.strokeStyle = COLORS.grid;
      ctx.beginPath();
      ctx.moveTo(0, mid + 0.5);
      ctx.lineTo(w, mid + 0.5);
      ctx.stroke();
      if (this.since !== null) {
        const x = Math.round(this.xOf(this.since, w)) + 0.5;
        ctx.fillStyle = "rgba(201, 71, 62, 0.08)";
        ctx.fillRect(x, 0, w - x, h - 14);
        ctx.strokeStyle = COLORS.fail;
        ctx.setLineDash([3, 3]);
        ctx.beginPath();
        ctx.moveTo(x, 0);
        ctx.lineTo(x, h - 14);
        ctx.stroke();
        ctx.setLineDash([]);
      }
      for (const p of this.points) {
        const x0 = this.xOf(p.t, w);
        const x1 = Math.max(this.xOf(p.end, w), x0 + 6);
        ctx.fillStyle = p.run.failures > 0 ? COLORS.fail : COLORS.ok;
        ctx.fillRect(x0 - 3, mid - 6, x1 - x0, 12);
      }
      ctx.fillStyle = COLORS.axis;
      ctx.font = "11px system-ui, sans-serif";
      ctx.textBaseline = "bottom";
      ctx.fillText(this.label(this.min), 4, h);
      if (this.max > this.min) {
        const text = this.label(this.max);
        ctx.fillText(text, w - 4 - ctx.measureText(text).width, h);
      }
    }

    nearest(event) {
      const rect = this.canvas.getBoundingClientRect();
      const x = event.clientX - rect.left;
      let best = null;
      let bestDistance = 8;
      for (const p of this.points) {
        const x0 = this.xOf(p.t, rect.width) - 3;
        const x1 = Math.max(this.xOf(p.end, rect.width), x0 + 9);
        const d = x < x0 ? x0 - x : x > x1 ? x - x1 : 0;
        if (d <= bestDistance) {
          best = p;
          bestDistance = d;
        }
      }
      return best;
    }

    hover(event) {
      const p = this.nearest(event);
      this.canvas.style.cursor = p && p.run.flow_run_id ? "pointer" : "";
      if (!p) {
        tooltip.hide();
        return;
      }
      const r = p.run;
      tooltip.show([
        r.flow_run_name || r.flow_run_id || "(outside any run)",
        formatTime(r.first_used),
        `${plural(r.calls, "call")}, ${r.failures} failed`,
        r.last_error_type || null,
      ], event.clientX, event.clientY);
    }

    destroy() {
      this.observer.disconnect();
      tooltip.hide();
    }
  }

  // ---------------------------------------------------------------- blocks list

  function blocksView() {
    const controller = new AbortController();
    const filter = el("input", { type: "text", id: "filter-block", placeholder: "s3-bucket/*", "aria-label": "Block name" });
    const banner = el("div");
    const tbody = el("tbody");
    app.appendChild(el("h1", null, "Blocks"));
    app.appendChild(el("p", { className: "muted" },
      "The blocks that runs have called, and the saved documents. Open one to see its runs and when it started failing."));
    app.appendChild(el("form", { className: "filters", onsubmit: (e) => e.preventDefault() },
      el("label", null, "block", filter)));
    app.appendChild(banner);
    app.appendChild(el("div", { className: "table-wrap" },
      el("table", { id: "blocks-table" },
        el("thead", null, el("tr", null,
          el("th", null, "block"),
          el("th", null, "type"),
          el("th", null, "saved"),
          el("th", { className: "num" }, "runs"),
          el("th", { className: "num" }, "failures"),
          el("th", null, "last used"))),
        tbody)));

    let blocks = [];
    function render() {
      const pattern = filter.value.trim().toLowerCase();
      const regex = pattern
        ? new RegExp(pattern.split("*").map((part) => part.replace(/[.+?^${}()|[\]\\]/g, "\\$&")).join(".*"))
        : null;
      clear(tbody);
      const shown = blocks.filter((b) => !regex || regex.test(String(b.block).toLowerCase()));
      for (const b of shown) {
        const tr = el("tr", { className: "block-row" + (b.failures ? " failed" : ""), dataset: { block: b.block } },
          el("td", null, el("a", { href: blockHref(b.block) }, b.block)),
          el("td", { className: "mono" }, b.type || ""),
          el("td", null, b.saved ? "saved" : el("span", { className: "muted" }, "not saved")),
          el("td", { className: "num" }, String(b.runs)),
          el("td", { className: "num failures" }, String(b.failures)),
          el("td", { title: b.last_used || "" }, b.last_used ? formatTime(b.last_used) : ""));
        tr.addEventListener("click", (event) => {
          if (!event.target.closest("a")) go(blockHref(b.block));
        });
        tbody.appendChild(tr);
      }
      if (!shown.length) {
        tbody.appendChild(el("tr", null, el("td", { colSpan: 6, className: "muted" },
          blocks.length ? "No block matches." : "No blocks yet: save a document or call a block in a run.")));
      }
    }
    filter.addEventListener("input", render);
    api("/api/blocks", controller.signal).then((data) => {
      blocks = data.blocks || [];
      render();
    }, (err) => {
      if (err.name !== "AbortError") banner.appendChild(errorBanner(err));
    });
    return () => controller.abort();
  }

  window.addEventListener("hashchange", route);
  route();
})();
