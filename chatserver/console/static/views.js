// The Player, Operator and Moderator views: one shown at a time, each told when it opens and closes.

const hooks = new Map(); // view name -> {open, close}

export function onView(name, open, close = () => {}) {
  hooks.set(name, { open, close });
}

let current = "player";

export function showView(name) {
  if (name !== current) hooks.get(current)?.close();
  current = name;
  for (const tab of document.querySelectorAll(".tab")) tab.setAttribute("aria-pressed", String(tab.dataset.view === name));
  for (const view of document.querySelectorAll(".view")) view.hidden = view.id !== `view-${name}`;
  hooks.get(name)?.open();
}

export function offerModeratorView(offer) {
  document.querySelector("#tab-moderator").hidden = !offer;
  if (!offer && current === "moderator") showView("player");
}
