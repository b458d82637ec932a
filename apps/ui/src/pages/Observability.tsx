import { CheckCircle2, HeartPulse, Play } from "lucide-react";
import { useEffect, useState } from "react";
import { Link } from "react-router";
import { Bar, BarChart, CartesianGrid, Legend, Line, LineChart, ResponsiveContainer, Tooltip, XAxis, YAxis } from "recharts";
import { backend, errorMessage } from "../backend";
import { Badge, Button, Card, Empty, ErrorBox, PageHeader, Spinner, Stat, inputClass } from "../components/ui";
import { ago, duration, money, tokens, tzOffset } from "../lib/format";
import { useHealing } from "../stores/healing";
import { useQuery } from "../lib/useQuery";

export function Observability() {
  const [days, setDays] = useState(14);
  const { data, error, reload } = useQuery(() => backend().call("get_stats", { days, tz_offset_minutes: tzOffset() }), [days]);
  return (
    <div data-page="observability">
      <PageHeader
        title="Observability"
        subtitle="How often your agents succeed, how long they take, and what they cost."
        actions={
          <select aria-label="Period" className={inputClass} value={days} onChange={(e) => setDays(Number(e.target.value))}>
            {[1, 7, 14, 30, 90].map((d) => <option key={d} value={d}>Last {d} day{d > 1 ? "s" : ""}</option>)}
          </select>
        }
      />
      {error && <ErrorBox error={error} retry={reload} />}
      {!data ? (
        <Spinner />
      ) : data.runs === 0 ? (
        <Card><Empty title="No runs in this period">Charts appear after your personas have run.</Empty></Card>
      ) : (
        <div className="space-y-6">
          <div className="grid grid-cols-2 gap-4 lg:grid-cols-5">
            <Stat label="Runs" value={data.runs} />
            <Stat label="Success rate" value={data.success_rate === null ? "—" : `${Math.round(data.success_rate * 100)}%`} sub={`${data.completed} of ${data.ended} ended`} />
            <Stat label="Cost" value={money(data.cost_usd)} />
            <Stat label="Duration p50" value={duration(data.duration_p50_ms)} />
            <Stat label="Duration p95" value={duration(data.duration_p95_ms)} />
          </div>
          <div className="grid gap-6 lg:grid-cols-2">
            <Card title="Runs by status per day">
              <div className="h-64 p-2">
                <ResponsiveContainer>
                  <BarChart data={data.days}>
                    <CartesianGrid strokeDasharray="3 3" opacity={0.3} />
                    <XAxis dataKey="day" fontSize={11} />
                    <YAxis allowDecimals={false} fontSize={11} />
                    <Tooltip />
                    <Legend />
                    <Bar dataKey="completed" stackId="s" fill="#10b981" />
                    <Bar dataKey="failed" stackId="s" fill="#ef4444" />
                    <Bar dataKey="incomplete" stackId="s" fill="#f59e0b" />
                    <Bar dataKey="timed_out" stackId="s" fill="#b91c1c" />
                    <Bar dataKey="cancelled" stackId="s" fill="#a1a1aa" />
                  </BarChart>
                </ResponsiveContainer>
              </div>
            </Card>
            <Card title="Cost and tokens per day">
              <div className="h-64 p-2">
                <ResponsiveContainer>
                  <LineChart data={data.days}>
                    <CartesianGrid strokeDasharray="3 3" opacity={0.3} />
                    <XAxis dataKey="day" fontSize={11} />
                    <YAxis yAxisId="usd" fontSize={11} tickFormatter={(v: number) => `$${v}`} />
                    <YAxis yAxisId="tok" orientation="right" fontSize={11} tickFormatter={(v: number) => tokens(v)} />
                    <Tooltip />
                    <Legend />
                    <Line yAxisId="usd" type="monotone" dataKey="cost_usd" name="cost (USD)" stroke="#7c3aed" strokeWidth={2} />
                    <Line yAxisId="tok" type="monotone" dataKey="output_tokens" name="output tokens" stroke="#0ea5e9" />
                  </LineChart>
                </ResponsiveContainer>
              </div>
            </Card>
          </div>
          <Card title="Per persona">
            <div className="grid gap-2 p-2 lg:grid-cols-3">
              <div className="h-64" data-chart="persona-cost">
                <ResponsiveContainer>
                  <BarChart data={data.personas} layout="vertical" margin={{ left: 10 }}>
                    <CartesianGrid strokeDasharray="3 3" opacity={0.3} />
                    <XAxis type="number" fontSize={11} tickFormatter={(v: number) => `$${v}`} />
                    <YAxis type="category" dataKey="persona_name" fontSize={11} width={110} />
                    <Tooltip />
                    <Bar dataKey="cost_usd" name="cost (USD)" fill="#7c3aed" />
                  </BarChart>
                </ResponsiveContainer>
              </div>
              <div className="h-64" data-chart="persona-tokens">
                <ResponsiveContainer>
                  <BarChart data={data.personas} layout="vertical" margin={{ left: 10 }}>
                    <CartesianGrid strokeDasharray="3 3" opacity={0.3} />
                    <XAxis type="number" fontSize={11} tickFormatter={(v: number) => tokens(v)} />
                    <YAxis type="category" dataKey="persona_name" fontSize={11} width={110} />
                    <Tooltip />
                    <Legend />
                    <Bar dataKey="input_tokens" name="tokens in" stackId="t" fill="#0ea5e9" />
                    <Bar dataKey="output_tokens" name="tokens out" stackId="t" fill="#14b8a6" />
                  </BarChart>
                </ResponsiveContainer>
              </div>
              <div className="h-64" data-chart="persona-duration">
                <ResponsiveContainer>
                  <BarChart data={data.personas} layout="vertical" margin={{ left: 10 }}>
                    <CartesianGrid strokeDasharray="3 3" opacity={0.3} />
                    <XAxis type="number" fontSize={11} tickFormatter={(v: number) => duration(v)} />
                    <YAxis type="category" dataKey="persona_name" fontSize={11} width={110} />
                    <Tooltip formatter={(v) => duration(Number(v))} />
                    <Legend />
                    <Bar dataKey="duration_p50_ms" name="p50" fill="#a78bfa" />
                    <Bar dataKey="duration_p95_ms" name="p95" fill="#6d28d9" />
                  </BarChart>
                </ResponsiveContainer>
              </div>
            </div>
            <table className="w-full text-sm">
              <thead className="text-left text-xs uppercase text-zinc-500">
                <tr><th className="px-4 py-2">Persona</th><th>Runs</th><th>Success</th><th>Cost</th><th>Tokens in/out</th><th>p50</th><th>p95</th></tr>
              </thead>
              <tbody className="divide-y divide-zinc-100 dark:divide-zinc-800">
                {data.personas.map((p) => (
                  <tr key={p.persona_id ?? p.persona_name}>
                    <td className="px-4 py-2 font-medium">{p.persona_name}</td>
                    <td>{p.runs}</td>
                    <td>{p.success_rate === null ? "—" : `${Math.round(p.success_rate * 100)}%`}</td>
                    <td>{money(p.cost_usd)}</td>
                    <td>{tokens(p.input_tokens)} / {tokens(p.output_tokens)}</td>
                    <td>{duration(p.duration_p50_ms)}</td>
                    <td>{duration(p.duration_p95_ms)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </Card>
        </div>
      )}
      <HealingCard />
    </div>
  );
}

/** Failures that need a person (with a suggested fix) and circuit breakers not closed. */
function HealingCard() {
  const { issues, breakers, all, loaded, refresh, resolve, resume } = useHealing();
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState<string | null>(null);
  useEffect(() => {
    refresh(false).catch((e) => setError(errorMessage(e)));
  }, [refresh]);
  const act = async (key: string, f: () => Promise<void>) => {
    setBusy(key);
    setError(null);
    try {
      await f();
    } catch (e) {
      setError(errorMessage(e));
    } finally {
      setBusy(null);
    }
  };
  return (
    <Card
      className="mt-6"
      title={<span className="flex items-center gap-1.5"><HeartPulse className="size-4" /> Healing issues</span>}
      action={
        <label className="flex items-center gap-1.5 text-xs text-zinc-500">
          <input type="checkbox" checked={all} onChange={(e) => refresh(e.target.checked).catch((err) => setError(errorMessage(err)))} /> Show resolved
        </label>
      }
    >
      <div data-section="healing">
        {error && <div className="p-4"><ErrorBox error={error} retry={() => refresh().catch((e) => setError(errorMessage(e)))} /></div>}
        {breakers.filter((b) => b.state !== "closed").map((b) => (
          <div key={b.scope} className="flex items-center gap-2 border-b border-zinc-100 px-4 py-2 text-sm dark:border-zinc-800" data-breaker-scope={b.scope}>
            <Badge tone="red">breaker {b.state}</Badge>
            <span className="font-medium">{b.persona_name ?? (b.scope === "provider" ? "model provider" : b.scope)}</span>
            <span className="truncate text-xs text-zinc-500">{b.reason}</span>
            {b.persona_name && b.state === "open" && (
              <Button className="ml-auto" size="sm" busy={busy === b.scope} onClick={() => act(b.scope, () => resume(b.persona_name!))}><Play className="size-3.5" /> Resume</Button>
            )}
          </div>
        ))}
        {!loaded && !error ? (
          <Spinner />
        ) : issues.length === 0 ? (
          <Empty icon={<CheckCircle2 className="size-8" />} title={all ? "No healing issues" : "No open healing issues"}>Failures the runtime cannot retry away show up here with a suggested fix.</Empty>
        ) : (
          <ul className="divide-y divide-zinc-100 dark:divide-zinc-800">
            {issues.map((i) => (
              <li key={i.id} className="px-4 py-3 text-sm" data-issue={i.id} data-issue-status={i.status}>
                <div className="flex flex-wrap items-center gap-2">
                  <span className="font-semibold">{i.title}</span>
                  <Badge tone={i.status === "open" ? "amber" : "zinc"}>{i.error_class}</Badge>
                  {i.occurrences > 1 && <Badge>×{i.occurrences}</Badge>}
                  <span className="text-xs text-zinc-500">{i.persona_name} · {ago(i.updated_at)}</span>
                  {i.status === "open" && (
                    <Button className="ml-auto" size="sm" variant="ghost" busy={busy === i.id} onClick={() => act(i.id, () => resolve(i.id))} aria-label={`Resolve ${i.title}`}>
                      <CheckCircle2 className="size-3.5" /> Resolve
                    </Button>
                  )}
                </div>
                <p className="mt-1 text-zinc-600 dark:text-zinc-300">Fix: {i.suggested_fix}</p>
                {i.detail && <p className="mt-1 truncate font-mono text-xs text-zinc-400">{i.detail}</p>}
                {i.execution_id && <Link className="text-xs text-accent-600" to={`/executions/${i.execution_id}`}>View the run</Link>}
              </li>
            ))}
          </ul>
        )}
      </div>
    </Card>
  );
}
