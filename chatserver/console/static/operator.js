// The operator's live view: this replica's sockets, rooms and rates, read from /metrics while it is open.
import { log } from "./log.js";
import { HTTP_BASE } from "./session.js";
import { onView } from "./views.js";

const EVERY_MS = 2000;
let timer = null;
let previous = null; // {at, messages, deliveries} of the last reading, for the rates

/** Prometheus text exposition as [{name, labels, value}]. */
export function parseMetrics(text) {
  const samples = [];
  for (const line of text.split("\n")) {
    if (line.startsWith("#")) continue;
    const match = /^([A-Za-z_:][\w:]*)(\{.*\})?\s+(\S+)/.exec(line);
    if (!match) continue;
    const labels = {};
    for (const [, name, value] of (match[2] ?? "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[name] = value;
    samples.push({ name: match[1], labels, value: Number(match[3]) });
  }
  return samples;
}

function total(samples, name, keep = () => true) {
  return samples.filter((s) => s.name === name && keep(s.labels)).reduce((sum, s) => sum + s.value, 0);
}

function show(id, value) {
  document.querySelector(id).textContent = value;
}

async function read() {
  let text;
  try {
    text = await (await fetch(`${HTTP_BASE}/metrics`)).text();
  } catch (error) {
    log("error", `GET /metrics: ${error.message}`);
    return;
  }
  const samples = parseMetrics(text);
  const reading = {
    at: performance.now(),
    messages: total(samples, "chat_frames_in_total", (l) => /Message$/.test(l.event ?? "")),
    deliveries: total(samples, "chat_frames_out_total", (l) => l.kind === "broadcast"),
  };
  show("#op-sockets", String(total(samples, "chat_open_sockets")));
  show("#op-rooms", String(total(samples, "chat_rooms")));
  show("#op-errors", String(total(samples, "chat_errors_total")));
  if (previous) {
    const seconds = (reading.at - previous.at) / 1000;
    show("#op-messages", ((reading.messages - previous.messages) / seconds).toFixed(1));
    show("#op-deliveries", ((reading.deliveries - previous.deliveries) / seconds).toFixed(1));
  }
  previous = reading;
}

export function setUpOperator() {
  document.querySelector("#metrics-link").href = `${HTTP_BASE}/metrics`;
  onView(
    "operator",
    () => {
      previous = null;
      read();
      timer = setInterval(read, EVERY_MS);
    },
    () => clearInterval(timer),
  );
}
