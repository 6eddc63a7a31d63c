// tern's web queue viewer: the queue with filters, a message's details and
// trail, and the retry/bounce/delete actions, through the admin listener's
// /api/ routes with the token of the URL fragment (/#token=…). Every text that
// came from a message is written with textContent, never as HTML, so markup
// in a subject or an address is shown as it is. No framework, no build step.
"use strict";

(function () {
  const REFRESH_MS = 4000;
  const SUBJECTS_PER_REFRESH = 20;  // details fetched for new rows at each refresh

  const $ = (id) => document.getElementById(id);
  const token = new URLSearchParams(location.hash.slice(1)).get("token") || "";
  let messages = [];
  const subjects = new Map();  // InternalId → Subject (a message's subject never changes)
  let selected = null;         // the InternalId shown in the details
  let armed = null;            // the action button waiting for its confirming click
  let timer = null;

  async function api(method, path) {
    const response = await fetch(path, {
      method: method,
      headers: { "Authorization": "Bearer " + token },
      cache: "no-store",
    });
    let body = null;
    try {
      body = await response.json();
    } catch (e) {
      body = null;
    }
    return { status: response.status, body: body };
  }

  function text(tag, value, className) {
    const node = document.createElement(tag);
    node.textContent = value === undefined || value === null ? "" : String(value);
    if (className) node.className = className;
    return node;
  }

  function setStatus(message, problem) {
    const s = $("status");
    s.textContent = message;
    s.classList.toggle("problem", !!problem);
  }

  function domainOf(address) {
    const at = address.lastIndexOf("@");
    return at < 0 ? "" : address.slice(at + 1).toLowerCase();
  }

  function matches(m) {
    const state = $("f-state").value;
    const domain = $("f-domain").value.trim().toLowerCase();
    const sender = $("f-sender").value.trim().toLowerCase();
    if (state === "held" && !m.held) return false;
    if (state && state !== "held" && !m.recipients.some((r) => r.status === state)) return false;
    if (domain && !m.recipients.some((r) => domainOf(r.address).includes(domain))) return false;
    if (sender && !(m.sender || "<>").toLowerCase().includes(sender)) return false;
    return true;
  }

  function recipientsCell(m) {
    const cell = document.createElement("td");
    for (const r of m.recipients) {
      const line = document.createElement("div");
      line.appendChild(text("span", r.address, "address"));
      line.appendChild(text("span", r.status, "state state-" + r.status));
      if (r.last_reply) line.title = r.last_reply;
      cell.appendChild(line);
    }
    if (m.held) cell.appendChild(text("div", "held: " + m.held, "state state-held"));
    return cell;
  }

  function render() {
    const body = $("rows");
    const shown = messages.filter(matches);
    const rows = [];
    for (const m of shown) {
      const row = document.createElement("tr");
      row.dataset.id = String(m.id);
      if (String(m.id) === selected) row.className = "selected";
      row.appendChild(text("td", m.id, "id"));
      row.appendChild(text("td", m.arrival));
      row.appendChild(text("td", m.sender || "<>", "sender"));
      row.appendChild(text("td", subjects.get(String(m.id)) ?? "…", "subject"));
      row.appendChild(recipientsCell(m));
      row.appendChild(text("td", m.size, "size"));
      row.appendChild(text("td", m.next_attempt));
      row.addEventListener("click", () => showDetails(String(m.id)));
      rows.push(row);
    }
    body.replaceChildren(...rows);
    $("empty").hidden = messages.length !== 0;
    $("count").textContent = shown.length + " of " + messages.length + " message(s)";
  }

  async function fetchSubjects() {
    const missing = messages.filter((m) => !subjects.has(String(m.id))).slice(0, SUBJECTS_PER_REFRESH);
    for (const m of missing) {
      const r = await api("GET", "/api/queue/" + encodeURIComponent(m.id));
      if (r.status === 200 && r.body) subjects.set(String(m.id), r.body.subject || "");
    }
    if (missing.length) render();
  }

  async function refresh() {
    clearTimeout(timer);
    try {
      const r = await api("GET", "/api/queue");
      if (r.status === 401) {
        setStatus("The token was refused (401): check the #token= of this page.", true);
      } else if (r.status !== 200 || !Array.isArray(r.body)) {
        setStatus("The queue cannot be read now (" + r.status + ").", true);
      } else {
        messages = r.body;
        const live = new Set(messages.map((m) => String(m.id)));
        for (const id of subjects.keys()) if (!live.has(id)) subjects.delete(id);
        render();
        setStatus("Updated " + new Date().toLocaleTimeString());
        await fetchSubjects();
        if (selected && !live.has(selected)) hideDetails();
      }
    } catch (e) {
      setStatus("tern cannot be reached: " + e.message, true);
    }
    timer = setTimeout(refresh, REFRESH_MS);
  }

  function definition(list, term, value) {
    list.appendChild(text("dt", term));
    list.appendChild(text("dd", value));
  }

  function hideDetails() {
    selected = null;
    disarm();
    $("details").hidden = true;
    render();
  }

  async function showDetails(id) {
    selected = id;
    disarm();
    $("action-result").textContent = "";
    render();
    const r = await api("GET", "/api/queue/" + encodeURIComponent(id));
    if (selected !== id) return;
    if (r.status !== 200 || !r.body) {
      $("action-result").textContent = (r.body && r.body.error) || "not found (" + r.status + ")";
      return;
    }
    const m = r.body;
    subjects.set(id, m.subject || "");
    $("details").hidden = false;
    $("d-id").textContent = String(m.id);
    const env = $("d-envelope");
    env.replaceChildren();
    definition(env, "Subject", m.subject);
    definition(env, "Sender", m.sender || "<>");
    definition(env, "Message-ID", m.message_id);
    definition(env, "Arrival", m.arrival);
    definition(env, "Next attempt", m.next_attempt);
    definition(env, "Size", m.size + " octets");
    definition(env, "Received from", "[" + m.client + "] (" + m.helo + ") on " + m.listener);
    if (m.auth_user) definition(env, "Authenticated as", m.auth_user);
    if (m.envid) definition(env, "ENVID", m.envid);
    if (m.held) definition(env, "Held", m.held);
    const rcpts = [];
    for (const rc of m.recipients) {
      const row = document.createElement("tr");
      row.appendChild(text("td", rc.address));
      row.appendChild(text("td", rc.status, "state state-" + rc.status));
      row.appendChild(text("td", rc.attempts));
      row.appendChild(text("td", rc.last_reply || ""));
      rcpts.push(row);
    }
    $("d-recipients").replaceChildren(...rcpts);
    $("d-headers").textContent = m.headers + (m.headers_truncated ? "\n[… cut]" : "");
    await showTrail(id);
  }

  async function showTrail(id) {
    const status = $("d-trail-status");
    const body = $("d-trail");
    body.replaceChildren();
    const r = await api("GET", "/api/trail?id=" + encodeURIComponent(id));
    if (selected !== id) return;
    if (r.status !== 200 || !r.body || !Array.isArray(r.body.events)) {
      status.textContent = "trail not available";
      return;
    }
    status.textContent = r.body.events.length ? "" : "no events yet";
    const rows = [];
    for (const e of r.body.events) {
      const row = document.createElement("tr");
      row.appendChild(text("td", typeof e.time === "number" ? new Date(e.time).toISOString() : e.time));
      row.appendChild(text("td", e.event));
      row.appendChild(text("td", e.recipient));
      row.appendChild(text("td", e.remote_host));
      row.appendChild(text("td", e.reply));
      rows.push(row);
    }
    body.replaceChildren(...rows);
  }

  function disarm() {
    if (!armed) return;
    armed.textContent = armed.dataset.label;
    armed.classList.remove("armed");
    armed = null;
  }

  // First click arms the button ("Confirm bounce"), the second acts.
  async function act(button) {
    const action = button.dataset.action;
    if (armed !== button) {
      disarm();
      armed = button;
      button.dataset.label = button.textContent;
      button.textContent = "Confirm " + action;
      button.classList.add("armed");
      return;
    }
    disarm();
    const id = selected;
    if (!id) return;
    const path = "/api/queue/" + encodeURIComponent(id);
    const r = action === "delete" ? await api("DELETE", path) : await api("POST", path + "/" + action);
    const said = r.body ? r.body.result || r.body.error || "" : "";
    $("action-result").textContent = (r.status === 200 ? "" : r.status + ": ") + said;
    await refresh();
  }

  function start() {
    if (!token) {
      $("no-token").hidden = false;
      setStatus("no token", true);
      return;
    }
    for (const id of ["f-state", "f-domain", "f-sender"]) $(id).addEventListener("input", render);
    $("filters").addEventListener("submit", (e) => e.preventDefault());
    for (const id of ["a-retry", "a-bounce", "a-delete"]) {
      const b = $(id);
      b.addEventListener("click", () => act(b));
    }
    $("a-close").addEventListener("click", hideDetails);
    window.addEventListener("hashchange", () => location.reload());
    refresh();
  }

  document.addEventListener("DOMContentLoaded", start);
})();
