import { beforeEach, describe, expect, it } from "vitest";
import { setBackend, type Backend } from "../backend";
import type { IssueRow, IssueStatus, OperationName, ReviewRow, ReviewStatus } from "../generated";
import { dispatch } from "./app";
import { useHealing } from "./healing";
import { selectReviews, useReviews } from "./reviews";
import { draftToPolicy } from "../components/PersonaOversight";

const review = (id: string, status: ReviewStatus = "pending", created = "2026-01-01T00:00:00Z"): ReviewRow => ({
  id,
  execution_id: `e-${id}`,
  persona_id: null,
  title: `Review ${id}`,
  description: null,
  severity: "medium",
  suggested_actions: [],
  status,
  decision_note: null,
  created_at: created,
  decided_at: null,
  deadline_at: null,
  timeout_action: null,
  decided_by: null,
});

const issue = (id: string, status: IssueStatus = "open"): IssueRow => ({
  id,
  persona_id: null,
  persona_name: "P",
  execution_id: null,
  error_class: "bad_request",
  title: `Issue ${id}`,
  detail: null,
  suggested_fix: "fix it",
  status,
  occurrences: 1,
  created_at: "2026-01-01T00:00:00Z",
  updated_at: "2026-01-01T00:00:00Z",
});

// A backend answering from memory and recording each call with its request.
function fake(answers: Partial<Record<OperationName, (req: Record<string, unknown>) => unknown>>, calls: [string, unknown][]): Backend {
  return {
    kind: "web",
    subscribe: () => () => {},
    call: (async (op: OperationName, req: Record<string, unknown>) => {
      calls.push([op, req]);
      const f = answers[op];
      if (!f) throw new Error(`unexpected ${op}`);
      return f(req);
    }) as Backend["call"],
  };
}

describe("reviews store", () => {
  beforeEach(() => useReviews.setState({ byId: {}, pending: 0, loaded: false }));

  it("loads reviews and counts the pending ones", async () => {
    const calls: [string, unknown][] = [];
    setBackend(fake({ list_reviews: () => ({ reviews: [review("a"), review("b", "approved")] }) }, calls));
    await useReviews.getState().refresh();
    expect(useReviews.getState().pending).toBe(1);
    expect(useReviews.getState().loaded).toBe(true);
    expect(calls).toEqual([["list_reviews", {}]]);
  });

  it("adds streamed requests and applies streamed decisions live", () => {
    dispatch([{ type: "review", review: review("a") }]);
    dispatch([{ type: "review", review: review("b") }]);
    expect(useReviews.getState().pending).toBe(2);
    dispatch([{ type: "review_decided", review: { ...review("a", "approved"), decision_note: "ok" }, effect: "resumed" }]);
    expect(useReviews.getState().pending).toBe(1);
    expect(useReviews.getState().byId.a.decision_note).toBe("ok");
    // A late request event never reopens a decided review.
    dispatch([{ type: "review", review: review("a") }]);
    expect(useReviews.getState().byId.a.status).toBe("approved");
  });

  it("decides with a trimmed note and leaves out an empty one", async () => {
    const calls: [string, unknown][] = [];
    setBackend(
      fake({ decide_review: (req) => ({ review: { ...review(req.id as string, req.decision === "approve" ? "approved" : "rejected"), decision_note: (req.note as string) ?? null }, execution: {}, effect: "resumed" }) }, calls),
    );
    useReviews.getState().upsert([review("a"), review("b")]);
    await useReviews.getState().decide("a", "approve", "  ship it  ");
    await useReviews.getState().decide("b", "reject", "   ");
    expect(calls).toEqual([
      ["decide_review", { id: "a", decision: "approve", note: "ship it" }],
      ["decide_review", { id: "b", decision: "reject" }],
    ]);
    expect(useReviews.getState().pending).toBe(0);
    expect(useReviews.getState().byId.b.status).toBe("rejected");
  });

  it("lists pending oldest first and decided newest first", () => {
    const byId = {
      a: review("a", "pending", "2026-01-02T00:00:00Z"),
      b: review("b", "pending", "2026-01-01T00:00:00Z"),
      c: review("c", "approved", "2026-01-01T00:00:00Z"),
      d: review("d", "rejected", "2026-01-03T00:00:00Z"),
    };
    expect(selectReviews(byId, "pending").map((r) => r.id)).toEqual(["b", "a"]);
    expect(selectReviews(byId, "").filter((r) => r.status !== "pending").map((r) => r.id)).toEqual(["d", "c"]);
  });
});

describe("healing store", () => {
  beforeEach(() => useHealing.setState({ issues: [], breakers: [], all: false, loaded: false }));

  it("shows a streamed issue once, and resolving removes it from the open list", async () => {
    const calls: [string, unknown][] = [];
    setBackend(fake({ resolve_issue: (req) => issue(req.id as string, "resolved") }, calls));
    dispatch([{ type: "healing", execution_id: "e1", report: { retry: null, paused: null, issue: issue("i1"), provider_open_until: null } }]);
    dispatch([{ type: "healing", execution_id: "e2", report: { retry: null, paused: null, issue: { ...issue("i1"), occurrences: 2 }, provider_open_until: null } }]);
    expect(useHealing.getState().issues.map((i) => [i.id, i.occurrences])).toEqual([["i1", 2]]);
    await useHealing.getState().resolve("i1");
    expect(useHealing.getState().issues).toEqual([]);
    expect(calls).toEqual([["resolve_issue", { id: "i1" }]]);
  });

  it("re-reads breakers when a persona is paused, and resume re-reads them", async () => {
    const calls: [string, unknown][] = [];
    let open = true;
    setBackend(
      fake(
        {
          list_healing: () => ({ issues: [], breakers: open ? [{ scope: "persona:p1", persona_name: "P", consecutive_failures: 3, state: "open", opened_at: null, open_until: null, reason: "3 failures" }] : [] }),
          resume_persona: () => {
            open = false;
            return {};
          },
        },
        calls,
      ),
    );
    dispatch([{ type: "healing", execution_id: "e1", report: { retry: null, paused: "3 failures", issue: null, provider_open_until: null } }]);
    await new Promise((r) => setTimeout(r, 0));
    expect(useHealing.getState().breakers.map((b) => b.state)).toEqual(["open"]);
    await useHealing.getState().resume("P");
    expect(useHealing.getState().breakers).toEqual([]);
    expect(calls.map((c) => c[0])).toEqual(["list_healing", "resume_persona", "list_healing"]);
  });
});

describe("policy form", () => {
  it("turns blanks into defaults and numbers into numbers", () => {
    const r = draftToPolicy({ review_timeout_secs: "", review_timeout_action: "reject", on_reject: "", daily_budget_usd: "2.5", monthly_budget_usd: "", failure_threshold: "3", max_retries: "" });
    expect(r).toEqual({ policy: { review_timeout_secs: null, review_timeout_action: "reject", on_reject: null, daily_budget_usd: 2.5, monthly_budget_usd: null, failure_threshold: 3, max_retries: null } });
  });

  it("names the field it cannot read", () => {
    const r = draftToPolicy({ review_timeout_secs: "", review_timeout_action: "", on_reject: "", daily_budget_usd: "abc", monthly_budget_usd: "", failure_threshold: "", max_retries: "" });
    expect(r).toEqual({ field: "policy.daily_budget_usd", message: "must be a number" });
  });
});
