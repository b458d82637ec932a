// App-wide state: connection to the runtime, theme, and the fan-out of streamed events to the
// stores that care. A `resync` (events were missed) bumps `epochVersion`, which every view uses
// as a signal to re-read what it shows.
import { create } from "zustand";
import type { ApiEvent, Execution, OutputLine, ReviewRow, StreamFrame } from "../generated";
import type { ConnectionStatus } from "../backend";
import { useBus } from "./bus";
import { useExecutions } from "./executions";
import { useHealing } from "./healing";
import { useInbox } from "./inbox";
import { useTriggers } from "./triggers";
import { useReviews } from "./reviews";
import { unhandled } from "../lib/exhaustive";

export type Theme = "light" | "dark" | "system";

type AppState = {
  status: ConnectionStatus;
  theme: Theme;
  /** Bumped when the stream says state must be re-read. */
  epochVersion: number;
  /** Events received so far (for the live indicator and the stream benchmark). */
  eventsReceived: number;
  setStatus(s: ConnectionStatus): void;
  setTheme(t: Theme): void;
  applyFrames(frames: StreamFrame[]): void;
};

const THEME_KEY = "personas.theme";

function storedTheme(): Theme {
  const t = typeof localStorage !== "undefined" ? localStorage.getItem(THEME_KEY) : null;
  return t === "light" || t === "dark" ? t : "system";
}

export function applyTheme(t: Theme) {
  if (typeof document === "undefined") return;
  const dark = t === "dark" || (t === "system" && window.matchMedia?.("(prefers-color-scheme: dark)").matches);
  document.documentElement.classList.toggle("dark", !!dark);
}

export const useApp = create<AppState>((set, get) => ({
  status: "connecting",
  theme: storedTheme(),
  epochVersion: 0,
  eventsReceived: 0,
  setStatus: (status) => set({ status }),
  setTheme: (theme) => {
    localStorage.setItem(THEME_KEY, theme);
    applyTheme(theme);
    set({ theme });
  },
  applyFrames: (frames) => {
    const events: ApiEvent[] = [];
    let resync = false;
    for (const f of frames) {
      switch (f.kind) {
        case "event":
          events.push(f.event);
          break;
        case "resync":
          resync = true;
          break;
        case "hello":
          // The backend tracks the epoch and sequence; nothing for the stores.
          break;
        default:
          unhandled(f, "stream frame");
      }
    }
    if (events.length) dispatch(events);
    set({
      eventsReceived: get().eventsReceived + events.length,
      epochVersion: resync ? get().epochVersion + 1 : get().epochVersion,
    });
  },
}));

/** Routes a batch of events to the stores, one update per store per batch. */
export function dispatch(events: ApiEvent[]) {
  const output: OutputLine[] = [];
  const executions: Execution[] = [];
  const bus: ApiEvent[] = [];
  let fired = false;
  const reviews: ReviewRow[] = [];
  for (const e of events) {
    switch (e.type) {
      case "output":
        output.push(e.line);
        break;
      case "execution":
        executions.push(e.execution);
        break;
      case "message":
        useInbox.getState().arrived(e.message);
        break;
      case "review":
      case "review_decided":
        reviews.push(e.review);
        break;
      case "healing":
        useHealing.getState().reported(e.report);
        break;
      case "notification":
      case "delivery":
      case "memory":
      case "protocol":
        break;
      case "bus_event":
      case "bus_delivered":
      case "bus_skipped":
      case "bus_failed":
      case "bus_dead_lettered":
        bus.push(e);
        break;
      case "trigger_fired":
        fired = true;
        break;
      default:
        unhandled(e, "event");
    }
  }
  if (output.length) useExecutions.getState().appendOutput(output);
  if (executions.length) useExecutions.getState().upsert(executions);
  if (bus.length) useBus.getState().applyEvents(bus);
  if (fired) useTriggers.getState().fired();
  if (reviews.length) useReviews.getState().upsert(reviews);
}
