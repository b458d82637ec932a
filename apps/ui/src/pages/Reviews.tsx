import { Check, ShieldCheck, X } from "lucide-react";
import { useEffect, useState } from "react";
import { Link } from "react-router";
import { errorMessage } from "../backend";
import type { Decision, ReviewRow, ReviewStatus } from "../generated";
import { Badge, Button, Card, Empty, ErrorBox, PageHeader, Spinner, cx, inputClass } from "../components/ui";
import { ago } from "../lib/format";
import { selectReviews, useReviews } from "../stores/reviews";

/** Every review status with its tone, in tab order (a new `ReviewStatus` fails `tsc` here). */
const statusTone = {
  pending: "amber",
  approved: "green",
  rejected: "red",
  timed_out: "zinc",
  cancelled: "zinc",
} as const satisfies Record<ReviewStatus, "amber" | "green" | "red" | "zinc">;
const filters: (ReviewStatus | "")[] = [...(Object.keys(statusTone) as ReviewStatus[]), ""];

// Review requests (a manual_review line or the request_review tool). A pending one pauses its
// run; approving or rejecting (with a note for the agent) resumes the same Claude session.
// The list follows the event stream: new requests and decisions made elsewhere appear live.
export function Reviews() {
  const [status, setStatus] = useState<ReviewStatus | "">("pending");
  const byId = useReviews((s) => s.byId);
  const loaded = useReviews((s) => s.loaded);
  const pending = useReviews((s) => s.pending);
  const [error, setError] = useState<string | null>(null);
  const load = () => useReviews.getState().refresh().then(() => setError(null)).catch((e) => setError(errorMessage(e)));
  useEffect(() => {
    void load();
  }, []);
  const rows = selectReviews(byId, status);
  return (
    <div data-page="reviews">
      <PageHeader title="Reviews" subtitle={`${pending} waiting — decisions your personas asked a person to make.`} />
      <div className="mb-4 flex flex-wrap gap-1" role="tablist" aria-label="Review status">
        {filters.map((f) => (
          <button key={f} role="tab" aria-selected={status === f} onClick={() => setStatus(f)} className={cx("rounded-lg px-3 py-1.5 text-sm focus-visible:outline-2 focus-visible:outline-accent-500", status === f ? "bg-accent-600 text-white" : "hover:bg-zinc-100 dark:hover:bg-zinc-800")}>
            {f ? f.replace("_", " ") : "all"}
          </button>
        ))}
      </div>
      {error && <ErrorBox error={error} retry={load} />}
      <Card>
        {!loaded && !error ? (
          <Spinner />
        ) : rows.length === 0 ? (
          <Empty icon={<ShieldCheck className="size-8" />} title={status === "pending" ? "Nothing to review" : "No reviews here"}>
            Agents ask with a manual_review line or the request_review tool; their run waits here for you.
          </Empty>
        ) : (
          <ul className="divide-y divide-zinc-100 dark:divide-zinc-800">
            {rows.map((r) => <ReviewItem key={r.id} r={r} />)}
          </ul>
        )}
      </Card>
    </div>
  );
}

function ReviewItem({ r }: { r: ReviewRow }) {
  const [note, setNote] = useState("");
  const [busy, setBusy] = useState<Decision | null>(null);
  const [error, setError] = useState<string | null>(null);
  const decide = async (decision: Decision) => {
    setBusy(decision);
    setError(null);
    try {
      await useReviews.getState().decide(r.id, decision, note);
    } catch (e) {
      setError(errorMessage(e));
    } finally {
      setBusy(null);
    }
  };
  const noteId = `review-note-${r.id}`;
  return (
    <li className="px-4 py-3 text-sm" data-review={r.id} data-review-status={r.status}>
      <div className="flex flex-wrap items-center gap-2">
        <span className="font-semibold">{r.title}</span>
        <Badge tone={r.severity === "critical" || r.severity === "high" ? "red" : "amber"}>{r.severity}</Badge>
        <Badge tone={statusTone[r.status]}>{r.status.replace("_", " ")}</Badge>
        <span className="ml-auto text-xs text-zinc-400">
          {ago(r.created_at)}
          {r.status === "pending" && r.deadline_at && <> · {r.timeout_action ?? "decided"} automatically at {new Date(r.deadline_at).toLocaleString()}</>}
        </span>
      </div>
      {r.description && <p className="mt-1 whitespace-pre-wrap text-zinc-600 dark:text-zinc-300">{r.description}</p>}
      {r.suggested_actions.length > 0 && <p className="mt-1 text-xs text-zinc-500">Suggested: {r.suggested_actions.join(", ")}</p>}
      {r.status !== "pending" && (
        <p className="mt-1 text-xs text-zinc-500">
          {r.status.replace("_", " ")} by {r.decided_by ?? "someone"}
          {r.decided_at && <> {ago(r.decided_at)}</>}
          {r.decision_note && <> — “{r.decision_note}”</>}
        </p>
      )}
      {r.status === "pending" && (
        <div className="mt-2 space-y-2">
          <label htmlFor={noteId} className="sr-only">Note for the agent</label>
          <textarea
            id={noteId}
            rows={2}
            className={inputClass}
            placeholder="Note for the agent (optional) — it gets it with your decision"
            value={note}
            onChange={(e) => setNote(e.target.value)}
            onKeyDown={(e) => {
              if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) void decide("approve");
            }}
          />
          <div className="flex items-center gap-2">
            <Button variant="primary" size="sm" busy={busy === "approve"} disabled={busy !== null} onClick={() => decide("approve")} aria-label={`Approve ${r.title}`}>
              <Check className="size-4" /> Approve
            </Button>
            <Button variant="danger" size="sm" busy={busy === "reject"} disabled={busy !== null} onClick={() => decide("reject")} aria-label={`Reject ${r.title}`}>
              <X className="size-4" /> Reject
            </Button>
            <span className="text-xs text-zinc-400">Ctrl+Enter approves</span>
          </div>
          {error && <p className="text-xs text-red-600" data-field-error>{error}</p>}
        </div>
      )}
      <Link className="mt-1 inline-block text-xs text-accent-600" to={`/executions/${r.execution_id}`}>View the run</Link>
    </li>
  );
}
