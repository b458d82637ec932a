// Healing issues (failures that need a person) and circuit breakers. A `healing` event that
// carries an issue or pauses a persona updates the list live.
import { create } from "zustand";
import type { Breaker, HealingReport, IssueRow } from "../generated";
import { backend } from "../backend";

type HealingState = {
  issues: IssueRow[];
  breakers: Breaker[];
  all: boolean;
  loaded: boolean;
  refresh(all?: boolean): Promise<void>;
  reported(report: HealingReport): void;
  resolve(id: string): Promise<void>;
  resume(persona: string): Promise<void>;
};

export const useHealing = create<HealingState>((set, get) => ({
  issues: [],
  breakers: [],
  all: false,
  loaded: false,
  refresh: async (all = get().all) => {
    const r = await backend().call("list_healing", { all });
    set({ issues: r.issues, breakers: r.breakers, all, loaded: true });
  },
  reported: (report) => {
    const issue = report.issue;
    if (issue) {
      const rest = get().issues.filter((i) => i.id !== issue.id);
      set({ issues: [issue, ...rest] });
    }
    // A breaker that opened is only known by its reason here; read the rows.
    if (report.paused || report.provider_open_until) void get().refresh().catch(() => undefined);
  },
  resolve: async (id) => {
    const row = await backend().call("resolve_issue", { id });
    set({ issues: get().all ? get().issues.map((i) => (i.id === id ? row : i)) : get().issues.filter((i) => i.id !== id) });
  },
  resume: async (persona) => {
    await backend().call("resume_persona", { persona });
    await get().refresh();
  },
}));
