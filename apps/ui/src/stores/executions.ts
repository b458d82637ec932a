// Executions: the latest state of every execution the stream mentioned, and the conversation
// of each execution being watched. Output arrives in batches (one per WebSocket message) and is
// applied in one update per batch; a gap in sequence numbers is filled from the store, so the
// view never silently drops a line.
import { create } from "zustand";
import type { Execution, OutputLine } from "../generated";
import { backend } from "../backend";
import { ConversationModel } from "../lib/conversation";

export type Watched = {
  model: ConversationModel;
  /** Bumped on every change (the model itself is mutable). */
  version: number;
  loading: boolean;
  error: string | null;
  /** Live lines that arrived while the stored ones were still loading. */
  pending: OutputLine[];
};

type ExecutionsState = {
  byId: Record<string, Execution>;
  watched: Record<string, Watched>;
  upsert(list: Execution[]): void;
  appendOutput(lines: OutputLine[]): void;
  watch(id: string): Promise<void>;
  unwatch(id: string): void;
};

const PAGE = 5000;
const MAX_WATCHED = 6;

export const useExecutions = create<ExecutionsState>((set, get) => {
  const patch = (id: string, f: (w: Watched) => Partial<Watched>) => {
    const w = get().watched[id];
    if (!w) return;
    set({ watched: { ...get().watched, [id]: { ...w, ...f(w), version: w.version + 1 } } });
  };

  /** Reads stored lines after the model's last one until there are no more. */
  const fill = async (id: string) => {
    for (;;) {
      const w = get().watched[id];
      if (!w) return;
      const page = await backend().call("execution_output", { id, after: w.model.lastSeq, limit: PAGE });
      w.model.push(page.lines);
      if (!page.more) return;
    }
  };

  return {
    byId: {},
    watched: {},
    upsert: (list) => {
      const byId = { ...get().byId };
      for (const e of list) byId[e.id] = e;
      set({ byId });
    },
    appendOutput: (lines) => {
      const groups = new Map<string, OutputLine[]>();
      for (const l of lines) {
        if (!get().watched[l.execution_id]) continue;
        const g = groups.get(l.execution_id);
        if (g) g.push(l);
        else groups.set(l.execution_id, [l]);
      }
      for (const [id, group] of groups) {
        const w = get().watched[id];
        if (w.loading) {
          patch(id, (x) => ({ pending: [...x.pending, ...group] }));
          continue;
        }
        const first = Math.min(...group.map((l) => l.seq));
        if (first > w.model.lastSeq + 1) {
          // Lines were missed (e.g. before a resync): fetch them, then apply these.
          patch(id, () => ({ loading: true, pending: group }));
          void fill(id)
            .then(() => patch(id, (x) => (x.model.push(x.pending), { loading: false, pending: [] })))
            .catch((e) => patch(id, () => ({ loading: false, error: (e as Error).message })));
          continue;
        }
        w.model.push(group);
        patch(id, () => ({}));
      }
    },
    watch: async (id) => {
      const existing = get().watched[id];
      const model = existing?.model ?? new ConversationModel();
      const names = Object.keys(get().watched).filter((k) => k !== id);
      const kept: Record<string, Watched> = {};
      for (const k of names.slice(-(MAX_WATCHED - 1))) kept[k] = get().watched[k];
      set({ watched: { ...kept, [id]: { model, version: (existing?.version ?? 0) + 1, loading: true, error: null, pending: [] } } });
      try {
        const exec = await backend().call("get_execution", { id });
        get().upsert([exec]);
        await fill(id);
        patch(id, (w) => (w.model.push(w.pending), { loading: false, pending: [] }));
      } catch (e) {
        patch(id, () => ({ loading: false, error: (e as Error).message }));
      }
    },
    unwatch: (id) => {
      const watched = { ...get().watched };
      delete watched[id];
      set({ watched });
    },
  };
});
