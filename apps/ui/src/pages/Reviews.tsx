import { ShieldCheck } from "lucide-react";
import { useState } from "react";
import { Link } from "react-router";
import { backend } from "../backend";
import { Badge, Card, Empty, ErrorBox, PageHeader, Spinner, cx } from "../components/ui";
import { ago } from "../lib/format";
import { useQuery } from "../lib/useQuery";

const filters = ["pending", "approved", "rejected", "timed_out", ""] as const;

// Review requests (manual_review). Approving and rejecting arrive with the review issue; until
// then this inbox lists what agents asked for and links to the run.
export function Reviews() {
  const [status, setStatus] = useState<(typeof filters)[number]>("pending");
  const { data, error, reload } = useQuery(() => backend().call("list_reviews", status ? { status } : {}), [status]);
  return (
    <div data-page="reviews">
      <PageHeader title="Reviews" subtitle="Decisions your personas asked a person to make." />
      <div className="mb-4 flex gap-1" role="tablist">
        {filters.map((f) => (
          <button key={f} role="tab" aria-selected={status === f} onClick={() => setStatus(f)} className={cx("rounded-lg px-3 py-1.5 text-sm", status === f ? "bg-accent-600 text-white" : "hover:bg-zinc-100 dark:hover:bg-zinc-800")}>
            {f ? f.replace("_", " ") : "all"}
          </button>
        ))}
      </div>
      {error && <ErrorBox error={error} retry={reload} />}
      <Card>
        {!data ? (
          <Spinner />
        ) : data.reviews.length === 0 ? (
          <Empty icon={<ShieldCheck className="size-8" />} title="Nothing to review">Agents ask with a manual_review line; requests show up here.</Empty>
        ) : (
          <ul className="divide-y divide-zinc-100 dark:divide-zinc-800">
            {data.reviews.map((r) => (
              <li key={r.id} className="px-4 py-3 text-sm">
                <div className="flex items-center gap-2">
                  <span className="font-semibold">{r.title}</span>
                  <Badge tone={r.severity === "critical" || r.severity === "high" ? "red" : "amber"}>{r.severity}</Badge>
                  <Badge>{r.status}</Badge>
                  <span className="ml-auto text-xs text-zinc-400">{ago(r.created_at)}</span>
                </div>
                {r.description && <p className="mt-1 text-zinc-500">{r.description}</p>}
                {r.suggested_actions.length > 0 && <p className="mt-1 text-xs text-zinc-500">Suggested: {r.suggested_actions.join(", ")}</p>}
                <Link className="text-xs text-accent-600" to={`/executions/${r.execution_id}`}>View the run</Link>
              </li>
            ))}
          </ul>
        )}
      </Card>
    </div>
  );
}
