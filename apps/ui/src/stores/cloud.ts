// The connection to a Personas cloud and what it is doing: its status (orchestrators, workers
// idle/busy with their current run, queued runs, Kafka lag, usage), connecting (the token goes
// straight into the request; the runtime seals it in the vault and this store never keeps it),
// disconnecting, and running a persona there ("Execute in cloud": the run is mirrored into the
// local store, so it opens in the same execution view as a local run).
import { create } from "zustand";
import { BackendError, backend, errorMessage } from "../backend";
import type { CloudStatus, Cluster, Execution, WorkerView } from "../generated";

/** The cluster in the numbers the page shows. */
export type ClusterSummary = {
  orchestrators: number;
  workers: number;
  busy: number;
  idle: number;
  queued: number;
  /** Messages on the execution topic no orchestrator took yet; null when the broker did not say. */
  lag: number | null;
  /** Busy workers first, then by id, so the ones doing something are on top. */
  byState: WorkerView[];
};

export function summarize(c: Cluster): ClusterSummary {
  const busy = c.workers.filter((w) => w.state === "busy").length;
  const byState = [...c.workers].sort((a, b) => (a.state === b.state ? a.id.localeCompare(b.id) : a.state === "busy" ? -1 : 1));
  return {
    orchestrators: c.orchestrators.length,
    workers: c.workers.length,
    busy,
    idle: c.workers.length - busy,
    queued: c.queued,
    lag: c.exec_lag,
    byState,
  };
}

/** Whether "Execute in cloud" can be offered: connected and the orchestrator answered. */
export function canExecute(status: CloudStatus | null): boolean {
  return !!status && status.connected && status.reachable;
}

/** Connect-form errors keyed by the field they name (`url`, `token`), else `general`. */
export function connectErrors(e: unknown): Record<string, string> {
  const field = e instanceof BackendError && (e.field === "url" || e.field === "token") ? e.field : "general";
  return { [field]: errorMessage(e) };
}

type CloudState = {
  status: CloudStatus | null;
  loading: boolean;
  error: string | null;
  refresh(): Promise<void>;
  /** Resolves with the new status; rejects with the backend's error (field-named). */
  connect(url: string, token: string): Promise<CloudStatus>;
  disconnect(): Promise<void>;
  /** Runs the persona in the cloud; the local mirror (same id) is what the execution view opens. */
  execute(persona: string, input?: unknown): Promise<Execution>;
};

export const useCloud = create<CloudState>((set, get) => ({
  status: null,
  loading: false,
  error: null,
  refresh: async () => {
    set({ loading: true });
    try {
      set({ status: await backend().call("cloud_status", {}), error: null, loading: false });
    } catch (e) {
      set({ error: errorMessage(e), loading: false });
    }
  },
  connect: async (url, token) => {
    const status = await backend().call("cloud_connect", { url: url.trim(), token: token.trim() });
    set({ status, error: null });
    return status;
  },
  disconnect: async () => {
    await backend().call("cloud_disconnect", {});
    await get().refresh();
  },
  execute: (persona, input) => backend().call("cloud_execute", { persona, input }),
}));
