// Which Backend the app uses. The web build talks to `personas up`; the desktop shell (issue 7)
// sets its Tauri implementation here before the app renders.
import type { Backend } from "./types";

let current: Backend | null = null;

export function setBackend(b: Backend | null) {
  current = b;
}

export function backend(): Backend {
  if (!current) throw new Error("no backend: the app is not connected");
  return current;
}

export * from "./types";
