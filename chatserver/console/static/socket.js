// The chat socket: connect, read frames into the rooms, reconnect after a drop and resume with ?since=.
import { describeErrors, log, setStatus } from "./log.js";
import { apply, clearRoom, enableSending, loadHistory, newestUpdate } from "./rooms.js";
import { session, WS_BASE } from "./session.js";

const RESUME_OVERLAP_MS = 2000; // as the reference client: catches a change stamped just before the newest seen
const BACKOFF_CAP_MS = 5000;
const PENDING_LIMIT = 100;
const WIKI_DIALECT = "altzone-chat.wiki";
const NARROW = "(max-width: 720px)"; // as console.css
const CLOSE_MEANINGS = {
  1000: "closed normally",
  1001: "server going away: reconnecting",
  1003: "binary frames are not accepted",
  1006: "connection dropped or refused: reconnecting",
  1008: "policy: slow consumer, too many sockets of this player or too many refused frames",
  1009: "frame too large",
  1011: "server error: reconnecting",
  1012: "server draining for a restart: reconnecting",
  1013: "server overloaded: backing off",
  4401: "token expired: get a new token",
};
const RECONNECT_CODES = new Set([1001, 1006, 1011, 1012, 1013]);

const link = {
  socket: null,
  wanted: false, // the user asked to be connected: reconnect after a drop
  attempt: 0,
  timer: null,
  ref: 0,
  pending: new Map(), // ref -> what the frame was, named in the log if it is refused
  onChange: () => {},
};

/** Called whenever the socket opens, closes or becomes ready (main.js updates its buttons). */
export function onLinkChange(listener) {
  link.onChange = listener;
}

export function isOpen() {
  return Boolean(link.socket);
}

export function isWanted() {
  return link.wanted;
}

export function start() {
  link.wanted = true;
  link.attempt = 0;
  open(false);
}

export function stop() {
  link.wanted = false;
  clearTimeout(link.timer);
  if (drop()) log("info", "disconnected");
  setStatus("Not connected");
  link.onChange();
}

export function resumeNow() {
  clearTimeout(link.timer);
  drop();
  link.wanted = true;
  open(true);
}

export function send(frame, what) {
  if (!link.socket || link.socket.readyState !== WebSocket.OPEN) {
    log("error", `not connected: ${what} not sent`);
    return;
  }
  link.ref += 1;
  const ref = `c${link.ref}`;
  link.pending.set(ref, what);
  if (link.pending.size > PENDING_LIMIT) link.pending.delete(link.pending.keys().next().value);
  link.socket.send(JSON.stringify({ ...frame, ref }));
}

function drop() {
  const socket = link.socket;
  link.socket = null;
  if (socket) socket.close(1000);
  enableSending("global", false);
  enableSending("clan", false);
  return Boolean(socket);
}

function open(resume) {
  const params = new URLSearchParams({ token: session.token });
  const since = newestUpdate();
  if (resume && since) params.set("since", new Date(Date.parse(since) - RESUME_OVERLAP_MS).toISOString());
  log("info", params.has("since") ? `connecting, resuming since ${params.get("since")}` : "connecting");
  setStatus("Connecting…");
  // Ask for the wiki dialect by name: a game deployment's default dialect sends no ready, errors or closes.
  const socket = new WebSocket(`${WS_BASE}/ws/chat?${params}`, [WIKI_DIALECT]);
  link.socket = socket;
  socket.addEventListener("message", (event) => socket === link.socket && onFrame(event.data));
  socket.addEventListener("close", (event) => socket === link.socket && onClose(event));
  link.onChange();
}

function onClose(event) {
  link.socket = null;
  enableSending("global", false);
  enableSending("clan", false);
  const meaning = CLOSE_MEANINGS[event.code] ?? "closed";
  log("close", `closed ${event.code}${event.reason ? ` "${event.reason}"` : ""}: ${meaning}`);
  setStatus(`Closed ${event.code}: ${meaning}`);
  if (!link.wanted || !RECONNECT_CODES.has(event.code)) {
    link.wanted = false;
    link.onChange();
    return;
  }
  // Full jitter, doubling up to a cap; after a drain (1012) another replica answers at once.
  const ceiling = event.code === 1012 && link.attempt === 0 ? 500 : Math.min(BACKOFF_CAP_MS, 250 * 2 ** link.attempt);
  const wait = Math.round(Math.random() * ceiling);
  link.attempt += 1;
  log("info", `reconnecting in ${wait} ms`);
  link.timer = setTimeout(() => open(true), wait);
  link.onChange();
}

function onFrame(text) {
  let frame;
  try {
    frame = JSON.parse(text);
  } catch {
    log("error", `unreadable frame: ${text.slice(0, 120)}`);
    return;
  }
  if (frame.event === "ready") {
    onReady(frame);
  } else if (frame.error !== undefined) {
    const what = link.pending.get(frame.ref) ?? "request";
    link.pending.delete(frame.ref);
    log("error", `${what} refused: ${describeErrors(frame)}`);
  } else if (frame.event === "clanLeft" || frame.event === "clanJoined") {
    log("info", `${frame.event} ${frame.data.clan_id}`);
    clearRoom("clan");
    loadHistory("clan");
  } else {
    // The plain frame, or the same wrapped as {"message": frame} (CHAT_ENVELOPE=wrapped).
    const broadcast = frame.chat === undefined && frame.message && frame.message.chat ? frame.message : frame;
    if (broadcast.chat && broadcast.message) apply(broadcast.chat, broadcast.event, broadcast.message);
    else log("info", `frame ${text.slice(0, 120)}`);
  }
}

function onReady(frame) {
  link.attempt = 0;
  const who = session.claims.name ?? session.claims.player_id ?? "player";
  const clan = session.claims.clan_id ? `, clan ${session.claims.clan_id}` : "";
  const resumed = frame.recovered === undefined ? "" : `: resumed, recovered ${frame.recovered}`;
  log("ready", `ready${resumed}`);
  // On a phone the session forms would push the rooms off the first screen; they fold away.
  if (matchMedia(NARROW).matches) document.querySelector("#session").open = false;
  setStatus(`Connected as ${who}${clan}${resumed}`);
  if (frame.recovered === true) {
    enableSending("global", true);
    enableSending("clan", true);
  } else {
    // A fresh connection, or a resume that could not replay everything: read the rooms again.
    loadHistory("global");
    loadHistory("clan");
  }
  link.onChange();
}
