// The live session view: the agent tree (d3-hierarchy's layout drawn as SVG), the timeline of
// every agent's events, the streaming text of the agent that is thinking, cost against budget.
// Events come from an EventSource, which resumes after the last seq it saw (Last-Event-ID); an
// event is shown once, by its seq, however often the connection drops.
(function () {
  "use strict";
  const live = document.getElementById("live");
  if (!live) return;
  const id = live.dataset.session;
  const budget = parseFloat(live.dataset.budget || "");
  const SVG = "http://www.w3.org/2000/svg";
  const TREE_EVENTS = new Set([
    "session.created", "session.started", "session.finished", "phase.changed", "model.responded",
    "child.spawned", "child.finished", "tool.finished", "git.committed", "git.merged",
    "credits.charged",
  ]);
  const ACTIVE = new Set(["created", "running", "suspended"]);
  const seen = new Set();
  const branches = {};
  const calls = {};
  const types = new Set();
  let lastSeq = 0;
  let treeTimer = null;
  let source = null;
  let finished = false;

  function el(tag, attrs, text) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function svg(tag, attrs, text) {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function setStatus(status) {
    const badge = document.getElementById("status");
    badge.textContent = status;
    badge.dataset.status = status;
    badge.className = "badge " + ({completed: "ok", failed: "bad", cancelled: "muted", running: "running"}[status] || "pending");
    document.getElementById("cancel-form").hidden = !ACTIVE.has(status);
  }

  // The whole tree's cost and tokens (each node's own), and the credits charged for it.
  function treeTotals(node) {
    const sum = {cost: parseFloat(node.cost_usd), input: node.tokens.input, output: node.tokens.output};
    for (const child of node.children || []) {
      const c = treeTotals(child);
      sum.cost += c.cost; sum.input += c.input; sum.output += c.output;
    }
    return sum;
  }

  function showTotals(session, root) {
    const t = root ? treeTotals(root) : {cost: parseFloat(session.totals.cost_usd), input: session.totals.input_tokens, output: session.totals.output_tokens};
    document.getElementById("cost-usd").textContent = t.cost.toFixed(6);
    document.getElementById("credits").textContent = session.totals.credits;
    document.getElementById("tokens").textContent = t.input + " in / " + t.output + " out";
    if (budget > 0) {
      const share = Math.min(1, t.cost / budget);
      const bar = document.getElementById("cost-bar");
      bar.style.width = (share * 100).toFixed(1) + "%";
      bar.className = share > 0.8 ? "high" : "";
    }
    setStatus(session.status);
  }

  function remember(node) {
    branches[node.session_id] = node.branch;
    (node.children || []).forEach(remember);
  }

  function drawTree(root) {
    const area = document.getElementById("tree");
    area.replaceChildren();
    if (!root) return;
    remember(root);
    const hierarchy = d3.hierarchy(root, (d) => d.children);
    const W = 190, H = 104, GAP_X = 20, GAP_Y = 46;
    d3.tree().nodeSize([W + GAP_X, H + GAP_Y])(hierarchy);
    let minX = Infinity, maxX = -Infinity, maxY = 0;
    hierarchy.each((n) => { minX = Math.min(minX, n.x); maxX = Math.max(maxX, n.x); maxY = Math.max(maxY, n.y); });
    const width = maxX - minX + W + 20, height = maxY + H + 20;
    area.setAttribute("viewBox", `${minX - W / 2 - 10} -10 ${width} ${height}`);
    area.setAttribute("width", width);
    area.setAttribute("height", height);
    for (const link of hierarchy.links()) {
      const {source: s, target: t} = link;
      const mid = (s.y + H + t.y) / 2;
      area.appendChild(svg("path", {class: "link", d: `M${s.x},${s.y + H} C${s.x},${mid} ${t.x},${mid} ${t.x},${t.y}`}));
    }
    hierarchy.each((n) => {
      const d = n.data;
      const g = svg("g", {class: "node " + d.status, transform: `translate(${n.x - W / 2},${n.y})`, "data-branch": d.branch, tabindex: "0"});
      g.appendChild(svg("title", {}, `${d.branch}: ${d.status}`));
      g.appendChild(svg("rect", {width: W, height: H, rx: 8}));
      g.appendChild(svg("text", {x: 10, y: 20, class: "branch"}, d.branch));
      g.appendChild(svg("text", {x: W - 10, y: 20, class: "status", "text-anchor": "end"}, d.status));
      g.appendChild(svg("text", {x: 10, y: 40}, (d.specialization || "root") + " · " + (d.phase || "–")));
      g.appendChild(svg("text", {x: 10, y: 60}, `$${parseFloat(d.cost_usd).toFixed(4)} · ${d.tokens.input + d.tokens.output} tokens`));
      g.appendChild(svg("text", {x: 10, y: 80}, `${d.tool_calls} tool calls · ${d.files.length} files`));
      g.appendChild(svg("text", {x: 10, y: 96, class: "muted"}, `${d.iterations} iterations`));
      area.appendChild(g);
    });
    document.getElementById("node-count").textContent = `(${hierarchy.descendants().length} agents)`;
    fillAgentFilter();
  }

  async function loadTree() {
    treeTimer = null;
    const response = await fetch(`/sessions/${id}/tree.json`, {credentials: "same-origin"});
    if (!response.ok) return;
    const body = await response.json();
    drawTree(body.root);
    showTotals(body.session, body.root);
  }

  function scheduleTree() {
    if (treeTimer === null) treeTimer = setTimeout(loadTree, 150);
  }

  function fillAgentFilter() {
    const select = document.getElementById("filter-agent");
    const have = new Set([...select.options].map((o) => o.value));
    for (const [sid, branch] of Object.entries(branches)) {
      if (!have.has(sid)) select.appendChild(el("option", {value: sid}, branch));
    }
    document.querySelectorAll("#timeline li").forEach((li) => {
      const who = li.querySelector(".who");
      if (who && branches[li.dataset.agent]) who.textContent = branches[li.dataset.agent];
    });
  }

  function fillTypeFilter(type) {
    if (types.has(type)) return;
    types.add(type);
    document.getElementById("filter-type").appendChild(el("option", {value: type}, type));
  }

  function applyFilter(li) {
    const agent = document.getElementById("filter-agent").value;
    const type = document.getElementById("filter-type").value;
    li.hidden = (agent && li.dataset.agent !== agent) || (type && li.dataset.type !== type);
  }

  function pretty(value) {
    return typeof value === "string" ? value : JSON.stringify(value, null, 2);
  }

  function describe(e) {
    const d = e.data || {};
    switch (e.type) {
      case "tool.started": return d.name;
      case "tool.finished": return `${d.name} ${d.ok ? "ok" : "failed"}`;
      case "phase.changed": return `${d.from || ""} → ${d.to || d.phase || ""}`;
      case "child.spawned": return `${d.branch || ""} ${d.specialization || ""}`;
      case "session.finished": return d.status || "";
      case "model.responded": return (d.text || "").slice(0, 120);
      default: return "";
    }
  }

  function addEvent(e) {
    if (seen.has(e.seq)) return;
    seen.add(e.seq);
    lastSeq = Math.max(lastSeq, e.seq);
    fillTypeFilter(e.type);
    const time = (e.ts || "").slice(11, 19);
    const head = [el("span", {class: "seq"}, "#" + e.seq), el("span", {class: "time"}, time),
      el("span", {class: "who"}, branches[e.session_id] || e.session_id.slice(0, 8)),
      el("span", {class: "type"}, e.type), el("span", {class: "what"}, describe(e))];
    const li = el("li", {"data-agent": e.session_id, "data-type": e.type, "data-seq": e.seq});
    if (e.type === "tool.started") {
      const details = el("details", {class: "call"});
      const summary = el("summary");
      head.forEach((h) => summary.appendChild(h));
      details.appendChild(summary);
      details.appendChild(el("h3", {}, "Input"));
      details.appendChild(el("pre", {}, pretty(e.data.input)));
      const out = el("div", {class: "output"}, "running…");
      details.appendChild(out);
      calls[e.data.call_id] = out;
      li.classList.add("tool");
      li.appendChild(details);
    } else {
      head.forEach((h) => li.appendChild(h));
    }
    if (e.type === "tool.finished" && calls[e.data.call_id]) {
      const out = calls[e.data.call_id];
      out.replaceChildren(el("h3", {}, e.data.ok ? "Output" : "Error"), el("pre", {}, pretty(e.data.ok ? e.data.output : (e.data.error || e.data.output))));
    }
    applyFilter(li);
    document.getElementById("timeline").appendChild(li);
    if (e.type === "model.responded") document.getElementById("thinking").textContent = "";
    if (e.type === "session.finished" && e.session_id === id) finished = true;
    if (TREE_EVENTS.has(e.type)) scheduleTree();
  }

  function addDelta(d) {
    const area = document.getElementById("thinking");
    const who = branches[d.session_id] || d.session_id.slice(0, 8);
    const label = document.getElementById("thinking-agent");
    if (label.textContent !== who) { label.textContent = who; area.textContent = ""; }
    area.textContent += d.text;
    area.scrollTop = area.scrollHeight;
  }

  function connect() {
    source = new EventSource(`/sessions/${id}/live?after_seq=${lastSeq}`);
    source.onmessage = null;
    source.addEventListener("delta", (m) => addDelta(JSON.parse(m.data)));
    source.onerror = () => {
      if (finished) { source.close(); return; }
      // EventSource reconnects by itself with Last-Event-ID; when it gives up, start again
      // after the last seq shown.
      if (source.readyState === EventSource.CLOSED) setTimeout(connect, 1000);
    };
    const handler = (m) => addEvent(JSON.parse(m.data));
    for (const type of KNOWN_TYPES) source.addEventListener(type, handler);
  }

  const KNOWN_TYPES = [
    "session.created", "session.started", "session.resumed", "session.finished", "phase.changed",
    "model.responded", "model.retrying", "tool.started", "tool.finished", "child.spawned",
    "child.finished", "git.committed", "git.merged", "validation.finished", "gate.evaluated",
    "completion.blocked", "context.condensed", "agent.nudged", "budget.warning",
    "credits.reserved", "credits.charged", "credits.released",
  ];

  document.getElementById("filter-agent").addEventListener("change", () => document.querySelectorAll("#timeline li").forEach(applyFilter));
  document.getElementById("filter-type").addEventListener("change", () => document.querySelectorAll("#timeline li").forEach(applyFilter));
  loadTree();
  connect();
  window.keenLive = {seen: () => seen.size, lastSeq: () => lastSeq, reconnect: () => { source.close(); connect(); }};
})();
