// Who the page is signed in as, and the HTTP API called with that token.
import { describeErrors, log } from "./log.js";

const BASE = location.pathname.replace(/\/console\/?$/, "");
export const HTTP_BASE = location.origin + BASE;
export const WS_BASE = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + BASE;

export const session = { token: "", claims: {} };

export function signIn(token) {
  session.token = token;
  session.claims = claimsOf(token);
}

/** The token's payload, read without checking it: the server checks; the page only adapts what it shows. */
export function claimsOf(token) {
  try {
    const payload = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const bytes = Uint8Array.from(atob(payload), (c) => c.charCodeAt(0));
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    return {};
  }
}

export function isModerator() {
  return Array.isArray(session.claims.roles) && session.claims.roles.includes("moderator");
}

export function isMine(message) {
  return Boolean(message.sender) && message.sender._id === session.claims.player_id;
}

/** One HTTP call; a failure is logged with its reasons and answered as `{ok: false, status, body}`. */
export async function api(method, path, body, { withToken = true } = {}) {
  const headers = {};
  if (withToken) headers.Authorization = `Bearer ${session.token}`;
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
