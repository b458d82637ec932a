import { Activity } from "lucide-react";
import { useState } from "react";
import { backend } from "../backend";
import { Card, Empty, ErrorBox, PageHeader, Spinner, inputClass } from "../components/ui";
import type { ExecutionStatus } from "../generated";
import { useQuery } from "../lib/useQuery";
import { useExecutions } from "../stores/executions";
import { ExecutionRow } from "./Dashboard";

/** The status filter's choices in display order: every `ExecutionStatus` (a new one fails `tsc`). */
const STATUS_LABELS = {
  running: "running",
  queued: "queued",
  awaiting_review: "awaiting review",
  completed: "completed",
  failed: "failed",
  incomplete: "incomplete",
  cancelled: "cancelled",
  timed_out: "timed out",
} as const satisfies Record<ExecutionStatus, string>;
const statuses: (ExecutionStatus | "")[] = ["", ...(Object.keys(STATUS_LABELS) as ExecutionStatus[])];

export function Executions() {
  const [status, setStatus] = useState<ExecutionStatus | "">("");
  const live = useExecutions((s) => s.byId);
  const { data, error, reload } = useQuery(
    () => backend().call("list_executions", status ? { status, limit: 200 } : { limit: 200 }),
    [status, Object.keys(live).length],
  );
  return (
    <div data-page="executions">
      <PageHeader
        title="Executions"
        subtitle="Every run, newest first."
        actions={
          <select aria-label="Filter by status" className={inputClass} value={status} onChange={(e) => setStatus(e.target.value as ExecutionStatus | "")}>
            {statuses.map((s) => (
              <option key={s} value={s}>{s ? STATUS_LABELS[s] : "All statuses"}</option>
            ))}
          </select>
        }
      />
      {error && <ErrorBox error={error} retry={reload} />}
      <Card>
        {!data ? (
          <Spinner />
        ) : data.executions.length === 0 ? (
          <Empty icon={<Activity className="size-8" />} title="No executions" />
        ) : (
          <div className="divide-y divide-zinc-100 dark:divide-zinc-800">
            {data.executions.map((e) => <ExecutionRow key={e.id} e={live[e.id] ?? e} />)}
          </div>
        )}
      </Card>
    </div>
  );
}
