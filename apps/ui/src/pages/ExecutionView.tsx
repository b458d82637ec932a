import { ArrowLeft, OctagonX, ShieldAlert } from "lucide-react";
import { useEffect, useState } from "react";
import { Link, useParams } from "react-router";
import { backend, errorMessage } from "../backend";
import { Conversation } from "../components/Conversation";
import { StatusBadge } from "../components/StatusBadge";
import { Badge, Button, ErrorBox, Spinner, Stat } from "../components/ui";
import { duration, money, runDuration, tokens } from "../lib/format";
import { useExecutions } from "../stores/executions";

export function ExecutionView() {
  const { id = "" } = useParams();
  const exec = useExecutions((s) => s.byId[id]);
  const w = useExecutions((s) => s.watched[id]);
  const [cancelErr, setCancelErr] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const [, tick] = useState(0);
  useEffect(() => {
    void useExecutions.getState().watch(id);
    return () => useExecutions.getState().unwatch(id);
  }, [id]);
  useEffect(() => {
    if (exec?.status !== "running") return;
    const t = setInterval(() => tick((n) => n + 1), 1000);
    return () => clearInterval(t);
  }, [exec?.status]);
  if (w?.error && !exec) return <ErrorBox error={w.error} retry={() => void useExecutions.getState().watch(id)} />;
  if (!exec || !w) return <Spinner />;
  const cancel = async () => {
    setBusy(true);
    setCancelErr(null);
    try {
      useExecutions.getState().upsert([await backend().call("cancel_execution", { id })]);
    } catch (e) {
      setCancelErr(errorMessage(e));
    } finally {
      setBusy(false);
    }
  };
  const active = exec.status === "queued" || exec.status === "running" || exec.status === "awaiting_review";
  return (
    <div data-page="execution" data-line-count={w.model.lineCount} data-execution-status={exec.status}>
      <div className="mb-4 flex flex-wrap items-center gap-3">
        <Link to="/executions" className="rounded-md p-1 hover:bg-zinc-100 dark:hover:bg-zinc-800" aria-label="Back to executions">
          <ArrowLeft className="size-4" />
        </Link>
        <h1 className="text-xl font-semibold">{exec.persona_name}</h1>
        <StatusBadge status={exec.status} />
        {exec.trigger === "cloud" && (
          <Badge tone="blue">ran in the cloud</Badge>
        )}
        <span className="font-mono text-xs text-zinc-400">{exec.id}</span>
        <div className="ml-auto">
          {active && (
            <Button variant="danger" size="sm" busy={busy} onClick={cancel} disabled={exec.cancel_requested}>
              <OctagonX className="size-4" /> {exec.cancel_requested ? "Cancelling…" : "Cancel"}
            </Button>
          )}
        </div>
      </div>
      {cancelErr && <ErrorBox error={cancelErr} />}
      {exec.error_message && exec.status !== "completed" && <ErrorBox error={`${exec.error_class ?? "error"}: ${exec.error_message}`} />}
      <div className="mb-4 grid grid-cols-2 gap-3 md:grid-cols-5">
        <Stat label="Duration" value={duration(runDuration(exec))} />
        <Stat label="Turns" value={exec.num_turns} />
        <Stat label="Tokens" value={`${tokens(exec.tokens.input + exec.tokens.cache_read + exec.tokens.cache_creation)} / ${tokens(exec.tokens.output)}`} sub="in / out" />
        <Stat label="Cost" value={<span data-testid="execution-cost">{money(exec.cost_usd)}</span>} />
        <Stat label="Lines" value={w.model.lineCount} sub={exec.permission_denials.length ? `${exec.permission_denials.length} permission denial(s)` : undefined} />
      </div>
      {exec.persona_denials.length > 0 && (
        <div role="alert" data-persona-denials className="mb-4 rounded-lg bg-amber-50 p-3 text-sm text-amber-900 ring-1 ring-amber-200 dark:bg-amber-950 dark:text-amber-100 dark:ring-amber-900">
          <p className="flex items-center gap-1.5 font-medium">
            <ShieldAlert className="size-4" aria-hidden /> {exec.persona_denials.length} persona start(s) denied — not in this persona's “may start” list; they did not run.
          </p>
          <ul className="mt-1 list-disc pl-6 text-xs">
            {exec.persona_denials.map((d, i) => (
              <li key={i} data-persona-denial={d.target}>
                <span className="font-medium">{d.target}</span>
                {d.action ? ` (action ${d.action})` : ""} via {d.via}
              </li>
            ))}
          </ul>
        </div>
      )}
      {w.loading && w.model.items.length === 0 ? <Spinner label="Loading output…" /> : <Conversation items={w.model.items} version={w.version} />}
    </div>
  );
}
