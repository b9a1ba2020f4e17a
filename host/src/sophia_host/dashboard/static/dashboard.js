// Sophia's dashboard: one EventSource on the audit feed (ids = audit seqs), a few JSON panels.
// No framework, no build step. Every value from the host is shown with textContent, never as HTML.
"use strict";
(() => {
  const body = document.body;
  const hostName = body.dataset.host;
  const byId = (id) => document.getElementById(id);
  const MAX_ROWS = 200, KEEP_CALLS = 1000, MAX_AUDIT = 50, MAX_LATENCIES = 200000;
  // What the page has seen, for whoever watches it (the browser tests and bench/dashboard read it).
  const state = {
    lastSeq: Number(body.dataset.head), received: 0, lost: 0, duplicates: 0, opens: 0,
    latencies: [], source: null, calls: [],
  };
  window.sophiaDashboard = state;

  function cell(row, text, cls) {
    const td = document.createElement("td");
    td.textContent = text === null || text === undefined ? "" : String(text);
    if (cls) td.className = cls;
    row.appendChild(td);
  }
  function clock(ts) {
    const d = new Date(ts * 1000);
    return d.toLocaleTimeString([], {hour12: false}) + "." + String(d.getMilliseconds()).padStart(3, "0");
  }
  async function getJson(path) {
    const response = await fetch(path, {headers: {"Accept": "application/json"}});
    if (response.status === 401) { window.location.assign("/ui/login"); throw new Error("logged out"); }
    return response.json();
  }
  async function postJson(path) {
    const response = await fetch(path, {method: "POST", headers: {"Content-Type": "application/json"}, body: "{}"});
    return {status: response.status, body: await response.json()};
  }

  // -- live calls ---------------------------------------------------------------------------
  const filters = {user: byId("f-user"), tool: byId("f-tool"), outcome: byId("f-outcome")};
  function matches(r) {
    const user = filters.user.value.trim(), tool = filters.tool.value.trim(), outcome = filters.outcome.value;
    return (!user || r.principal.includes(user)) && (!tool || r.tool.includes(tool)) &&
      (!outcome || r.outcome === outcome);
  }
  function callRow(r) {
    const tr = document.createElement("tr");
    tr.dataset.seq = r.seq; tr.dataset.user = r.principal; tr.dataset.tool = r.tool; tr.dataset.outcome = r.outcome;
    tr.className = "outcome-" + r.outcome;
    cell(tr, clock(r.ts)); cell(tr, r.principal); cell(tr, r.tool); cell(tr, r.outcome, "outcome");
    cell(tr, r.error_code); cell(tr, Number(r.duration_ms).toFixed(1), "num");
    return tr;
  }
  function showCalls(fresh) {
    const tbody = byId("calls-body");
    const frag = document.createDocumentFragment();
    for (let i = fresh.length - 1; i >= 0; i--) { if (matches(fresh[i])) frag.appendChild(callRow(fresh[i])); }
    tbody.insertBefore(frag, tbody.firstChild);
    while (tbody.rows.length > MAX_ROWS) tbody.deleteRow(-1);
    byId("calls-count").textContent = state.received + " audit events received";
  }
  function refilter() {
    byId("calls-body").replaceChildren();
    showCalls(state.calls.filter(matches).slice(-MAX_ROWS));
  }
  for (const input of Object.values(filters)) input.addEventListener("input", refilter);

  // -- the feed -----------------------------------------------------------------------------
  let approvalsDirty = false;
  function onRecords(records) {
    const fresh = [], audit = [];
    for (const r of records) {
      if (r.seq <= state.lastSeq) { state.duplicates++; continue; }
      if (r.seq !== state.lastSeq + 1) state.lost += r.seq - state.lastSeq - 1;
      state.lastSeq = r.seq; state.received++;
      audit.push(r);
      if (r.server === hostName) fresh.push(r);
      if (r.outcome === "pending" || r.server === "approvals") approvalsDirty = true;
    }
    if (fresh.length) {
      state.calls.push(...fresh);
      if (state.calls.length > KEEP_CALLS) state.calls.splice(0, state.calls.length - KEEP_CALLS);
      showCalls(fresh);
    }
    if (audit.length && byId("audit-body")) showAudit(audit);
    const now = Date.now();
    for (const r of fresh) { if (state.latencies.length < MAX_LATENCIES) state.latencies.push(now - r.ts * 1000); }
    if (approvalsDirty && byId("approvals-body")) { approvalsDirty = false; loadApprovals(); }
  }
  function setLive(on) {
    const live = byId("live");
    live.textContent = on ? "live" : "reconnecting…";
    live.className = "state " + (on ? "on" : "off");
  }
  function connect() {
    // The first connection says where to start; the browser's own reconnects send Last-Event-ID.
    const source = new EventSource("/ui/events?after=" + state.lastSeq);
    state.source = source;
    source.addEventListener("open", () => { state.opens++; setLive(true); });
    source.addEventListener("error", () => setLive(false));
    source.addEventListener("audit", (event) => onRecords(JSON.parse(event.data)));
  }
  // A reconnect from where the page is (what a dropped connection does), for tests and the bench.
  state.reconnect = () => { if (state.source) state.source.close(); connect(); };

  // -- panels -------------------------------------------------------------------------------
  async function loadServers() {
    const data = await getJson("/ui/api/servers");
    const tbody = byId("servers-body");
    tbody.replaceChildren();
    for (const s of data.servers) {
      const tr = document.createElement("tr");
      tr.dataset.server = s.name;
      cell(tr, s.name); cell(tr, s.health || s.state, "state-" + (s.health || s.state)); cell(tr, s.reason);
      cell(tr, s.restarts, "num"); cell(tr, s.tools, "num"); cell(tr, s.calls, "num");
      tbody.appendChild(tr);
    }
  }
  const ms = (v) => (v === null || v === undefined ? "–" : Number(v).toFixed(2));
  async function loadTools() {
    const data = await getJson("/ui/api/stats");
    const tbody = byId("tools-body");
    tbody.replaceChildren();
    for (const t of data.tools) {
      const tr = document.createElement("tr");
      tr.dataset.tool = t.tool;
      cell(tr, t.tool);
      for (const w of [t["5m"], t["60m"]]) {
        cell(tr, w.calls, "num"); cell(tr, (w.error_rate * 100).toFixed(1) + " %", "num");
        cell(tr, ms(w.p50_ms), "num"); cell(tr, ms(w.p99_ms), "num");
      }
      tbody.appendChild(tr);
    }
  }
  function showAudit(records) {
    const tbody = byId("audit-body");
    const frag = document.createDocumentFragment();
    for (let i = records.length - 1; i >= 0; i--) {
      const r = records[i], tr = document.createElement("tr");
      tr.dataset.seq = r.seq;
      cell(tr, r.seq, "num"); cell(tr, clock(r.ts)); cell(tr, r.principal); cell(tr, r.server + "." + r.tool);
      cell(tr, r.outcome, "outcome");
      frag.appendChild(tr);
    }
    tbody.insertBefore(frag, tbody.firstChild);
    while (tbody.rows.length > MAX_AUDIT) tbody.deleteRow(-1);
  }
  async function loadAudit(run) {
    byId("audit-verify").textContent = "checking…";
    const data = run ? (await postJson("/ui/api/audit/verify")).body : await getJson("/ui/api/audit");
    byId("audit-head").textContent = data.head ? data.head.seq + " · " + data.head.entry_hash.slice(0, 16) + "…" : "empty";
    const v = data.verify;
    const verdict = byId("audit-verify");
    verdict.textContent = v ? (v.intact ? "intact" : "NOT intact: " + v.problems.slice(0, 3).join("; ")) +
      " (" + v.records + " records, " + clock(v.at) + ")" : "not run";
    verdict.className = v && v.intact ? "ok" : "error";
  }
  async function loadApprovals() {
    const data = await getJson("/ui/api/approvals");
    const tbody = byId("approvals-body");
    tbody.replaceChildren();
    for (const a of data.approvals) {
      const tr = document.createElement("tr");
      tr.dataset.approval = a.id;
      cell(tr, a.id); cell(tr, a.principal); cell(tr, a.server + "." + a.tool); cell(tr, a.summary);
      cell(tr, Math.max(0, Math.round(a.expires - Date.now() / 1000)) + " s", "num");
      const td = document.createElement("td");
      for (const verb of ["approve", "deny"]) {
        const button = document.createElement("button");
        button.type = "button"; button.textContent = verb; button.className = verb;
        button.addEventListener("click", () => decide(a.id, verb));
        td.appendChild(button);
      }
      tr.appendChild(td);
      tbody.appendChild(tr);
    }
  }
  async function decide(id, verb) {
    const answer = await postJson("/ui/api/approvals/" + encodeURIComponent(id) + "/" + verb);
    byId("approvals-message").textContent = answer.status === 200 ?
      (verb === "approve" ? "approved " : "denied ") + id : answer.body.error.message;
    loadApprovals();
  }
  async function loadFigures() {
    const data = await getJson("/ui/api/figures");
    const box = byId("figures-body");
    box.replaceChildren();
    for (const f of data.figures) {
      const div = document.createElement("div");
      div.dataset.tool = f.tool;
      const h = document.createElement("h3"); h.textContent = f.tool; div.appendChild(h);
      const pre = document.createElement("pre");
      pre.textContent = f.ok ? JSON.stringify(f.data, null, 1) : "[" + f.code + "] " + f.message;
      div.appendChild(pre);
      box.appendChild(div);
    }
    if (!data.figures.length) box.textContent = "Neither the memory nor the Gong server runs on this host.";
  }
  async function loadRuns() {
    const data = await getJson("/ui/api/runs");
    if (!data.runs.length) return;  // the note stays until the first run
    const box = byId("runs-body");
    box.replaceChildren();
    for (const run of data.runs) {
      const details = document.createElement("details");
      const summary = document.createElement("summary");
      summary.textContent = [run.id, run.principal, run.status, run.question].filter(Boolean).join(" · ");
      details.appendChild(summary);
      const ol = document.createElement("ol");
      for (const step of run.steps || []) {
        const li = document.createElement("li"); li.textContent = [step.tool, step.outcome].filter(Boolean).join(" → ");
        ol.appendChild(li);
      }
      details.appendChild(ol);
      box.appendChild(details);
    }
  }
  const quietly = (fn) => () => fn().catch(() => {});
  connect();
  quietly(loadServers)(); quietly(loadTools)(); quietly(loadFigures)(); quietly(loadRuns)();
  setInterval(quietly(loadServers), 3000);
  setInterval(quietly(loadTools), 5000);
  setInterval(quietly(loadRuns), 10000);
  byId("figures-refresh").addEventListener("click", quietly(loadFigures));
  if (byId("approvals-body")) {
    quietly(loadApprovals)();
    setInterval(quietly(loadApprovals), 5000);
    quietly(() => loadAudit(false))();
    byId("audit-verify-run").addEventListener("click", quietly(() => loadAudit(true)));
  }
})();
