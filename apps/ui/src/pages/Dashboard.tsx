import { Activity, AlertTriangle, Bot, DollarSign, Inbox, ShieldCheck } from "lucide-react";
import { useEffect } from "react";
import { Link, useNavigate } from "react-router";
import { backend } from "../backend";
import { StatusBadge } from "../components/StatusBadge";
import { Badge, Button, Card, Empty, ErrorBox, PageHeader, Spinner, Stat } from "../components/ui";
import type { Execution } from "../generated";
import { ago, duration, money, runDuration, tzOffset } from "../lib/format";
import { useQuery } from "../lib/useQuery";
import { useExecutions } from "../stores/executions";
import { usePersonas } from "../stores/personas";

export function ExecutionRow({ e }: { e: Execution }) {
  return (
    <Link to={`/executions/${e.id}`} className="flex items-center gap-3 px-4 py-2.5 text-sm hover:bg-zinc-50 dark:hover:bg-zinc-800/60">
      <StatusBadge status={e.status} />
      <span className="flex-1 truncate font-medium">{e.persona_name}</span>
      {e.trigger === "cloud" && <Badge tone="blue">cloud</Badge>}
      <span className="w-20 text-right tabular-nums text-zinc-500">{duration(runDuration(e))}</span>
      <span className="w-16 text-right tabular-nums text-zinc-500">{money(e.cost_usd)}</span>
      <span className="w-20 text-right text-xs text-zinc-400">{ago(e.queued_at)}</span>
    </Link>
  );
}

export function Dashboard() {
  const live = useExecutions((s) => s.byId);
  const personas = usePersonas();
  const nav = useNavigate();
  const { data, error, loading, reload } = useQuery(() => backend().call("get_dashboard", { tz_offset_minutes: tzOffset() }), [
    Object.keys(live).length,
  ]);
  useEffect(() => {
    if (personas.loaded && personas.list.length === 0 && !localStorage.getItem("personas.welcomed")) nav("/welcome");
  }, [personas.loaded, personas.list.length, nav]);
  if (error) return <ErrorBox error={error} retry={reload} />;
  if (!data) return <Spinner />;
  // Live statuses override the snapshot while it is being refreshed.
  const fresh = (e: Execution) => live[e.id] ?? e;
  const running = [...data.running.map(fresh), ...Object.values(live).filter((e) => e.status === "running" && !data.running.some((r) => r.id === e.id))];
  return (
    <div data-page="dashboard">
      <PageHeader
        title="Dashboard"
        subtitle="What your agents are doing now."
        actions={
          <Link to="/personas">
            <Button variant="primary">
              <Bot className="size-4" /> Run a persona
            </Button>
          </Link>
        }
      />
      <div className="grid grid-cols-2 gap-4 lg:grid-cols-4">
        <Stat label="Running now" value={running.filter((e) => e.status === "running").length} sub={`${data.queued} queued`} icon={<Activity className="size-4" />} />
        <Stat label="Spend today" value={money(data.spend_today_usd)} sub={`${data.runs_today} runs today`} icon={<DollarSign className="size-4" />} />
        <Stat label="Unread messages" value={data.unread_messages} icon={<Inbox className="size-4" />} />
        <Stat label="Pending reviews" value={data.pending_reviews.length} icon={<ShieldCheck className="size-4" />} />
      </div>
      <div className="mt-6 grid gap-6 lg:grid-cols-3">
        <Card title="Running now" className="lg:col-span-2">
          {running.length === 0 ? (
            <Empty title="Nothing is running">Start a persona from the Personas page; its run streams here live.</Empty>
          ) : (
            <div className="divide-y divide-zinc-100 dark:divide-zinc-800">{running.map((e) => <ExecutionRow key={e.id} e={e} />)}</div>
          )}
        </Card>
        <Card title="Latest messages" action={<Link className="text-xs text-accent-600" to="/messages">Inbox</Link>}>
          {data.latest_messages.length === 0 ? (
            <Empty title="No messages yet">Personas write to you with a user_message line.</Empty>
          ) : (
            <ul className="divide-y divide-zinc-100 dark:divide-zinc-800">
              {data.latest_messages.map((m) => (
                <li key={m.id} className="px-4 py-2.5 text-sm">
                  <div className="flex items-center gap-2">
                    {m.status === "unread" && <span className="size-1.5 rounded-full bg-accent-600" aria-label="unread" />}
                    <span className="font-medium">{m.title ?? m.persona_name}</span>
                  </div>
                  <p className="line-clamp-2 text-zinc-500">{m.content}</p>
                </li>
              ))}
            </ul>
          )}
        </Card>
        <Card title="Recent executions" className="lg:col-span-2" action={<Link className="text-xs text-accent-600" to="/executions">All</Link>}>
          {loading && data.recent.length === 0 ? (
            <Spinner />
          ) : data.recent.length === 0 ? (
            <Empty title="No runs yet" />
          ) : (
            <div className="divide-y divide-zinc-100 dark:divide-zinc-800">{data.recent.map((e) => <ExecutionRow key={e.id} e={fresh(e)} />)}</div>
          )}
        </Card>
        <Card title={<span className="flex items-center gap-1.5"><AlertTriangle className="size-4 text-red-500" /> Failures</span>}>
          {data.failures.length === 0 ? (
            <Empty title="No recent failures" />
          ) : (
            <ul className="divide-y divide-zinc-100 dark:divide-zinc-800">
              {data.failures.map((e) => (
                <li key={e.id}>
                  <Link to={`/executions/${e.id}`} className="block px-4 py-2.5 text-sm hover:bg-zinc-50 dark:hover:bg-zinc-800/60">
                    <span className="font-medium">{e.persona_name}</span> <span className="text-xs text-zinc-400">{ago(e.queued_at)}</span>
                    <p className="line-clamp-2 text-xs text-red-600 dark:text-red-400">{e.error_message ?? e.error_class}</p>
                  </Link>
                </li>
              ))}
            </ul>
          )}
        </Card>
      </div>
    </div>
  );
}
