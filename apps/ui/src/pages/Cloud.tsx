// The Cloud page: connect this runtime to a Personas cloud (URL and token; the token is sealed in
// the vault by the runtime, never kept here), and while connected what the cloud is doing —
// orchestrators, workers idle or busy with their current run, queued runs, the Kafka lag on the
// execution topic, this month's usage — and disconnect. Cloud runs started here ("Execute in
// cloud" on a persona) are mirrored into the local history and open in the same execution view.
import { Cloud as CloudIcon, RefreshCw, Unplug } from "lucide-react";
import { useEffect, useState } from "react";
import { Link } from "react-router";
import { Badge, Button, Card, Empty, ErrorBox, Field, PageHeader, Spinner, Stat, inputClass } from "../components/ui";
import type { CloudStatus } from "../generated";
import { ago, duration, money } from "../lib/format";
import { connectErrors, summarize, useCloud } from "../stores/cloud";

function ConnectForm() {
  const connect = useCloud((s) => s.connect);
  const [url, setUrl] = useState("");
  const [token, setToken] = useState("");
  const [errs, setErrs] = useState<Record<string, string>>({});
  const [busy, setBusy] = useState(false);
  const submit = async () => {
    setBusy(true);
    setErrs({});
    try {
      await connect(url, token);
      setToken("");
    } catch (e) {
      setErrs(connectErrors(e));
    } finally {
      setBusy(false);
    }
  };
  return (
    <Card title="Connect to a cloud" className="p-0">
      <form
        className="space-y-4 p-4"
        onSubmit={(e) => {
          e.preventDefault();
          void submit();
        }}
      >
        {errs.general && <ErrorBox error={errs.general} />}
        <Field label="Orchestrator URL" htmlFor="cloud-url" error={errs.url} hint={<>What <code>make cloud-dev</code> printed as PERSONAS_CLOUD_URL, or your deployment&apos;s address.</>}>
          <input id="cloud-url" className={inputClass} value={url} onChange={(e) => setUrl(e.target.value)} placeholder="http://127.0.0.1:9500" autoComplete="url" />
        </Field>
        <Field label="Token" htmlFor="cloud-token" error={errs.token} hint="A JWT or the deployment's admin token. Kept sealed in the vault.">
          <input id="cloud-token" type="password" className={inputClass} value={token} onChange={(e) => setToken(e.target.value)} autoComplete="off" />
        </Field>
        <Button variant="primary" type="submit" busy={busy} disabled={!url.trim() || !token.trim()}>
          <CloudIcon className="size-4" /> Connect
        </Button>
      </form>
    </Card>
  );
}

function Connected({ status }: { status: CloudStatus }) {
  const disconnect = useCloud((s) => s.disconnect);
  const [busy, setBusy] = useState(false);
  const c = status.cluster ? summarize(status.cluster) : null;
  return (
    <div className="space-y-6">
      <Card
        title={
          <span className="flex items-center gap-2">
            {status.url} {status.reachable ? <Badge tone="green">reachable</Badge> : <Badge tone="red">unreachable</Badge>}
          </span>
        }
        action={
          <Button
            busy={busy}
            onClick={async () => {
              setBusy(true);
              try {
                await disconnect();
              } finally {
                setBusy(false);
              }
            }}
          >
            <Unplug className="size-4" /> Disconnect
          </Button>
        }
      >
        <div className="space-y-1 p-4 text-sm">
          {status.identity && (
            <p>
              Tenant <code>{status.identity.tenant_id}</code> as <code>{status.identity.subject}</code>
            </p>
          )}
          {status.error && <p className="text-red-600 dark:text-red-400" data-cloud-error>{status.error}</p>}
          {status.mirrors_pending > 0 && <p className="text-zinc-500">{status.mirrors_pending} cloud run(s) being mirrored here.</p>}
        </div>
      </Card>
      {c && (
        <div className="grid grid-cols-2 gap-4 lg:grid-cols-5" data-cloud-cluster>
          <Stat label="Orchestrators" value={c.orchestrators} />
          <Stat label="Workers busy" value={c.busy} sub={`${c.idle} idle`} />
          <Stat label="Queued" value={c.queued} />
          <Stat label="Kafka lag" value={c.lag ?? "—"} sub="execution topic" />
          <Stat label="This month" value={status.usage ? money(status.usage.cost_usd) : "—"} sub={status.usage ? `${status.usage.executions} runs · ${duration(status.usage.duration_ms)}` : undefined} />
        </div>
      )}
      {c && (
        <Card title="Workers" className="p-0">
          {c.byState.length === 0 ? (
            <Empty title="No workers connected" />
          ) : (
            <table className="w-full text-sm">
              <thead className="text-left text-xs text-zinc-500">
                <tr>
                  <th className="px-4 py-2">Worker</th>
                  <th className="px-4 py-2">Orchestrator</th>
                  <th className="px-4 py-2">State</th>
                  <th className="px-4 py-2">Running</th>
                  <th className="px-4 py-2">Heartbeat</th>
                </tr>
              </thead>
              <tbody className="divide-y divide-zinc-100 dark:divide-zinc-800">
                {c.byState.map((w) => (
                  <tr key={w.id} data-worker={w.id} data-state={w.state}>
                    <td className="px-4 py-2 font-mono text-xs">{w.id}</td>
                    <td className="px-4 py-2 font-mono text-xs">{w.orchestrator_id}</td>
                    <td className="px-4 py-2">{w.state === "busy" ? <Badge tone="amber">busy</Badge> : <Badge tone="green">idle</Badge>}</td>
                    <td className="px-4 py-2">
                      {w.running.map((id) => (
                        <Link key={id} to={`/executions/${id}`} className="font-mono text-xs text-accent-700 hover:underline dark:text-violet-300">
                          {id.slice(0, 8)}
                        </Link>
                      ))}
                    </td>
                    <td className="px-4 py-2 text-xs text-zinc-500">{ago(w.heartbeat_at)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
        </Card>
      )}
    </div>
  );
}

export function CloudPage() {
  const { status, error, loading, refresh } = useCloud();
  useEffect(() => {
    void refresh();
  }, [refresh]);
  return (
    <div data-page="cloud">
      <PageHeader
        title="Cloud"
        subtitle="Run personas around the clock on a Personas cloud; its runs show up here like local ones."
        actions={
          <Button onClick={() => void refresh()} busy={loading} aria-label="Refresh">
            <RefreshCw className="size-4" />
          </Button>
        }
      />
      {error && <ErrorBox error={error} retry={() => void refresh()} />}
      {!status ? <Spinner /> : status.connected ? <Connected status={status} /> : <ConnectForm />}
    </div>
  );
}
