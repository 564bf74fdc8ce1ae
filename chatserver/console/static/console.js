// The chat console: a player's view of both rooms over the WebSocket, an operator's figures from
// /metrics, and a moderator's tools over the moderation API. Plain DOM code, no build step.
"use strict";

const BASE = location.pathname.replace(/\/console\/?$/, "");
const HTTP_BASE = location.origin + BASE;
const WS_BASE = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + BASE;
const REACTIONS = ["👍", "❤️", "😂", "🔥"];
const ROOM_LIMIT = 200;
const LOG_LIMIT = 200;
const RESUME_OVERLAP_MS = 2000; // as the reference client: catches a change stamped just before the newest seen
const BACKOFF_CAP_MS = 5000;
const METRICS_EVERY_MS = 2000;
const CLOSE_MEANINGS = {
  1000: "closed normally",
  1001: "server going away: reconnecting",
  1006: "connection dropped or refused: reconnecting",
  1008: "policy: slow consumer or too many sockets of this player",
  1009: "frame too large",
  1011: "server error: reconnecting",
  1012: "server draining for a restart: reconnecting",
  1013: "server overloaded: backing off",
  4401: "token expired: get a new token",
};
const RECONNECT_CODES = new Set([1001, 1006, 1011, 1012, 1013]);

const $ = (selector) => document.querySelector(selector);
const state = {
  token: "",
  claims: {},
  socket: null,
  wanted: false, // the user asked to be connected: reconnect after a drop
  attempt: 0,
  timer: null,
  since: null, // newest updatedAt processed, for ?since= on a resume
  resuming: false,
  hasClan: false,
  ref: 0,
  pending: new Map(), // ref -> what the frame was, for the log
  rooms: { global: new Map(), clan: new Map() },
  metrics: null,
  metricsTimer: null,
};

// --- log and status ------------------------------------------------------------------------------

function log(kind, text) {
  const list = $("#log");
  const item = document.createElement("li");
  item.dataset.kind = kind;
  item.textContent = `${new Date().toLocaleTimeString()} ${text}`;
  list.append(item);
  while (list.children.length > LOG_LIMIT) list.firstElementChild.remove();
  list.scrollTop = list.scrollHeight;
}

function setStatus(text) {
  $("#status").textContent = text;
}

function describeErrors(body) {
  const errors = body && (body.error ?? body.errors);
  if (typeof errors === "string") return errors;
  if (!Array.isArray(errors)) return JSON.stringify(body);
  return errors.map((e) => [e.reason, e.field, e.message].filter(Boolean).join(" ")).join("; ");
}

// --- tokens --------------------------------------------------------------------------------------

function claimsOf(token) {
  try {
    const payload = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const bytes = Uint8Array.from(atob(payload), (c) => c.charCodeAt(0));
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    return {};
  }
}

function isModerator() {
  return Array.isArray(state.claims.roles) && state.claims.roles.includes("moderator");
}

async function mintToken(event) {
  event.preventDefault();
  const body = {
    name: $("#mint-name").value.trim(),
    clan_id: $("#mint-clan").value.trim() || null,
    moderator: $("#mint-moderator").checked,
  };
  const answer = await api("POST", "/console/dev-token", body, false);
  if (answer.ok) {
    $("#token").value = answer.body.token;
    log("info", `signed a development token for ${body.name} (player ${answer.body.player_id})`);
    $("#connect-button").focus();
  }
}

// --- HTTP ----------------------------------------------------------------------------------------

async function api(method, path, body, withToken = true) {
  const headers = {};
  if (withToken) headers.Authorization = `Bearer ${state.token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(HTTP_BASE + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (error) {
    log("error", `${method} ${path}: ${error.message}`);
    return { ok: false, status: 0, body: null };
  }
  const text = await response.text();
  let parsed = null;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    parsed = text;
  }
  if (!response.ok) log("error", `${method} ${path}: HTTP ${response.status} ${describeErrors(parsed)}`);
  return { ok: response.ok, status: response.status, body: parsed };
}

// --- the socket ----------------------------------------------------------------------------------

async function connect(event) {
  event.preventDefault();
  const token = $("#token").value.trim();
  if (!token) return;
  disconnect();
  state.token = token;
  state.claims = claimsOf(token);
  state.since = null;
  for (const room of Object.values(state.rooms)) room.clear();
  renderAll();
  showModerator(isModerator());
  // A refused handshake reaches the page only as close code 1006; ask over HTTP first to show why.
  const probe = await api("GET", "/chat/history?type=global&limit=1");
  if (!probe.ok) {
    setStatus("Token refused");
    return;
  }
  state.wanted = true;
  state.attempt = 0;
  openSocket(false);
}

function openSocket(resume) {
  const params = new URLSearchParams({ token: state.token });
  if (resume && state.since) {
    params.set("since", new Date(Date.parse(state.since) - RESUME_OVERLAP_MS).toISOString());
  }
  state.resuming = params.has("since");
  log("info", state.resuming ? `connecting, resuming since ${params.get("since")}` : "connecting");
  setStatus("Connecting…");
  const socket = new WebSocket(`${WS_BASE}/ws/chat?${params}`);
  state.socket = socket;
  socket.addEventListener("message", (event) => socket === state.socket && onFrame(event.data));
  socket.addEventListener("close", (event) => socket === state.socket && onClose(event));
  updateButtons();
}

function disconnect() {
  state.wanted = false;
  clearTimeout(state.timer);
  if (state.socket) {
    const socket = state.socket;
    state.socket = null;
    socket.close(1000);
    log("info", "disconnected");
  }
  setStatus("Not connected");
  updateButtons();
}

function resumeNow() {
  if (!state.token) return;
  clearTimeout(state.timer);
  if (state.socket) {
    const socket = state.socket;
    state.socket = null;
    socket.close(1000);
  }
  state.wanted = true;
  openSocket(true);
}

function onClose(event) {
  state.socket = null;
  const meaning = CLOSE_MEANINGS[event.code] ?? "closed";
  log("close", `closed ${event.code}${event.reason ? ` "${event.reason}"` : ""}: ${meaning}`);
  setStatus(`Closed ${event.code}: ${meaning}`);
  updateButtons();
  if (!state.wanted || !RECONNECT_CODES.has(event.code)) {
    state.wanted = false;
    updateButtons();
    return;
  }
  // Full jitter; a drain (1012) means another replica answers at once.
  const ceiling = event.code === 1012 && state.attempt === 0 ? 500 : Math.min(BACKOFF_CAP_MS, 250 * 2 ** state.attempt);
  const wait = Math.round(Math.random() * ceiling);
  state.attempt += 1;
  log("info", `reconnecting in ${wait} ms`);
  state.timer = setTimeout(() => openSocket(true), wait);
}

function send(frame, what) {
  if (!state.socket || state.socket.readyState !== WebSocket.OPEN) {
    log("error", `not connected: ${what} not sent`);
    return;
  }
  state.ref += 1;
  const ref = `c${state.ref}`;
  state.pending.set(ref, what);
  if (state.pending.size > 100) state.pending.delete(state.pending.keys().next().value);
  state.socket.send(JSON.stringify({ ...frame, ref }));
}

function onFrame(text) {
  let frame;
  try {
    frame = JSON.parse(text);
  } catch {
    log("error", `unreadable frame: ${text.slice(0, 120)}`);
    return;
  }
  if (frame.event === "ready") return onReady(frame);
  if (frame.error !== undefined) {
    const what = state.pending.get(frame.ref) ?? "request";
    state.pending.delete(frame.ref);
    log("error", `${what} refused: ${describeErrors(frame)}`);
    return;
  }
  if (frame.event === "clanLeft" || frame.event === "clanJoined") {
    log("info", `${frame.event} ${frame.data.clan_id}`);
    state.rooms.clan.clear();
    renderRoom("clan");
    loadHistory("clan");
    return;
  }
  const broadcast = frame.chat === undefined && frame.message && frame.message.chat ? frame.message : frame;
  if (!broadcast.chat || !broadcast.message) {
    log("info", `frame ${text.slice(0, 120)}`);
    return;
  }
  apply(broadcast.chat, broadcast.event, broadcast.message);
}

function onReady(frame) {
  state.attempt = 0;
  const who = state.claims.name ?? state.claims.player_id ?? "player";
  const clan = state.claims.clan_id ? `, clan ${state.claims.clan_id}` : "";
  if (frame.recovered === undefined) {
    log("ready", "ready");
    setStatus(`Connected as ${who}${clan}`);
    loadHistory("global");
    loadHistory("clan");
  } else {
    log("ready", `ready: resumed, recovered ${frame.recovered}`);
    setStatus(`Connected as ${who}${clan}: resumed, recovered ${frame.recovered}`);
    if (frame.recovered) {
      enableRoom("global", true);
      enableRoom("clan", state.hasClan);
    } else {
      loadHistory("global");
      loadHistory("clan");
    }
  }
  updateButtons();
}

// --- rooms ---------------------------------------------------------------------------------------

function noteSince(message) {
  if (message.updatedAt && (!state.since || message.updatedAt > state.since)) state.since = message.updatedAt;
}

function apply(chat, event, message) {
  const room = state.rooms[chat];
  if (!room) return;
  noteSince(message);
  if (event === "deletedMessage") {
    room.delete(message._id);
    removeItem(chat, message._id);
    return;
  }
  const held = room.get(message._id);
  if (held && held.updatedAt >= message.updatedAt) return; // a resume's overlap repeats some
  room.set(message._id, message);
  while (room.size > ROOM_LIMIT) room.delete(oldest(room));
  renderItem(chat, message);
}

function oldest(room) {
  let found = null;
  for (const message of room.values()) if (!found || message.createdAt < found.createdAt) found = message;
  return found._id;
}

async function loadHistory(chat) {
  const answer = await api("GET", `/chat/history?type=${chat}&limit=50`);
  if (chat === "clan") state.hasClan = answer.ok;
  if (!answer.ok) {
    if (chat === "clan" && answer.status === 403) $("#room-clan-title").textContent = "Clan (none)";
    return;
  }
  if (chat === "clan") $("#room-clan-title").textContent = `Clan${state.claims.clan_id ? ` ${state.claims.clan_id}` : ""}`;
  for (const message of answer.body.data.ChatMessage) apply(chat, "newMessage", message);
  enableRoom(chat, true);
}

function enableRoom(chat, enabled) {
  for (const control of document.querySelectorAll(`.send-form[data-chat="${chat}"] input, .send-form[data-chat="${chat}"] button`)) {
    control.disabled = !enabled;
  }
}

function renderAll() {
  renderRoom("global");
  renderRoom("clan");
}

function renderRoom(chat) {
  const list = document.querySelector(`#room-${chat} .messages`);
  list.replaceChildren();
  for (const message of state.rooms[chat].values()) renderItem(chat, message);
  if (!state.socket) enableRoom(chat, false);
}

function removeItem(chat, id) {
  const item = document.querySelector(`#room-${chat} .message[data-id="${CSS.escape(id)}"]`);
  if (item) item.remove();
}

function renderItem(chat, message) {
  const list = document.querySelector(`#room-${chat} .messages`);
  const existing = list.querySelector(`.message[data-id="${CSS.escape(message._id)}"]`);
  const focusedAction = existing && existing.contains(document.activeElement) ? document.activeElement.dataset.action : null;
  const item = messageItem(chat, message);
  if (existing) {
    existing.replaceWith(item);
  } else {
    const after = [...list.children].find((other) => other.dataset.created > message.createdAt);
    list.insertBefore(item, after ?? null);
    const atBottom = !after;
    if (atBottom) list.scrollTop = list.scrollHeight;
  }
  if (focusedAction) {
    const again = item.querySelector(`[data-action="${CSS.escape(focusedAction)}"]`);
    if (again) again.focus();
  }
}

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function button(label, action, onClick, extra = {}) {
  const node = element("button", "", label);
  node.type = "button";
  node.dataset.action = action;
  for (const [name, value] of Object.entries(extra)) node.setAttribute(name, value);
  node.addEventListener("click", onClick);
  return node;
}

function messageItem(chat, message) {
  const mine = message.sender && message.sender._id === state.claims.player_id;
  const item = element("li", "message");
  item.dataset.id = message._id;
  item.dataset.created = message.createdAt;
  const sender = message.sender ? message.sender.name || message.sender._id : "(unknown)";

  const meta = element("div", "meta");
  meta.append(element("span", "sender", sender));
  const time = element("time", "", new Date(message.createdAt).toLocaleTimeString());
  time.dateTime = message.createdAt;
  meta.append(time);
  if (message.feeling) meta.append(element("span", "feeling", message.feeling));
  if (message.editedAt) meta.append(element("span", "edited", "edited"));
  item.append(meta, element("p", "content", message.content ?? message.responseType ?? ""));

  const actions = element("div", "actions");
  const own = (message.reactions || []).find((r) => r.sender_id === state.claims.player_id);
  const counts = new Map();
  for (const reaction of message.reactions || []) counts.set(reaction.emoji, (counts.get(reaction.emoji) ?? 0) + 1);
  const shown = [...REACTIONS, ...[...counts.keys()].filter((emoji) => !REACTIONS.includes(emoji))];
  for (const emoji of shown) {
    const count = counts.get(emoji) ?? 0;
    const pressed = own && own.emoji === emoji;
    const react = button(count ? `${emoji} ${count}` : emoji, `react-${emoji}`, () => {
      const data = { message_id: message._id, emoji: pressed ? "" : emoji };
      send({ event: `${chat}MessageReaction`, data }, pressed ? "removing a reaction" : `reaction ${emoji}`);
    }, { "aria-pressed": String(Boolean(pressed)), "aria-label": `React ${emoji}${count ? `, ${count} so far` : ""}` });
    react.classList.add("react");
    actions.append(react);
  }
  if (mine) {
    actions.append(button("Edit", "edit", () => startEdit(chat, message, item)));
    actions.append(button("Delete", "delete", () => {
      send({ event: `${chat}MessageDelete`, data: { message_id: message._id } }, "delete");
    }));
  } else {
    actions.append(button("Report", "report", () => {
      send({ event: `${chat}MessageReport`, data: { message_id: message._id } }, "report");
      log("info", `reported a message of ${sender}`);
    }));
  }
  if (isModerator()) {
    actions.append(button("Delete as moderator", "moderator-delete", () => moderatorDelete(message._id)));
    if (message.sender && !mine) actions.append(button("Mute…", "mute", () => prepareMute(message.sender._id)));
  }
  item.append(actions);
  return item;
}

function startEdit(chat, message, item) {
  const form = element("form", "edit-form");
  const label = element("label", "", "New text");
  const input = element("input");
  input.value = message.content ?? "";
  input.maxLength = 256;
  input.required = true;
  input.id = `edit-${message._id}`;
  label.htmlFor = input.id;
  const cancel = button("Cancel", "cancel-edit", () => renderItem(chat, state.rooms[chat].get(message._id) ?? message));
  const save = element("button", "", "Save");
  save.type = "submit";
  form.append(label, input, save, cancel);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    send({ event: `${chat}MessageEdit`, data: { message_id: message._id, content: input.value } }, "edit");
    renderItem(chat, state.rooms[chat].get(message._id) ?? message);
  });
  item.querySelector(".content").replaceWith(form);
  input.focus();
}

function sendMessage(event) {
  event.preventDefault();
  const form = event.currentTarget;
  const chat = form.dataset.chat;
  const content = form.elements.content.value;
  const feeling = form.elements.feeling.value.trim();
  const data = feeling ? { content, feeling } : { content };
  send({ event: `${chat}Message`, data }, `${chat} message`);
  form.elements.content.value = "";
  form.elements.content.focus();
}

// --- moderator -----------------------------------------------------------------------------------

function showModerator(show) {
  $("#tab-moderator").hidden = !show;
  if (!show && !$("#view-moderator").hidden) showView("player");
}

async function moderatorDelete(id) {
  const answer = await api("DELETE", `/chat/moderation/messages/${encodeURIComponent(id)}`);
  if (answer.ok) log("info", `deleted message ${id} as moderator`);
}

function prepareMute(playerId) {
  showView("moderator");
  $("#mute-player").value = playerId;
  $("#mute-minutes").focus();
}

async function mute(event) {
  event.preventDefault();
  const body = { player_id: $("#mute-player").value.trim(), minutes: Number($("#mute-minutes").value) };
  const reason = $("#mute-reason").value.trim();
  if (reason) body.reason = reason;
  const answer = await api("POST", "/chat/moderation/mutes", body);
  if (answer.ok) {
    log("info", `muted ${body.player_id} until ${answer.body.until}`);
    loadMutes();
  }
}

async function loadMutes() {
  const answer = await api("GET", "/chat/moderation/mutes");
  if (!answer.ok) return;
  const list = $("#mutes");
  list.replaceChildren();
  for (const entry of answer.body.mutes) {
    const item = element("li", "", `${entry.player_id} until ${entry.until}${entry.reason ? `: ${entry.reason}` : ""} `);
    item.append(button("Unmute", "unmute", async () => {
      const done = await api("DELETE", `/chat/moderation/mutes/${encodeURIComponent(entry.player_id)}`);
      if (done.ok) {
        log("info", `unmuted ${entry.player_id}`);
        loadMutes();
      }
    }, { "aria-label": `Unmute ${entry.player_id}` }));
    list.append(item);
  }
  if (!answer.body.mutes.length) list.append(element("li", "", "No one is muted."));
}

async function loadReports() {
  const answer = await api("GET", "/chat/moderation/reports?limit=50");
  if (!answer.ok) return;
  const list = $("#reports");
  list.replaceChildren();
  for (const report of answer.body.reports) {
    const parts = [report.at ?? report.createdAt, `message ${report.message_id}`, `by ${report.player_id ?? report.reporter_id ?? "?"}`];
    if (report.reason) parts.push(`: ${report.reason}`);
    list.append(element("li", "", parts.filter(Boolean).join(" ")));
  }
  if (!answer.body.reports.length) list.append(element("li", "", "No reports."));
}

// --- operator ------------------------------------------------------------------------------------

function parseMetrics(text) {
  const samples = [];
  for (const line of text.split("\n")) {
    const match = /^([A-Za-z_:][\w:]*)(\{.*\})?\s+(\S+)/.exec(line);
    if (!match || line.startsWith("#")) continue;
    const labels = {};
    for (const [, name, value] of (match[2] ?? "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[name] = value;
    samples.push({ name: match[1], labels, value: Number(match[3]) });
  }
  return samples;
}

function sum(samples, name, keep = () => true) {
  return samples.filter((s) => s.name === name && keep(s.labels)).reduce((total, s) => total + s.value, 0);
}

async function readMetrics() {
  let text;
  try {
    const response = await fetch(`${HTTP_BASE}/metrics`);
    text = await response.text();
  } catch (error) {
    log("error", `GET /metrics: ${error.message}`);
    return;
  }
  const samples = parseMetrics(text);
  const now = performance.now();
  const figures = {
    messages: sum(samples, "chat_frames_in_total", (l) => /Message$/.test(l.event ?? "")),
    deliveries: sum(samples, "chat_frames_out_total", (l) => l.kind === "broadcast"),
  };
  $("#op-sockets").textContent = String(sum(samples, "chat_open_sockets"));
  $("#op-rooms").textContent = String(sum(samples, "chat_rooms"));
  $("#op-errors").textContent = String(sum(samples, "chat_errors_total"));
  if (state.metrics) {
    const seconds = (now - state.metrics.at) / 1000;
    $("#op-messages").textContent = ((figures.messages - state.metrics.messages) / seconds).toFixed(1);
    $("#op-deliveries").textContent = ((figures.deliveries - state.metrics.deliveries) / seconds).toFixed(1);
  }
  state.metrics = { at: now, ...figures };
}

// --- views and wiring ----------------------------------------------------------------------------

function showView(name) {
  for (const tab of document.querySelectorAll(".tab")) tab.setAttribute("aria-pressed", String(tab.dataset.view === name));
  for (const view of document.querySelectorAll(".view")) view.hidden = view.id !== `view-${name}`;
  clearInterval(state.metricsTimer);
  state.metrics = null;
  if (name === "operator") {
    readMetrics();
    state.metricsTimer = setInterval(readMetrics, METRICS_EVERY_MS);
  }
  if (name === "moderator") {
    loadMutes();
    loadReports();
  }
}

function updateButtons() {
  const open = Boolean(state.socket);
  $("#disconnect-button").disabled = !state.wanted && !open;
  $("#resume-button").disabled = !state.token;
  if (!open) {
    enableRoom("global", false);
    enableRoom("clan", false);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  if (document.body.dataset.mint === "true") $("#mint-form").hidden = false;
  $("#metrics-link").href = `${HTTP_BASE}/metrics`;
  $("#mint-form").addEventListener("submit", mintToken);
  $("#connect-form").addEventListener("submit", connect);
  $("#disconnect-button").addEventListener("click", disconnect);
  $("#resume-button").addEventListener("click", resumeNow);
  for (const form of document.querySelectorAll(".send-form")) form.addEventListener("submit", sendMessage);
  for (const tab of document.querySelectorAll(".tab")) tab.addEventListener("click", () => showView(tab.dataset.view));
  $("#mute-form").addEventListener("submit", mute);
  $("#mutes-refresh").addEventListener("click", loadMutes);
  $("#reports-refresh").addEventListener("click", loadReports);
});
