// The log panel and the status line: what happened on the socket and over HTTP, in the page's words.

const LOG_LIMIT = 200;

export function log(kind, text) {
  const list = document.querySelector("#log");
  const item = document.createElement("li");
  item.dataset.kind = kind;
  item.textContent = `${new Date().toLocaleTimeString()} ${text}`;
  list.append(item);
  while (list.children.length > LOG_LIMIT) list.firstElementChild.remove();
  list.scrollTop = list.scrollHeight;
}

export function setStatus(text) {
  document.querySelector("#status").textContent = text;
}

/** An error frame's or HTTP error body's objects as "REASON field message; ...". */
export function describeErrors(body) {
  const errors = body && (body.error ?? body.errors);
  if (typeof errors === "string") return errors;
  if (!Array.isArray(errors)) return JSON.stringify(body);
  return errors.map((e) => [e.reason, e.field, e.message].filter(Boolean).join(" ")).join("; ");
}
