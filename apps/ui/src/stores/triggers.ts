// Triggers of every persona, as the editor's Triggers section and the team canvas show them.
// One list for the whole runtime (it is small); each change answers with the trigger, which
// replaces or removes its row, so the views never re-read after their own change.
// A webhook's secret is never part of the list: it is held apart (`shown`) only while the
// person who created, revealed or rotated it looks at it, and dropped when they hide it.
import { create } from "zustand";
import { backend } from "../backend";
import type { AddTrigger, ChainOn, TriggerView, WebhookSecretShown } from "../generated";

/** A canvas edge: persona `source` → persona `target`, made by one trigger of `target`. */
export type TriggerEdge = {
  id: string;
  source: string;
  target: string;
  kind: "event" | "chain";
  label: string;
  enabled: boolean;
};

/** The event type an edge drawn from persona `name` subscribes to by default. */
export function defaultEventType(name: string): string {
  const slug = name
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "_")
    .replace(/^_+|_+$/g, "");
  return `${slug || "persona"}.done`;
}

/** The edges the canvas draws: chains (after A, run B) and event subscriptions limited to one
 * persona's events (B listens to A). Subscriptions to everyone have no single source to draw. */
export function edgesOf(triggers: TriggerView[]): TriggerEdge[] {
  const edges: TriggerEdge[] = [];
  for (const v of triggers) {
    const t = v.trigger;
    const c = t.config;
    if (c.kind === "chain") {
      edges.push({ id: t.id, source: c.after_persona_id, target: t.persona_id, kind: "chain", label: `after ${c.on}`, enabled: t.enabled });
    } else if (c.kind === "event" && c.source?.kind === "persona" && c.source.id) {
      edges.push({ id: t.id, source: c.source.id, target: t.persona_id, kind: "event", label: c.pattern, enabled: t.enabled });
    }
  }
  return edges;
}

/** The request that makes an edge from persona `source` (name or id) to `target`. */
export function edgeRequest(source: string, target: string, choice: { kind: "event"; event: string } | { kind: "chain"; on: ChainOn }): AddTrigger {
  return choice.kind === "event"
    ? { persona: target, trigger: { kind: "event", event: choice.event.trim(), source } }
    : { persona: target, trigger: { kind: "chain", chain: source, on: choice.on } };
}

/** Replaces the row with the same id, or adds it at the end (the list is oldest first). */
export function upsertTrigger(list: TriggerView[], v: TriggerView): TriggerView[] {
  const i = list.findIndex((x) => x.trigger.id === v.trigger.id);
  if (i < 0) return [...list, v];
  const next = list.slice();
  next[i] = v;
  return next;
}

/** A row without the one-time secret an `add_trigger` answer carries. */
export function withoutSecret(v: TriggerView): TriggerView {
  const { secret: _, ...rest } = v;
  return rest;
}

/** A webhook secret on screen: which trigger, the secret, and why it is shown. */
export type ShownSecret = { triggerId: string; secret: string; why: "created" | "revealed" | "rotated" };

type TriggersState = {
  list: TriggerView[];
  /** The one webhook secret on screen, if any. */
  shown: ShownSecret | null;
  loaded: boolean;
  error: string | null;
  load(): Promise<void>;
  /** A trigger fired (stream `trigger_fired`): its count and next fire times moved. Re-read
   * once the list is shown, and at most one read at a time. */
  fired(): void;
  add(req: AddTrigger): Promise<TriggerView>;
  remove(id: string): Promise<void>;
  setEnabled(id: string, enabled: boolean): Promise<void>;
  /** Shows a webhook's secret again (`reveal_webhook_secret`). */
  reveal(id: string): Promise<WebhookSecretShown>;
  /** Gives a webhook a new secret and shows it; the old one stops working. */
  rotate(id: string): Promise<WebhookSecretShown>;
  /** Takes the secret off the screen. */
  hideSecret(): void;
};

let reading = false;

export const useTriggers = create<TriggersState>((set, get) => ({
  list: [],
  shown: null,
  loaded: false,
  error: null,
  load: async () => {
    try {
      const r = await backend().call("list_triggers", {});
      set({ list: r.triggers, loaded: true, error: null });
    } catch (e) {
      set({ loaded: true, error: (e as Error).message });
    }
  },
  fired: () => {
    if (!get().loaded || reading) return;
    reading = true;
    void get()
      .load()
      .finally(() => (reading = false));
  },
  add: async (req) => {
    const v = await backend().call("add_trigger", req);
    const row = withoutSecret(v);
    set({
      list: upsertTrigger(get().list, row),
      shown: v.secret ? { triggerId: v.trigger.id, secret: v.secret, why: "created" } : get().shown,
    });
    return row;
  },
  reveal: async (id) => {
    const r = await backend().call("reveal_webhook_secret", { id });
    set({ shown: { triggerId: r.trigger_id, secret: r.secret, why: "revealed" } });
    return r;
  },
  rotate: async (id) => {
    const r = await backend().call("rotate_webhook_secret", { id });
    set({ shown: { triggerId: r.trigger_id, secret: r.secret, why: "rotated" } });
    return r;
  },
  hideSecret: () => set({ shown: null }),
  remove: async (id) => {
    const v = await backend().call("remove_trigger", { id });
    const shown = get().shown;
    set({
      list: get().list.filter((x) => x.trigger.id !== v.trigger.id),
      shown: shown?.triggerId === v.trigger.id ? null : shown,
    });
  },
  setEnabled: async (id, enabled) => {
    const v = await backend().call("set_trigger_enabled", { id, enabled });
    set({ list: upsertTrigger(get().list, v) });
  },
}));
