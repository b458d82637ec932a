// The event bus as the app sees it: the latest events (newest first) with their status and the
// executions each caused, kept current by the stream (`bus_*` events) and topped up by reads
// (`list_events`, `get_event`). Streamed updates arrive in order and always win; a read that was
// in flight while the stream changed an event does not roll that event back.
import { create } from "zustand";
import { backend } from "../backend";
import type { ApiEvent, EventDeliveryRow, EventRow, EventStatus, EventView, ListEvents, SourceKind } from "../generated";

/** Lane titles of the live view, one per kind of source, in display order. Keyed by the
 * generated `SourceKind`, so a new kind of source fails `tsc` until it has a lane. */
const LANE_TITLES = {
  persona: "persona",
  webhook: "webhook",
  schedule: "schedule",
  user: "user",
  chain: "chain",
  watcher: "watcher",
  system: "system",
} as const satisfies Record<SourceKind, string>;
export const LANES = Object.keys(LANE_TITLES) as SourceKind[];

/** Statuses an event moves through, in order, with their labels (closed over `EventStatus`). */
export const EVENT_STATUS_LABELS = {
  pending: "pending",
  processing: "processing",
  delivered: "delivered",
  skipped: "skipped",
  failed: "failed",
  dead_letter: "dead letter",
} as const satisfies Record<EventStatus, string>;
export const EVENT_STATUSES = Object.keys(EVENT_STATUS_LABELS) as EventStatus[];

/** Statuses from which `retry_event` puts an event back in the queue. */
const RETRYABLE: readonly EventStatus[] = ["dead_letter", "failed", "skipped"];

export type FeedEntry = {
  event: EventRow;
  /** Known once read (`list_events` / `get_event`); the stream carries only execution ids. */
  deliveries: EventDeliveryRow[] | null;
  executions: string[];
  /** Stream revision of the last streamed change (0: only read so far). */
  rev: number;
};

export type Feed = {
  byId: Record<string, FeedEntry>;
  /** Ids, newest first (event ids are time-ordered UUIDv7). */
  order: string[];
  /** Revision counter of streamed changes. */
  rev: number;
};

/** Most events kept in memory; older ones are re-read on demand. */
export const FEED_CAP = 500;

export const emptyFeed = (): Feed => ({ byId: {}, order: [], rev: 0 });

function insertOrdered(order: string[], id: string): string[] {
  if (order.length === 0 || id > order[0]) return [id, ...order];
  let lo = 0;
  let hi = order.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (order[mid] > id) lo = mid + 1;
    else hi = mid;
  }
  if (order[lo] === id) return order;
  return [...order.slice(0, lo), id, ...order.slice(lo)];
}

function capped(feed: Feed): Feed {
  if (feed.order.length <= FEED_CAP) return feed;
  const byId = { ...feed.byId };
  for (const id of feed.order.slice(FEED_CAP)) delete byId[id];
  return { ...feed, byId, order: feed.order.slice(0, FEED_CAP) };
}

function union(a: string[], b: string[]): string[] {
  return b.every((x) => a.includes(x)) ? a : [...a, ...b.filter((x) => !a.includes(x))];
}

/** Applies streamed events, in order. Returns the same object when nothing concerned the bus. */
export function applyStream(feed: Feed, events: ApiEvent[]): Feed {
  let next: Feed | null = null;
  for (const e of events) {
    if (e.type !== "bus_event" && e.type !== "bus_delivered" && e.type !== "bus_skipped" && e.type !== "bus_failed" && e.type !== "bus_dead_lettered") continue;
    const cur: Feed = next ?? { byId: { ...feed.byId }, order: feed.order, rev: feed.rev };
    const rev = cur.rev + 1;
    const old = cur.byId[e.event.id];
    const executions = e.type === "bus_delivered" ? union(old?.executions ?? [], e.executions) : (old?.executions ?? []);
    // A re-queued event starts over: its old error and deliveries still stand until read again.
    cur.byId[e.event.id] = { event: e.event, deliveries: old?.deliveries ?? null, executions, rev };
    if (!old) cur.order = insertOrdered(cur.order, e.event.id);
    cur.rev = rev;
    next = cur;
  }
  return next ? capped(next) : feed;
}

/** Merges events read at stream revision `since`: what the stream changed meanwhile is kept. */
export function mergeRead(feed: Feed, views: EventView[], since: number): Feed {
  if (views.length === 0) return feed;
  const byId = { ...feed.byId };
  let order = feed.order;
  for (const v of views) {
    const old = byId[v.event.id];
    if (old && old.rev > since) {
      // The stream is newer for status; the read still knows the deliveries.
      byId[v.event.id] = { ...old, deliveries: v.deliveries, executions: union(old.executions, v.executions) };
    } else {
      byId[v.event.id] = { event: v.event, deliveries: v.deliveries, executions: v.executions, rev: old?.rev ?? 0 };
    }
    if (!old) order = insertOrdered(order, v.event.id);
  }
  return capped({ ...feed, byId, order });
}

/** Takes in the row an operation answered with. The stream may have moved the event on before
 * the answer arrived, so a row never overwrites a later state: after `emit` it is only added
 * when the stream has not shown the event yet; after `retry` it replaces the event only while
 * that still shows the state the retry started from. */
export function mergeAnswer(feed: Feed, row: EventRow, op: "emit" | "retry"): Feed {
  const old = feed.byId[row.id];
  if (old && (op === "emit" || !RETRYABLE.includes(old.event.status))) return feed;
  const rev = feed.rev + 1;
  const entry: FeedEntry = { event: row, deliveries: old?.deliveries ?? null, executions: old?.executions ?? [], rev };
  return capped({ byId: { ...feed.byId, [row.id]: entry }, order: old ? feed.order : insertOrdered(feed.order, row.id), rev });
}

export type FeedFilter = { type?: string; status?: EventStatus; source?: SourceKind };

/** The entries a filter keeps, newest first. `type` matches exactly, or as a prefix before `*`. */
export function filterFeed(feed: Feed, f: FeedFilter): FeedEntry[] {
  const t = f.type?.trim().toLowerCase() ?? "";
  const norm = (s: string) => s.toLowerCase().replace(/[-_]/g, ".");
  const want = norm(t.endsWith("*") ? t.slice(0, -1) : t);
  const prefix = t.endsWith("*");
  return feed.order
    .map((id) => feed.byId[id])
    .filter((e) => {
      if (f.status && e.event.status !== f.status) return false;
      if (f.source && e.event.source_kind !== f.source) return false;
      if (want || prefix) {
        const ty = norm(e.event.event_type);
        if (prefix ? !ty.startsWith(want) : ty !== want) return false;
      }
      return true;
    });
}

type BusState = Feed & {
  loaded: boolean;
  error: string | null;
  /** Reads events (newest first) matching `filter` and merges them in. */
  load(filter?: ListEvents): Promise<void>;
  /** Reads one event with its deliveries. */
  refresh(id: string): Promise<void>;
  applyEvents(events: ApiEvent[]): void;
  emit(type: string, payload: unknown, target?: string): Promise<EventRow>;
  retry(id: string): Promise<EventRow>;
};

export const useBus = create<BusState>((set, get) => ({
  ...emptyFeed(),
  loaded: false,
  error: null,
  load: async (filter = {}) => {
    const since = get().rev;
    try {
      const r = await backend().call("list_events", { limit: 200, ...filter });
      set({ ...mergeRead(get(), r.events, since), loaded: true, error: null });
    } catch (e) {
      set({ loaded: true, error: (e as Error).message });
      throw e;
    }
  },
  refresh: async (id) => {
    const since = get().rev;
    const v = await backend().call("get_event", { id });
    set(mergeRead(get(), [v], since));
  },
  applyEvents: (events) => {
    const cur = get();
    const next = applyStream(cur, events);
    if (next !== cur) set({ byId: next.byId, order: next.order, rev: next.rev });
  },
  emit: async (type, payload, target) => {
    const row = await backend().call("emit_event", target ? { type, payload, target } : { type, payload });
    set(mergeAnswer(get(), row, "emit"));
    return row;
  },
  retry: async (id) => {
    const row = await backend().call("retry_event", { id });
    set(mergeAnswer(get(), row, "retry"));
    return row;
  },
}));
