import { beforeEach, describe, expect, it, vi } from "vitest";
import { setBackend, type Backend } from "../backend";
import type { ApiEvent, EventRow, EventView, OperationName, TriggerView } from "../generated";
import { parsePayload } from "../pages/EventBus";
import { dispatch } from "./app";
import { FEED_CAP, applyStream, emptyFeed, filterFeed, mergeAnswer, mergeRead, useBus } from "./bus";
import { defaultEventType, edgeRequest, edgesOf, upsertTrigger, useTriggers } from "./triggers";

// UUIDv7-like ids sort by time: a larger number is a newer event.
const id = (n: number) => `0190${String(n).padStart(4, "0")}-0000-7000-8000-000000000000`;

function ev(n: number, over: Partial<EventRow> = {}): EventRow {
  return {
    id: id(n),
    event_type: "ticket.created",
    source_kind: "user",
    source_id: null,
    source_execution_id: null,
    target_persona_id: null,
    payload: { n },
    status: "pending",
    attempts: 0,
    error: null,
    created_at: new Date(1_700_000_000_000 + n * 1000).toISOString(),
    trigger_id: null,
    depth: 0,
    next_attempt_at: null,
    processed_at: null,
    ...over,
  };
}

const view = (e: EventRow, executions: string[] = []): EventView => ({
  event: e,
  deliveries: executions.map((x) => ({ event_id: e.id, target: "subscription", persona_id: "p", persona_name: "B", execution_id: x, status: "delivered", error: null, attempt: 1, created_at: e.created_at })),
  executions,
});

describe("bus feed", () => {
  it("orders streamed events newest first whatever order they arrive in, and follows each one's status", () => {
    let f = applyStream(emptyFeed(), [{ type: "bus_event", event: ev(2) }, { type: "bus_event", event: ev(1) }, { type: "bus_event", event: ev(3) }]);
    expect(f.order).toEqual([id(3), id(2), id(1)]);
    f = applyStream(f, [{ type: "bus_delivered", event: ev(2, { status: "delivered", attempts: 1 }), executions: ["x1"] }]);
    expect(f.byId[id(2)].event.status).toBe("delivered");
    expect(f.byId[id(2)].executions).toEqual(["x1"]);
    expect(f.order).toEqual([id(3), id(2), id(1)]);
    f = applyStream(f, [{ type: "bus_dead_lettered", event: ev(1, { status: "dead_letter", error: "B is disabled" }) }]);
    expect(f.byId[id(1)].event.error).toBe("B is disabled");
  });

  it("ignores events that are not the bus's and returns the same feed", () => {
    const f = emptyFeed();
    const other: ApiEvent = { type: "message", message: {} as never };
    expect(applyStream(f, [other])).toBe(f);
  });

  it("keeps at most FEED_CAP events, dropping the oldest", () => {
    const events: ApiEvent[] = Array.from({ length: FEED_CAP + 20 }, (_, i) => ({ type: "bus_event", event: ev(i) }));
    const f = applyStream(emptyFeed(), events);
    expect(f.order.length).toBe(FEED_CAP);
    expect(f.order[0]).toBe(id(FEED_CAP + 19));
    expect(f.byId[id(0)]).toBeUndefined();
    expect(Object.keys(f.byId).length).toBe(FEED_CAP);
  });

  it("a read that started before a streamed change does not roll the change back", () => {
    let f = applyStream(emptyFeed(), [{ type: "bus_event", event: ev(1) }]);
    const since = f.rev;
    // The stream delivers the event while list_events is in flight with the old status.
    f = applyStream(f, [{ type: "bus_delivered", event: ev(1, { status: "delivered" }), executions: ["x1"] }]);
    f = mergeRead(f, [view(ev(1, { status: "pending" }), [])], since);
    expect(f.byId[id(1)].event.status).toBe("delivered");
    expect(f.byId[id(1)].executions).toEqual(["x1"]);
    expect(f.byId[id(1)].deliveries).toEqual([]);
    // A read started after the change is taken as it is.
    f = mergeRead(f, [view(ev(1, { status: "delivered", attempts: 1 }), ["x1"])], f.rev);
    expect(f.byId[id(1)].event.attempts).toBe(1);
    expect(f.byId[id(1)].deliveries?.[0].execution_id).toBe("x1");
  });

  it("an operation's answer never overwrites a later streamed state", () => {
    let f = applyStream(emptyFeed(), [{ type: "bus_delivered", event: ev(1, { status: "delivered" }), executions: [] }]);
    f = mergeAnswer(f, ev(1, { status: "pending" }), "emit");
    expect(f.byId[id(1)].event.status).toBe("delivered");
    // Emitting an event the stream has not shown yet adds it.
    f = mergeAnswer(f, ev(2), "emit");
    expect(f.order[0]).toBe(id(2));
    // Retry: replaces a dead letter with the re-queued row, but not if the stream moved on.
    f = applyStream(f, [{ type: "bus_dead_lettered", event: ev(3, { status: "dead_letter" }) }]);
    f = mergeAnswer(f, ev(3, { status: "pending" }), "retry");
    expect(f.byId[id(3)].event.status).toBe("pending");
    f = applyStream(f, [{ type: "bus_delivered", event: ev(3, { status: "delivered" }), executions: ["x"] }]);
    f = mergeAnswer(f, ev(3, { status: "pending" }), "retry");
    expect(f.byId[id(3)].event.status).toBe("delivered");
  });

  it("filters by status, source and type (exact or prefix*)", () => {
    const f = applyStream(emptyFeed(), [
      { type: "bus_event", event: ev(1, { event_type: "ticket.created" }) },
      { type: "bus_event", event: ev(2, { event_type: "ticket.closed", source_kind: "webhook" }) },
      { type: "bus_event", event: ev(3, { event_type: "deploy.done", status: "dead_letter" }) },
    ]);
    const ids = (x: ReturnType<typeof filterFeed>) => x.map((e) => e.event.id);
    expect(ids(filterFeed(f, {}))).toEqual([id(3), id(2), id(1)]);
    expect(ids(filterFeed(f, { type: "ticket.*" }))).toEqual([id(2), id(1)]);
    expect(ids(filterFeed(f, { type: "ticket.created" }))).toEqual([id(1)]);
    expect(ids(filterFeed(f, { source: "webhook" }))).toEqual([id(2)]);
    expect(ids(filterFeed(f, { status: "dead_letter" }))).toEqual([id(3)]);
    expect(ids(filterFeed(f, { type: "ticket.*", source: "user" }))).toEqual([id(1)]);
  });
});

function fakeBackend(calls: { op: string; req: Record<string, unknown> }[], answers: Partial<Record<OperationName, (req: Record<string, unknown>) => unknown>>): Backend {
  return {
    kind: "web",
    subscribe: () => () => {},
    call: (async (op: OperationName, req: Record<string, unknown>) => {
      calls.push({ op, req });
      const a = answers[op];
      if (!a) throw new Error(`unexpected ${op}`);
      return a(req);
    }) as Backend["call"],
  };
}

describe("bus store", () => {
  beforeEach(() => useBus.setState({ ...emptyFeed(), loaded: false, error: null }));

  it("loads, then follows the stream the app dispatches to it", async () => {
    const calls: { op: string; req: Record<string, unknown> }[] = [];
    setBackend(fakeBackend(calls, { list_events: () => ({ events: [view(ev(1, { status: "dead_letter" }))] }) }));
    await useBus.getState().load({ status: "dead_letter" });
    expect(calls[0]).toEqual({ op: "list_events", req: { limit: 200, status: "dead_letter" } });
    expect(useBus.getState().loaded).toBe(true);
    dispatch([{ type: "bus_event", event: ev(2) }]);
    expect(useBus.getState().order).toEqual([id(2), id(1)]);
  });

  it("emits with the payload and target given, and retries a dead letter", async () => {
    const calls: { op: string; req: Record<string, unknown> }[] = [];
    setBackend(
      fakeBackend(calls, {
        emit_event: (r) => ev(5, { event_type: r.type as string, payload: r.payload as never }),
        retry_event: () => ev(1, { status: "pending", attempts: 0 }),
      }),
    );
    useBus.setState(applyStream(emptyFeed(), [{ type: "bus_dead_lettered", event: ev(1, { status: "dead_letter" }) }]));
    const row = await useBus.getState().emit("deploy.done", { ok: true });
    expect(calls[0]).toEqual({ op: "emit_event", req: { type: "deploy.done", payload: { ok: true } } });
    expect(useBus.getState().byId[row.id].event.event_type).toBe("deploy.done");
    await useBus.getState().emit("deploy.done", {}, "persona-b");
    expect(calls[1].req.target).toBe("persona-b");
    await useBus.getState().retry(id(1));
    expect(calls[2]).toEqual({ op: "retry_event", req: { id: id(1) } });
    expect(useBus.getState().byId[id(1)].event.status).toBe("pending");
  });

  it("records a failed load as an error the page can show", async () => {
    setBackend(fakeBackend([], {}));
    await expect(useBus.getState().load()).rejects.toThrow("unexpected list_events");
    expect(useBus.getState().error).toMatch(/list_events/);
  });
});

describe("emit form payload", () => {
  it("takes empty as {} and names bad JSON", () => {
    expect(parsePayload("  ")).toEqual({ ok: true, value: {} });
    expect(parsePayload('{"a": [1]}')).toEqual({ ok: true, value: { a: [1] } });
    const bad = parsePayload("{oops");
    expect(bad.ok).toBe(false);
    expect(!bad.ok && bad.error).toMatch(/not valid JSON/);
  });
});

function trig(n: number, persona: string, config: TriggerView["trigger"]["config"], enabled = true): TriggerView {
  return {
    trigger: {
      id: `t${n}`,
      persona_id: persona,
      persona_name: persona,
      kind: config.kind,
      config,
      enabled,
      next_fire_at: null,
      last_fired_at: null,
      fire_count: 0,
      last_error: null,
      last_error_at: null,
      created_at: "",
    },
    summary: "",
    next_fires: [],
    next_fires_local: [],
    webhook: null,
  };
}

describe("canvas edges from triggers", () => {
  it("draws chains and persona-sourced subscriptions, not schedules or open subscriptions", () => {
    const edges = edgesOf([
      trig(1, "B", { kind: "chain", after_persona_id: "A", on: "completed" }),
      trig(2, "C", { kind: "event", pattern: "a.done", source: { kind: "persona", id: "A" } }, false),
      trig(3, "C", { kind: "event", pattern: "ticket.*" }),
      trig(4, "C", { kind: "event", pattern: "x", source: { kind: "webhook" } }),
      trig(5, "C", { kind: "cron", expr: "* * * * *", tz: "UTC", missed: "skip" }),
    ]);
    expect(edges).toEqual([
      { id: "t1", source: "A", target: "B", kind: "chain", label: "after completed", enabled: true },
      { id: "t2", source: "A", target: "C", kind: "event", label: "a.done", enabled: false },
    ]);
  });

  it("turns a drawn edge into the trigger it stands for", () => {
    expect(edgeRequest("A", "B", { kind: "event", event: " a.done " })).toEqual({ persona: "B", trigger: { kind: "event", event: "a.done", source: "A" } });
    expect(edgeRequest("A", "B", { kind: "chain", on: "failed" })).toEqual({ persona: "B", trigger: { kind: "chain", chain: "A", on: "failed" } });
    expect(defaultEventType("Docs checker")).toBe("docs_checker.done");
    expect(defaultEventType("!!!")).toBe("persona.done");
  });

  it("keeps the list current from each change's answer", async () => {
    const a = trig(1, "B", { kind: "webhook", github: false });
    expect(upsertTrigger([], a)).toEqual([a]);
    const off = trig(1, "B", { kind: "webhook", github: false }, false);
    expect(upsertTrigger([a], off)).toEqual([off]);
    const calls: { op: string; req: Record<string, unknown> }[] = [];
    setBackend(
      fakeBackend(calls, {
        list_triggers: () => ({ triggers: [a] }),
        add_trigger: () => trig(2, "C", { kind: "chain", after_persona_id: "B", on: "any" }),
        remove_trigger: () => a,
        set_trigger_enabled: () => off,
      }),
    );
    const s = useTriggers.getState();
    await s.load();
    await s.add(edgeRequest("B", "C", { kind: "chain", on: "any" }));
    expect(useTriggers.getState().list.map((t) => t.trigger.id)).toEqual(["t1", "t2"]);
    await s.setEnabled("t1", false);
    expect(useTriggers.getState().list[0].trigger.enabled).toBe(false);
    await s.remove("t1");
    expect(useTriggers.getState().list.map((t) => t.trigger.id)).toEqual(["t2"]);
    expect(calls.map((c) => c.op)).toEqual(["list_triggers", "add_trigger", "set_trigger_enabled", "remove_trigger"]);
  });

  it("re-reads the list when the stream says a trigger fired, once per burst, and only once shown", async () => {
    let release = () => {};
    const gate = new Promise<void>((r) => (release = r));
    const calls: { op: string; req: Record<string, unknown> }[] = [];
    setBackend(fakeBackend(calls, { list_triggers: async () => (await gate, { triggers: [] }) }));
    useTriggers.setState({ list: [], loaded: false, error: null });
    const fired: ApiEvent = { type: "trigger_fired", trigger_id: "t1", persona_id: "B", kind: "cron", event_id: "e" };
    dispatch([fired]);
    expect(calls.length).toBe(0);
    useTriggers.setState({ loaded: true });
    dispatch([fired, fired]);
    dispatch([fired]);
    expect(calls.map((c) => c.op)).toEqual(["list_triggers"]);
    release();
    // Once the read in flight has answered, the next fire reads again.
    await vi.waitFor(() => {
      dispatch([fired]);
      expect(calls.length).toBe(2);
    });
  });
});
