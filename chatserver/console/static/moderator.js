// The moderator's tools over the moderation API: delete any message, mute and unmute, recent reports.
import { log } from "./log.js";
import { api } from "./session.js";
import { onView, showView } from "./views.js";

const $ = (selector) => document.querySelector(selector);

export async function deleteAsModerator(id) {
  const answer = await api("DELETE", `/chat/moderation/messages/${encodeURIComponent(id)}`);
  if (answer.ok) log("info", `deleted message ${id} as moderator`);
}

/** From a message's "Mute…": the moderator view with the sender filled in, the focus on the minutes. */
export function prepareMute(playerId) {
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

async function unmute(playerId) {
  const answer = await api("DELETE", `/chat/moderation/mutes/${encodeURIComponent(playerId)}`);
  if (answer.ok) {
    log("info", `unmuted ${playerId}`);
    loadMutes();
  }
}

function item(text) {
  const node = document.createElement("li");
  node.textContent = text;
  return node;
}

async function loadMutes() {
  const answer = await api("GET", "/chat/moderation/mutes");
  if (!answer.ok) return;
  const list = $("#mutes");
  list.replaceChildren();
  for (const entry of answer.body.mutes) {
    const line = item(`${entry.player_id} until ${entry.until}${entry.reason ? `: ${entry.reason}` : ""} `);
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = "Unmute";
    button.setAttribute("aria-label", `Unmute ${entry.player_id}`);
    button.addEventListener("click", () => unmute(entry.player_id));
    line.append(button);
    list.append(line);
  }
  if (!answer.body.mutes.length) list.append(item("No one is muted."));
}

async function loadReports() {
  const answer = await api("GET", "/chat/moderation/reports?limit=50");
  if (!answer.ok) return;
  const list = $("#reports");
  list.replaceChildren();
  for (const report of answer.body.reports) {
    const parts = [report.at ?? report.createdAt, `message ${report.message_id}`, `by ${report.player_id ?? "?"}`];
    if (report.reason) parts.push(`: ${report.reason}`);
    list.append(item(parts.filter(Boolean).join(" ")));
  }
  if (!answer.body.reports.length) list.append(item("No reports."));
}

export function setUpModerator() {
  $("#mute-form").addEventListener("submit", mute);
  $("#mutes-refresh").addEventListener("click", loadMutes);
  $("#reports-refresh").addEventListener("click", loadReports);
  onView("moderator", () => {
    loadMutes();
    loadReports();
  });
}
