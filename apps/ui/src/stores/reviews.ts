// Review requests: the pending count in the navigation, the inbox's list, and decisions.
// Live: a `review` event adds a request, a `review_decided` event updates it (whoever decided —
// this window, another one, the CLI, or the deadline).
import { create } from "zustand";
import type { DecidedReview, Decision, ReviewRow, ReviewStatus } from "../generated";
import { backend } from "../backend";

type ReviewsState = {
  /** Every review seen, by id. */
  byId: Record<string, ReviewRow>;
  pending: number;
  loaded: boolean;
  refresh(): Promise<void>;
  /** Applies streamed or fetched rows (newer status wins over pending). */
  upsert(rows: ReviewRow[]): void;
  decide(id: string, decision: Decision, note?: string): Promise<DecidedReview>;
};

const countPending = (byId: Record<string, ReviewRow>) => Object.values(byId).filter((r) => r.status === "pending").length;

export const useReviews = create<ReviewsState>((set, get) => ({
  byId: {},
  pending: 0,
  loaded: false,
  refresh: async () => {
    const r = await backend().call("list_reviews", {});
    const byId: Record<string, ReviewRow> = {};
    for (const row of r.reviews) byId[row.id] = row;
    set({ byId, pending: countPending(byId), loaded: true });
  },
  upsert: (rows) => {
    const byId = { ...get().byId };
    for (const row of rows) {
      const old = byId[row.id];
      // A late `review` event must not turn a decided review back into a pending one.
      if (old && old.status !== "pending" && row.status === "pending") continue;
      byId[row.id] = row;
    }
    set({ byId, pending: countPending(byId) });
  },
  decide: async (id, decision, note) => {
    const trimmed = note?.trim();
    const d = await backend().call("decide_review", { id, decision, ...(trimmed ? { note: trimmed } : {}) });
    get().upsert([d.review]);
    return d;
  },
}));

/** Reviews with `status` (all when empty), oldest pending first, decided newest first. */
export function selectReviews(byId: Record<string, ReviewRow>, status: ReviewStatus | ""): ReviewRow[] {
  const rows = Object.values(byId).filter((r) => !status || r.status === status);
  return rows.sort((a, b) =>
    a.status === "pending" && b.status === "pending" ? a.created_at.localeCompare(b.created_at) : b.created_at.localeCompare(a.created_at),
  );
}
