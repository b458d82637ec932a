import { beforeEach, describe, expect, it } from "vitest";
import { BackendError, setBackend, type Backend } from "../backend";
import type { CloudStatus, Cluster, OperationName, WorkerView } from "../generated";
import { canExecute, connectErrors, summarize, useCloud } from "./cloud";

const TOKEN = "pc-admin-StoreMustNeverHoldThis";

function worker(id: string, state: "idle" | "busy", running: string[] = []): WorkerView {
  const now = new Date().toISOString();
  return { id, orchestrator_id: "o-1", version: "0.1.0", capacity: 1, state, running, connected_at: now, heartbeat_at: now };
}

const cluster: Cluster = {
  orchestrators: [
    { id: "o-1", url: "http://127.0.0.1:9500", started_at: "2026-12-03T10:00:00Z", heartbeat_at: "2026-12-03T10:00:01Z", workers: 2, clients: 1 },
    { id: "o-2", url: "http://127.0.0.1:9501", started_at: "2026-12-03T10:00:00Z", heartbeat_at: "2026-12-03T10:00:01Z", workers: 1, clients: 0 },
  ],
  workers: [worker("w-c", "idle"), worker("w-b", "busy", ["e-1"]), worker("w-a", "idle")],
  queued: 4,
  exec_lag: null,
};

function status(over: Partial<CloudStatus> = {}): CloudStatus {
  return { connected: true, url: "http://127.0.0.1:9500", reachable: true, mirrors_pending: 0, cluster, ...over };
}

type Call = { op: string; req: Record<string, unknown> };

function fakeBackend(calls: Call[], answers: Partial<Record<OperationName, (req: Record<string, unknown>) => unknown>>): Backend {
  return {
    kind: "web",
    subscribe: () => () => {},
    call: (async (op: OperationName, req: Record<string, unknown>) => {
      calls.push({ op, req });
      const answer = answers[op];
      if (!answer) throw new Error(`unexpected ${op}`);
      return answer(req);
    }) as Backend["call"],
  };
}

describe("cloud page logic", () => {
  beforeEach(() => useCloud.setState({ status: null, loading: false, error: null }));

  it("summarizes the cluster with busy workers first and an unknown lag as null", () => {
    const s = summarize(cluster);
    expect([s.orchestrators, s.workers, s.busy, s.idle, s.queued, s.lag]).toEqual([2, 3, 1, 2, 4, null]);
    expect(s.byState.map((w) => w.id)).toEqual(["w-b", "w-a", "w-c"]);
    expect(summarize({ ...cluster, exec_lag: 7 }).lag).toBe(7);
  });

  it("offers Execute in cloud only when connected and reachable", () => {
    expect(canExecute(null)).toBe(false);
    expect(canExecute(status())).toBe(true);
    expect(canExecute(status({ reachable: false, error: "cannot reach the orchestrator" }))).toBe(false);
    expect(canExecute({ connected: false, reachable: false, mirrors_pending: 0 })).toBe(false);
  });

  it("puts a connect error next to the field it names, else above the form", () => {
    expect(connectErrors(new BackendError("invalid", "the cloud refused the token", "token"))).toEqual({ token: "the cloud refused the token" });
    expect(connectErrors(new BackendError("unavailable", "cannot reach http://x", "url"))).toEqual({ url: "cannot reach http://x" });
    expect(connectErrors(new BackendError("unavailable", "the vault is locked", "vault"))).toEqual({ general: "the vault is locked" });
  });

  it("sends the token in the request only and keeps the answer, never the token", async () => {
    const calls: Call[] = [];
    setBackend(fakeBackend(calls, { cloud_connect: () => status() }));
    await useCloud.getState().connect(" http://127.0.0.1:9500 ", ` ${TOKEN} `);
    expect(calls).toEqual([{ op: "cloud_connect", req: { url: "http://127.0.0.1:9500", token: TOKEN } }]);
    expect(JSON.stringify(useCloud.getState())).not.toContain(TOKEN);
    expect(useCloud.getState().status?.connected).toBe(true);
  });

  it("a refused connect leaves the state as it was and rejects with the field", async () => {
    setBackend(fakeBackend([], { cloud_connect: () => Promise.reject(new BackendError("invalid", "refused", "token")) }));
    await expect(useCloud.getState().connect("http://x", "t")).rejects.toMatchObject({ field: "token" });
    expect(useCloud.getState().status).toBeNull();
  });

  it("disconnecting reloads the status; a failing status is an error to show, not a throw", async () => {
    const calls: Call[] = [];
    let connected = true;
    setBackend(
      fakeBackend(calls, {
        cloud_disconnect: () => {
          connected = false;
          return { was_connected: true, url: "http://127.0.0.1:9500" };
        },
        cloud_status: () => (connected ? status() : { connected: false, reachable: false, mirrors_pending: 0 }),
      }),
    );
    await useCloud.getState().disconnect();
    expect(calls.map((c) => c.op)).toEqual(["cloud_disconnect", "cloud_status"]);
    expect(useCloud.getState().status?.connected).toBe(false);
    setBackend(fakeBackend([], { cloud_status: () => Promise.reject(new Error("offline")) }));
    await useCloud.getState().refresh();
    expect(useCloud.getState().error).toBe("offline");
  });

  it("executes in the cloud through cloud_execute and answers the mirrored execution", async () => {
    const calls: Call[] = [];
    setBackend(fakeBackend(calls, { cloud_execute: (req) => ({ id: "e-9", persona_id: req.persona, trigger: "cloud", status: "queued" }) }));
    const e = await useCloud.getState().execute("p-1", { pr: 42 });
    expect(calls).toEqual([{ op: "cloud_execute", req: { persona: "p-1", input: { pr: 42 } } }]);
    expect([e.id, e.trigger]).toEqual(["e-9", "cloud"]);
  });
});
