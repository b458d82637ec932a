import { beforeEach, describe, expect, it } from "vitest";
import { setBackend, type Backend } from "../backend";
import type { Execution, OperationName, OutputLine } from "../generated";
import { useApp } from "./app";
import { useExecutions } from "./executions";
import { useInbox } from "./inbox";

const out = (seq: number, id = "e1"): OutputLine => ({ execution_id: id, seq, kind: "engine", text: `n${seq}`, at: new Date().toISOString() });

// A backend that answers from memory: the stores' logic is what is under test here; the real
// HTTP path is covered by the server tests and the browser e2e.
function fakeBackend(stored: OutputLine[], calls: string[]): Backend {
  return {
    kind: "web",
    subscribe: () => () => {},
    call: (async (op: OperationName, req: Record<string, unknown>) => {
      calls.push(op);
      if (op === "get_execution") return { id: req.id, status: "running" } as unknown as Execution;
      if (op === "execution_output") {
        const lines = stored.filter((l) => l.seq > (req.after as number)).slice(0, req.limit as number);
        return { lines, last_seq: lines.at(-1)?.seq ?? req.after, more: false };
      }
      if (op === "list_messages") return { messages: [], unread: 3 };
      if (op === "mark_messages_read") return { updated: 1 };
      throw new Error(`unexpected ${op}`);
    }) as Backend["call"],
  };
}

describe("executions store", () => {
  beforeEach(() => useExecutions.setState({ byId: {}, watched: {} }));

  it("loads stored output, then applies live lines without duplicates", async () => {
    const calls: string[] = [];
    setBackend(fakeBackend([out(1), out(2), out(3)], calls));
    await useExecutions.getState().watch("e1");
    useExecutions.getState().appendOutput([out(3), out(4)]);
    const w = useExecutions.getState().watched.e1;
    expect(w.model.lineCount).toBe(4);
    expect(w.loading).toBe(false);
  });

  it("fills a gap from the store instead of dropping lines", async () => {
    const stored = [out(1), out(2), out(3), out(4), out(5)];
    const calls: string[] = [];
    setBackend(fakeBackend(stored.slice(0, 1), calls));
    await useExecutions.getState().watch("e1");
    setBackend(fakeBackend(stored, calls));
    useExecutions.getState().appendOutput([out(5)]);
    await new Promise((r) => setTimeout(r, 0));
    await new Promise((r) => setTimeout(r, 0));
    expect(useExecutions.getState().watched.e1.model.lineCount).toBe(5);
    expect(calls.filter((c) => c === "execution_output").length).toBeGreaterThanOrEqual(2);
  });

  it("ignores output of executions nobody watches", () => {
    useExecutions.getState().appendOutput([out(1, "other")]);
    expect(useExecutions.getState().watched.other).toBeUndefined();
  });
});

describe("app store", () => {
  it("routes streamed events to the stores and counts resyncs", () => {
    useExecutions.setState({ byId: {}, watched: {} });
    useInbox.setState({ unread: 0, latest: [] });
    const before = useApp.getState().epochVersion;
    useApp.getState().applyFrames([
      { kind: "event", seq: 1, event: { type: "execution", execution: { id: "x", status: "running" } as unknown as Execution } },
      { kind: "event", seq: 2, event: { type: "message", message: { id: "m", status: "unread" } as never } },
      { kind: "resync", epoch: "e", seq: 5, reason: "test" },
    ]);
    expect(useExecutions.getState().byId.x.status).toBe("running");
    expect(useInbox.getState().unread).toBe(1);
    expect(useApp.getState().epochVersion).toBe(before + 1);
  });
});

describe("inbox store", () => {
  it("refreshes the unread count", async () => {
    setBackend(fakeBackend([], []));
    await useInbox.getState().refresh();
    expect(useInbox.getState().unread).toBe(3);
  });
});
