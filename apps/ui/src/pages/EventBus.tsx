// The event bus, live: one animated lane per kind of source, a filtered feed of events with what
// each caused, the dead letters with a Retry button, and a form to emit an event (its payload is
// checked as JSON before anything is sent). Everything moves with the WebSocket stream.
import { AnimatePresence, motion } from "framer-motion";
import { RadioTower, RotateCcw, Send, Skull } from "lucide-react";
import { useEffect, useMemo, useState } from "react";
import { Link } from "react-router";
import { BackendError, errorMessage } from "../backend";
import { Badge, Button, Card, Empty, ErrorBox, Field, PageHeader, Spinner, cx, inputClass } from "../components/ui";
import type { EventRow, EventStatus, SourceKind } from "../generated";
import { useApp } from "../stores/app";
import { EVENT_STATUSES, EVENT_STATUS_LABELS, type FeedEntry, LANES, filterFeed, useBus } from "../stores/bus";
import { usePersonas } from "../stores/personas";

const tone: Record<EventStatus, "zinc" | "green" | "red" | "amber" | "blue" | "violet"> = {
  pending: "zinc",
  processing: "blue",
  delivered: "green",
  skipped: "amber",
  failed: "red",
  dead_letter: "red",
};

const dot: Record<EventStatus, string> = {
  pending: "bg-zinc-400",
  processing: "bg-sky-500",
  delivered: "bg-emerald-500",
  skipped: "bg-amber-400",
  failed: "bg-red-500",
  dead_letter: "bg-red-700",
};

function EventStatusBadge({ status }: { status: EventStatus }) {
  return (
    <Badge tone={tone[status]}>
      <span data-event-status-label={status}>{EVENT_STATUS_LABELS[status]}</span>
    </Badge>
  );
}

const time = (t: string) => new Date(t).toLocaleTimeString();

/** Per source kind, the latest events sliding in from the left. */
function Lanes({ entries, onPick, picked }: { entries: FeedEntry[]; onPick: (id: string) => void; picked: string | null }) {
  const byLane = useMemo(() => {
    const m = new Map<string, FeedEntry[]>();
    for (const e of entries) {
      const l = m.get(e.event.source_kind) ?? [];
      if (l.length < 14) l.push(e);
      m.set(e.event.source_kind, l);
    }
    return m;
  }, [entries]);
  return (
    <div className="divide-y divide-zinc-100 dark:divide-zinc-800" aria-label="Events by source">
      {LANES.map((lane) => {
        const items = byLane.get(lane) ?? [];
        return (
          <div key={lane} className="flex items-center gap-3 px-4 py-2" data-lane={lane}>
            <span className="w-20 shrink-0 text-xs font-medium uppercase tracking-wide text-zinc-500">{lane}</span>
            <div className="relative flex h-8 flex-1 items-center gap-1.5 overflow-hidden">
              <div className="absolute inset-x-0 top-1/2 h-px bg-zinc-200 dark:bg-zinc-800" aria-hidden />
              <AnimatePresence initial={false}>
                {items.map((e) => (
                  <motion.button
                    key={e.event.id}
                    layout
                    initial={{ x: -40, opacity: 0, scale: 0.6 }}
                    animate={{ x: 0, opacity: 1, scale: 1 }}
                    exit={{ opacity: 0, scale: 0.6 }}
                    transition={{ type: "spring", stiffness: 300, damping: 26 }}
                    onClick={() => onPick(e.event.id)}
                    title={`${e.event.event_type} · ${e.event.status}`}
                    aria-label={`${e.event.event_type}, ${e.event.status.replace("_", " ")}, ${time(e.event.created_at)}`}
                    className={cx(
                      "relative z-10 flex items-center gap-1 rounded-full bg-white px-2 py-0.5 text-xs ring-1 ring-zinc-200 dark:bg-zinc-900 dark:ring-zinc-700",
                      picked === e.event.id && "ring-2 ring-accent-500",
                    )}
                  >
                    <span className={cx("size-2 rounded-full", dot[e.event.status], e.event.status === "processing" && "animate-pulse")} aria-hidden />
                    <span className="max-w-32 truncate font-mono">{e.event.event_type}</span>
                  </motion.button>
                ))}
              </AnimatePresence>
              {items.length === 0 && <span className="relative z-10 bg-white px-1 text-xs text-zinc-400 dark:bg-zinc-900">quiet</span>}
            </div>
          </div>
        );
      })}
    </div>
  );
}

function Executions({ ids }: { ids: string[] }) {
  if (ids.length === 0) return null;
  return (
    <span className="flex flex-wrap gap-1">
      {ids.map((id) => (
        <Link key={id} to={`/executions/${id}`} className="font-mono text-xs text-accent-700 underline dark:text-violet-300" data-event-execution={id}>
          run …{id.slice(-8)}
        </Link>
      ))}
    </span>
  );
}

function Details({ entry }: { entry: FeedEntry }) {
  const refresh = useBus((s) => s.refresh);
  const e = entry.event;
  useEffect(() => {
    void refresh(e.id).catch(() => undefined);
  }, [e.id, e.status, refresh]);
  return (
    <div className="space-y-3 p-4 text-sm" data-event-details={e.id}>
      <div className="flex flex-wrap items-center gap-2">
        <span className="font-mono font-medium">{e.event_type}</span>
        <EventStatusBadge status={e.status} />
        <span className="text-xs text-zinc-500">
          from {e.source_kind}
          {e.source_id ? ` ${e.source_id}` : ""} · {new Date(e.created_at).toLocaleString()} · attempt {e.attempts}
        </span>
      </div>
      {e.error && <p className="text-xs text-red-600 dark:text-red-400">{e.error}</p>}
      <pre className="max-h-48 overflow-auto rounded-lg bg-zinc-50 p-3 font-mono text-xs dark:bg-zinc-950">{JSON.stringify(e.payload, null, 2)}</pre>
      <div>
        <h3 className="mb-1 text-xs font-semibold uppercase tracking-wide text-zinc-500">Deliveries</h3>
        {entry.deliveries === null ? (
          <Spinner />
        ) : entry.deliveries.length === 0 ? (
          <p className="text-xs text-zinc-500">No recipient yet.</p>
        ) : (
          <ul className="space-y-1">
            {entry.deliveries.map((d, i) => (
              <li key={i} className="flex flex-wrap items-center gap-2 text-xs">
                <span className="font-medium">{d.persona_name}</span>
                <Badge tone={d.status === "delivered" ? "green" : "zinc"}>{d.status}</Badge>
                <span className="text-zinc-500">via {d.target}</span>
                {d.execution_id && <Executions ids={[d.execution_id]} />}
                {d.error && <span className="text-red-600 dark:text-red-400">{d.error}</span>}
              </li>
            ))}
          </ul>
        )}
      </div>
    </div>
  );
}

function DeadLetters({ entries }: { entries: FeedEntry[] }) {
  const retry = useBus((s) => s.retry);
  const [busy, setBusy] = useState<string | null>(null);
  const [err, setErr] = useState<string | null>(null);
  const dead = entries.filter((e) => e.event.status === "dead_letter");
  return (
    <Card title={<span className="flex items-center gap-1.5"><Skull className="size-4" /> Dead letters</span>} className="p-0">
      {err && <ErrorBox error={err} />}
      {dead.length === 0 ? (
        <Empty title="No dead letters">Events that could not be delivered after every attempt wait here to be retried.</Empty>
      ) : (
        <ul className="divide-y divide-zinc-100 dark:divide-zinc-800" data-dead-letters>
          {dead.map((e) => (
            <li key={e.event.id} className="flex items-start gap-3 px-4 py-3 text-sm" data-dead-letter={e.event.event_type}>
              <div className="min-w-0 flex-1">
                <div className="font-mono">{e.event.event_type}</div>
                <div className="text-xs text-red-600 dark:text-red-400">{e.event.error ?? "undeliverable"}</div>
                <div className="text-xs text-zinc-500">
                  {time(e.event.created_at)} · {e.event.attempts} attempt{e.event.attempts === 1 ? "" : "s"}
                </div>
              </div>
              <Button
                size="sm"
                busy={busy === e.event.id}
                aria-label={`Retry ${e.event.event_type}`}
                onClick={async () => {
                  setBusy(e.event.id);
                  setErr(null);
                  try {
                    await retry(e.event.id);
                  } catch (x) {
                    setErr(errorMessage(x));
                  } finally {
                    setBusy(null);
                  }
                }}
              >
                <RotateCcw className="size-3.5" /> Retry
              </Button>
            </li>
          ))}
        </ul>
      )}
    </Card>
  );
}

/** Parses the payload box: empty is `{}`. Returns an error message for bad JSON. */
export function parsePayload(text: string): { ok: true; value: unknown } | { ok: false; error: string } {
  if (!text.trim()) return { ok: true, value: {} };
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch (e) {
    return { ok: false, error: `Payload is not valid JSON: ${(e as Error).message}` };
  }
}

function EmitForm({ onSent }: { onSent: (e: EventRow) => void }) {
  const personas = usePersonas((s) => s.list);
  const emit = useBus((s) => s.emit);
  const [type, setType] = useState("");
  const [payload, setPayload] = useState("");
  const [target, setTarget] = useState("");
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [busy, setBusy] = useState(false);
  const send = async () => {
    const next: Record<string, string> = {};
    if (!type.trim()) next.type = "Give the event a type, e.g. ticket.created.";
    const p = parsePayload(payload);
    if (!p.ok) next.payload = p.error;
    setErrors(next);
    if (Object.keys(next).length || !p.ok) return;
    setBusy(true);
    try {
      const row = await emit(type.trim(), p.value, target || undefined);
      onSent(row);
    } catch (e) {
      if (e instanceof BackendError && e.field) setErrors({ [e.field]: e.message });
      else setErrors({ general: errorMessage(e) });
    } finally {
      setBusy(false);
    }
  };
  return (
    <Card title={<span className="flex items-center gap-1.5"><Send className="size-4" /> Emit an event</span>} className="p-0">
      <form
        className="space-y-3 p-4"
        data-form="emit-event"
        onSubmit={(e) => {
          e.preventDefault();
          void send();
        }}
      >
        {errors.general && <p role="alert" className="text-xs text-red-600">{errors.general}</p>}
        <Field label="Event type" htmlFor="emit-type" error={errors.type} hint="Subscribers of this type run with the payload.">
          <input id="emit-type" className={cx(inputClass, "font-mono")} value={type} onChange={(e) => setType(e.target.value)} placeholder="ticket.created" />
        </Field>
        <Field label="Payload (JSON)" htmlFor="emit-payload" error={errors.payload}>
          <textarea id="emit-payload" rows={4} className={cx(inputClass, "font-mono text-xs")} value={payload} onChange={(e) => setPayload(e.target.value)} placeholder='{"id": 42}' />
        </Field>
        <Field label="Deliver to" htmlFor="emit-target" error={errors.target}>
          <select id="emit-target" className={inputClass} value={target} onChange={(e) => setTarget(e.target.value)}>
            <option value="">Its subscribers</option>
            {personas.map((p) => (
              <option key={p.id} value={p.id}>
                Only {p.name}
              </option>
            ))}
          </select>
        </Field>
        <Button type="submit" variant="primary" busy={busy}>
          <Send className="size-4" /> Emit
        </Button>
      </form>
    </Card>
  );
}

export function EventBus() {
  const bus = useBus();
  const epoch = useApp((s) => s.epochVersion);
  const [type, setType] = useState("");
  const [status, setStatus] = useState<EventStatus | "">("");
  const [source, setSource] = useState<SourceKind | "">("");
  const [picked, setPicked] = useState<string | null>(null);
  const load = bus.load;
  useEffect(() => {
    // Dead letters are read on their own so an old one is never lost behind newer events.
    void Promise.all([load(), load({ status: "dead_letter" })]).catch(() => undefined);
  }, [load, epoch]);
  const feed = { byId: bus.byId, order: bus.order, rev: bus.rev };
  const all = filterFeed(feed, {});
  const shown = filterFeed(feed, { type, status: status || undefined, source: source || undefined });
  const pickedEntry = picked ? bus.byId[picked] : null;
  return (
    <div data-page="bus">
      <PageHeader title="Event bus" subtitle="Events as they are published and delivered, live." />
      {bus.error && <ErrorBox error={bus.error} retry={() => void load().catch(() => undefined)} />}
      <Card title="Live" className="mb-6 p-0">
        {!bus.loaded ? <Spinner /> : <Lanes entries={all} onPick={setPicked} picked={picked} />}
      </Card>
      <div className="grid gap-6 lg:grid-cols-3">
        <div className="space-y-6 lg:col-span-2">
          <Card
            title="Events"
            className="p-0"
            action={
              <div className="flex gap-2">
                <input aria-label="Filter by type" className={cx(inputClass, "w-40 py-1 text-xs")} placeholder="type, e.g. ticket.*" value={type} onChange={(e) => setType(e.target.value)} />
                <select aria-label="Filter by status" className={cx(inputClass, "w-32 py-1 text-xs")} value={status} onChange={(e) => setStatus(e.target.value as EventStatus | "")}>
                  <option value="">All statuses</option>
                  {EVENT_STATUSES.map((s) => (
                    <option key={s} value={s}>{EVENT_STATUS_LABELS[s]}</option>
                  ))}
                </select>
                <select aria-label="Filter by source" className={cx(inputClass, "w-32 py-1 text-xs")} value={source} onChange={(e) => setSource(e.target.value as SourceKind | "")}>
                  <option value="">All sources</option>
                  {LANES.map((s) => (
                    <option key={s} value={s}>{s}</option>
                  ))}
                </select>
              </div>
            }
          >
            {!bus.loaded ? (
              <Spinner />
            ) : shown.length === 0 ? (
              <Empty icon={<RadioTower className="size-8" />} title={all.length ? "No event matches these filters" : "No events yet"}>
                {all.length ? null : "Emit one here, or let a schedule, webhook or persona publish one."}
              </Empty>
            ) : (
              <table className="w-full text-left text-sm">
                <thead className="text-xs uppercase tracking-wide text-zinc-500">
                  <tr>
                    <th className="px-4 py-2 font-medium">Time</th>
                    <th className="px-2 py-2 font-medium">Type</th>
                    <th className="px-2 py-2 font-medium">Source</th>
                    <th className="px-2 py-2 font-medium">Status</th>
                    <th className="px-2 py-2 font-medium">Caused</th>
                  </tr>
                </thead>
                <tbody className="divide-y divide-zinc-100 dark:divide-zinc-800">
                  {shown.map((e) => (
                    <tr
                      key={e.event.id}
                      data-event-type={e.event.event_type}
                      data-event-status={e.event.status}
                      className={cx("cursor-pointer hover:bg-zinc-50 dark:hover:bg-zinc-800/50", picked === e.event.id && "bg-accent-50 dark:bg-violet-950/40")}
                      onClick={() => setPicked(e.event.id)}
                    >
                      <td className="px-4 py-2 text-xs tabular-nums text-zinc-500">{time(e.event.created_at)}</td>
                      <td className="px-2 py-2">
                        <button className="font-mono text-left hover:underline" onClick={() => setPicked(e.event.id)}>
                          {e.event.event_type}
                        </button>
                      </td>
                      <td className="px-2 py-2 text-xs">{e.event.source_kind}</td>
                      <td className="px-2 py-2">
                        <EventStatusBadge status={e.event.status} />
                      </td>
                      <td className="px-2 py-2">
                        <Executions ids={e.executions} />
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            )}
          </Card>
          {pickedEntry && (
            <Card title="Event" className="p-0">
              <Details entry={pickedEntry} />
            </Card>
          )}
        </div>
        <div className="space-y-6">
          <EmitForm onSent={(row) => setPicked(row.id)} />
          <DeadLetters entries={all} />
        </div>
      </div>
    </div>
  );
}
