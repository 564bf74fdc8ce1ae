// The global and the clan room: messages held by id, history loads, and each message drawn with its actions.
import { api, isMine, isModerator, session } from "./session.js";

const REACTIONS = ["👍", "❤️", "😂", "🔥"];
const ROOM_LIMIT = 200;
const HISTORY_PAGE = 50;

const rooms = { global: new Map(), clan: new Map() };
let newest = null; // the newest updatedAt processed: a resume's since
let hasClan = false;
// What the buttons do, given by main.js: {send(frame, what), deleteAsModerator(id), prepareMute(playerId), log(kind, text)}.
let actions = null;

export function setRoomActions(given) {
  actions = given;
}

export function newestUpdate() {
  return newest;
}

export function clearRooms() {
  newest = null;
  for (const chat of Object.keys(rooms)) {
    rooms[chat].clear();
    listOf(chat).replaceChildren();
  }
}

export function clearRoom(chat) {
  rooms[chat].clear();
  listOf(chat).replaceChildren();
}

/** A broadcast's message: kept if newer than the one held (a resume's overlap repeats some), dropped if deleted. */
export function apply(chat, event, message) {
  const room = rooms[chat];
  if (!room) return;
  if (message.updatedAt && (!newest || message.updatedAt > newest)) newest = message.updatedAt;
  if (event === "deletedMessage") {
    room.delete(message._id);
    itemOf(chat, message._id)?.remove();
    return;
  }
  const held = room.get(message._id);
  if (held && held.updatedAt >= message.updatedAt) return;
  room.set(message._id, message);
  while (room.size > ROOM_LIMIT) {
    const oldest = [...room.values()].reduce((a, b) => (a.createdAt <= b.createdAt ? a : b));
    room.delete(oldest._id);
    itemOf(chat, oldest._id)?.remove();
  }
  draw(chat, message);
}

/** A token with profile claims but no clan_id has no clan; one with none (a game token) may, in the game database. */
function mayHaveClan() {
  return Boolean(session.claims.clan_id) || session.claims.name === undefined;
}

export async function loadHistory(chat) {
  if (chat === "clan" && !mayHaveClan()) {
    hasClan = false;
    document.querySelector("#room-clan-title").textContent = "Clan (none)";
    return;
  }
  const answer = await api("GET", `/chat/history?type=${chat}&limit=${HISTORY_PAGE}`);
  if (chat === "clan") {
    hasClan = answer.ok;
    const clan = session.claims.clan_id ? ` ${session.claims.clan_id}` : "";
    document.querySelector("#room-clan-title").textContent = answer.status === 403 ? "Clan (none)" : `Clan${clan}`;
  }
  if (!answer.ok) return;
  for (const message of answer.body.data.ChatMessage) apply(chat, "newMessage", message);
  enableSending(chat, true);
}

/** The send forms work only while the socket is ready, and the clan's only for a player with a clan. */
export function enableSending(chat, enabled) {
  const usable = enabled && (chat !== "clan" || hasClan);
  for (const control of document.querySelectorAll(`.send-form[data-chat="${chat}"] :is(input, button)`)) {
    control.disabled = !usable;
  }
}

function listOf(chat) {
  return document.querySelector(`#room-${chat} .messages`);
}

function itemOf(chat, id) {
  return listOf(chat).querySelector(`.message[data-id="${CSS.escape(id)}"]`);
}

/** Put the message's item in place, newest first under the send form; a keyboard user's focus stays on the button pressed. */
function draw(chat, message) {
  const list = listOf(chat);
  const existing = itemOf(chat, message._id);
  const focused = existing && existing.contains(document.activeElement) ? document.activeElement.dataset.action : null;
  const item = messageItem(chat, message);
  if (existing) {
    existing.replaceWith(item);
  } else {
    const older = [...list.children].find((other) => other.dataset.created < message.createdAt);
    list.insertBefore(item, older ?? null);
    if (older === list.firstElementChild) list.scrollTop = 0;
  }
  if (focused) item.querySelector(`[data-action="${CSS.escape(focused)}"]`)?.focus();
}

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function button(label, action, onClick, attributes = {}) {
  const node = element("button", "", label);
  node.type = "button";
  node.dataset.action = action;
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  node.addEventListener("click", onClick);
  return node;
}

function messageItem(chat, message) {
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
  item.append(actionsOf(chat, message, sender, item));
  return item;
}

function actionsOf(chat, message, sender, item) {
  const bar = element("div", "actions");
  const reactions = message.reactions || [];
  const own = reactions.find((r) => r.sender_id === session.claims.player_id);
  const counts = new Map();
  for (const reaction of reactions) counts.set(reaction.emoji, (counts.get(reaction.emoji) ?? 0) + 1);
  for (const emoji of [...REACTIONS, ...[...counts.keys()].filter((e) => !REACTIONS.includes(e))]) {
    const count = counts.get(emoji) ?? 0;
    const pressed = Boolean(own) && own.emoji === emoji;
    const react = button(count ? `${emoji} ${count}` : emoji, `react-${emoji}`, () => {
      const data = { message_id: message._id, emoji: pressed ? "" : emoji };
      actions.send({ event: `${chat}MessageReaction`, data }, pressed ? "removing a reaction" : `reaction ${emoji}`);
    }, { "aria-pressed": String(pressed), "aria-label": `React ${emoji}${count ? `, ${count} so far` : ""}` });
    react.classList.add("react");
    bar.append(react);
  }
  if (isMine(message)) {
    bar.append(button("Edit", "edit", () => startEdit(chat, message, item)));
    bar.append(button("Delete", "delete", () => {
      actions.send({ event: `${chat}MessageDelete`, data: { message_id: message._id } }, "delete");
    }));
  } else {
    bar.append(button("Report", "report", () => {
      actions.send({ event: `${chat}MessageReport`, data: { message_id: message._id } }, "report");
      actions.log("info", `reported a message of ${sender}`);
    }));
  }
  if (isModerator()) {
    bar.append(button("Delete as moderator", "moderator-delete", () => actions.deleteAsModerator(message._id)));
    if (message.sender && !isMine(message)) {
      bar.append(button("Mute…", "mute", () => actions.prepareMute(message.sender._id)));
    }
  }
  return bar;
}

function startEdit(chat, message, item) {
  const form = element("form", "edit-form");
  const input = element("input");
  input.id = `edit-${message._id}`;
  input.value = message.content ?? "";
  input.maxLength = 256;
  input.required = true;
  const label = element("label", "", "New text");
  label.htmlFor = input.id;
  const save = element("button", "", "Save");
  save.type = "submit";
  const current = () => rooms[chat].get(message._id) ?? message;
  form.append(label, input, save, button("Cancel", "cancel-edit", () => draw(chat, current())));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    actions.send({ event: `${chat}MessageEdit`, data: { message_id: message._id, content: input.value } }, "edit");
    draw(chat, current());
    itemOf(chat, message._id)?.querySelector('[data-action="edit"]')?.focus();
  });
  item.querySelector(".content").replaceWith(form);
  input.focus();
}
