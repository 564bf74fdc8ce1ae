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
    line.classList.add("mute");
    line.dataset.playerId = entry.player_id;
    line.append(actionButton("Unmute", `Unmute ${entry.player_id}`, () => unmute(entry.player_id)));
    list.append(line);
  }
  if (!answer.body.mutes.length) list.append(item("No one is muted."));
}

function actionButton(label, name, onClick) {
  const button = document.createElement("button");
  button.type = "button";
  button.textContent = label;
  button.setAttribute("aria-label", name);
  button.addEventListener("click", onClick);
  return button;
}

/** Each report: when, which room, the message as it was reported, who wrote it, who reported it and why. */
async function loadReports() {
  const answer = await api("GET", "/chat/moderation/reports?limit=50");
  if (!answer.ok) return;
  const list = $("#reports");
  list.replaceChildren();
  for (const report of answer.body.reports) {
    const room = report.chat === "clan" ? `clan ${report.clan_id}` : "global";
    const why = report.reason ? `: ${report.reason}` : "";
    const line = item(`${report.at} ${room} "${report.content}" by ${report.sender_id}, reported by ${report.reporter_id}${why} `);
    line.classList.add("report");
    line.dataset.messageId = report.message_id;
    line.append(
      actionButton("Delete message", `Delete the message reported by ${report.reporter_id}`, () => deleteAsModerator(report.message_id)),
      actionButton("Mute sender", `Mute ${report.sender_id}`, () => prepareMute(report.sender_id)),
    );
    list.append(line);
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
