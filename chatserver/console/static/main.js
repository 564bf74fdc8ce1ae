// The console's wiring: forms and buttons to the session, the socket, the rooms and the views.
import { log, setStatus } from "./log.js";
import { deleteAsModerator, prepareMute, setUpModerator } from "./moderator.js";
import { setUpOperator } from "./operator.js";
import { clearRooms, setRoomActions } from "./rooms.js";
import { api, isModerator, session, signIn } from "./session.js";
import { isOpen, isWanted, onLinkChange, resumeNow, send, start, stop } from "./socket.js";
import { offerModeratorView, showView } from "./views.js";

const $ = (selector) => document.querySelector(selector);

async function signToken(event) {
  event.preventDefault();
  const body = {
    name: $("#mint-name").value.trim(),
    clan_id: $("#mint-clan").value.trim() || null,
    moderator: $("#mint-moderator").checked,
  };
  const answer = await api("POST", "/console/dev-token", body, { withToken: false });
  if (answer.ok) {
    $("#token").value = answer.body.token;
    log("info", `signed a development token for ${body.name} (player ${answer.body.player_id})`);
    $("#connect-button").focus();
  }
}

async function connect(event) {
  event.preventDefault();
  const token = $("#token").value.trim();
  if (!token) return;
  stop();
  signIn(token);
  clearRooms();
  offerModeratorView(isModerator());
  // A refused handshake reaches a page only as close code 1006; ask over HTTP first to show why.
  const probe = await api("GET", "/chat/history?type=global&limit=1");
  if (!probe.ok) {
    setStatus("Token refused");
    return;
  }
  start();
}

function sendMessage(event) {
  event.preventDefault();
  const form = event.currentTarget;
  const content = form.elements.content.value;
  const feeling = form.elements.feeling.value.trim();
  send({ event: `${form.dataset.chat}Message`, data: feeling ? { content, feeling } : { content } }, `${form.dataset.chat} message`);
  form.elements.content.value = "";
  form.elements.content.focus();
}

function updateButtons() {
  $("#disconnect-button").disabled = !isWanted() && !isOpen();
  $("#resume-button").disabled = !session.token;
}

document.addEventListener("DOMContentLoaded", () => {
  if (document.body.dataset.mint === "true") $("#mint-form").hidden = false;
  setRoomActions({ send, deleteAsModerator, prepareMute, log });
  onLinkChange(updateButtons);
  setUpOperator();
  setUpModerator();
  $("#mint-form").addEventListener("submit", signToken);
  $("#connect-form").addEventListener("submit", connect);
  $("#disconnect-button").addEventListener("click", stop);
  $("#resume-button").addEventListener("click", () => session.token && resumeNow());
  for (const form of document.querySelectorAll(".send-form")) form.addEventListener("submit", sendMessage);
  for (const tab of document.querySelectorAll(".tab")) tab.addEventListener("click", () => showView(tab.dataset.view));
});
