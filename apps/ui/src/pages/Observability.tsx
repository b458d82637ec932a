import { useState } from "react";
import { Bar, BarChart, CartesianGrid, Legend, Line, LineChart, ResponsiveContainer, Tooltip, XAxis, YAxis } from "recharts";
import { backend } from "../backend";
import { Card, Empty, ErrorBox, PageHeader, Spinner, Stat, inputClass } from "../components/ui";
import { duration, money, tokens, tzOffset } from "../lib/format";
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
            <div className="h-64 p-2">
              <ResponsiveContainer>
                <BarChart data={data.personas} layout="vertical" margin={{ left: 40 }}>
                  <CartesianGrid strokeDasharray="3 3" opacity={0.3} />
                  <XAxis type="number" fontSize={11} tickFormatter={(v: number) => `$${v}`} />
                  <YAxis type="category" dataKey="persona_name" fontSize={11} width={140} />
                  <Tooltip />
                  <Bar dataKey="cost_usd" name="cost (USD)" fill="#7c3aed" />
                </BarChart>
              </ResponsiveContainer>
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
    </div>
  );
}
