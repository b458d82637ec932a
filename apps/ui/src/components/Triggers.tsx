// A persona's triggers in its editor: the list (enable/disable, remove, next fires, a webhook's URL
// and how to sign; its secret shown once after creation, then only on Reveal or Rotate) and a form
// to add a cron schedule (with a live next-fire preview and an inline error while the expression
// is invalid), a webhook (Personas- or GitHub-signed), an event subscription or a chain.
import { Check, Clock, Copy, Eye, Link2, Plus, Radio, RefreshCw, Trash2, Webhook } from "lucide-react";
import { useEffect, useState } from "react";
import { BackendError, backend, errorMessage } from "../backend";
import type { ChainOn, CronPreview, Persona, TriggerInput, TriggerView } from "../generated";
import { usePersonas } from "../stores/personas";
import { useTriggers } from "../stores/triggers";
import { Badge, Button, Card, Empty, ErrorBox, Field, Spinner, cx, inputClass } from "./ui";

type Kind = "cron" | "webhook" | "event" | "chain";

function CopyButton({ text, label }: { text: string; label: string }) {
  const [done, setDone] = useState(false);
  return (
    <Button
      size="sm"
      variant="ghost"
      aria-label={label}
      onClick={() => {
        void navigator.clipboard?.writeText(text).then(() => {
          setDone(true);
          setTimeout(() => setDone(false), 1500);
        });
      }}
    >
      {done ? <Check className="size-3.5" /> : <Copy className="size-3.5" />}
    </Button>
  );
}

/** A webhook's URL, how to sign, and its secret while it is on screen (with Reveal / Rotate). */
function WebhookDetails({ v }: { v: TriggerView }) {
  const { shown, reveal, rotate, hideSecret } = useTriggers();
  const [err, setErr] = useState<string | null>(null);
  const [confirmRotate, setConfirmRotate] = useState(false);
  const t = v.trigger;
  const hook = v.webhook;
  if (!hook) return null;
  const mine = shown?.triggerId === t.id ? shown : null;
  const act = (f: () => Promise<unknown>) => () => {
    setErr(null);
    f().catch((e) => setErr(errorMessage(e)));
  };
  return (
    <div className="space-y-1 pl-6 text-xs">
      <div className="flex items-center gap-1">
        <code className="flex-1 truncate rounded bg-zinc-50 px-1.5 py-0.5 dark:bg-zinc-950" data-webhook-url>{hook.url}</code>
        <CopyButton text={hook.url} label="Copy webhook URL" />
      </div>
      {mine ? (
        <div className="space-y-1 rounded-md bg-amber-50 p-2 ring-1 ring-amber-200 dark:bg-amber-950/30 dark:ring-amber-900" data-webhook-secret-panel>
          <p className="font-medium">
            {mine.why === "created" ? "Secret — shown once: copy it now." : mine.why === "rotated" ? "New secret — the old one no longer works." : "Secret"}
          </p>
          <div className="flex items-center gap-1">
            <code className="flex-1 truncate rounded bg-white px-1.5 py-0.5 dark:bg-zinc-950" data-webhook-secret>{mine.secret}</code>
            <CopyButton text={mine.secret} label="Copy webhook secret" />
            <Button size="sm" variant="ghost" onClick={hideSecret}>Hide</Button>
          </div>
        </div>
      ) : (
        <div className="flex items-center gap-1">
          <span className="flex-1 text-zinc-500">Secret kept encrypted in the vault.</span>
          <Button size="sm" variant="ghost" aria-label={`Reveal secret of ${v.summary}`} onClick={act(() => reveal(t.id))}>
            <Eye className="size-3.5" /> Reveal
          </Button>
          {confirmRotate ? (
            <>
              <Button size="sm" variant="danger" onClick={act(async () => (setConfirmRotate(false), await rotate(t.id)))}>Rotate: the old secret stops working</Button>
              <Button size="sm" variant="ghost" onClick={() => setConfirmRotate(false)}>Cancel</Button>
            </>
          ) : (
            <Button size="sm" variant="ghost" aria-label={`Rotate secret of ${v.summary}`} onClick={() => setConfirmRotate(true)}>
              <RefreshCw className="size-3.5" /> Rotate
            </Button>
          )}
        </div>
      )}
      <p className="text-zinc-500" data-webhook-signing>Sign each request: {hook.signing}</p>
      {err && <p role="alert" className="text-red-600">{err}</p>}
    </div>
  );
}

function Row({ v }: { v: TriggerView }) {
  const { setEnabled, remove } = useTriggers();
  const [err, setErr] = useState<string | null>(null);
  const t = v.trigger;
  const icon = { cron: Clock, webhook: Webhook, event: Radio, chain: Link2 }[t.kind as Kind] ?? Radio;
  const Icon = icon;
  const act = (f: () => Promise<void>) => () => {
    setErr(null);
    f().catch((e) => setErr(errorMessage(e)));
  };
  return (
    <li className="space-y-1.5 px-4 py-3 text-sm" data-trigger={t.kind} data-trigger-id={t.id}>
      <div className="flex items-center gap-2">
        <Icon className="size-4 shrink-0 text-zinc-500" aria-hidden />
        <span className={cx("flex-1", !t.enabled && "text-zinc-400 line-through")}>{v.summary}</span>
        <label className="flex items-center gap-1 text-xs">
          <input type="checkbox" checked={t.enabled} onChange={act(() => setEnabled(t.id, !t.enabled))} aria-label={`Enable ${v.summary}`} /> on
        </label>
        <Button size="sm" variant="ghost" aria-label={`Remove ${v.summary}`} onClick={act(() => remove(t.id))}>
          <Trash2 className="size-3.5" />
        </Button>
      </div>
      {v.next_fires_local.length > 0 && t.enabled && (
        <p className="pl-6 text-xs text-zinc-500">Next: {v.next_fires_local.slice(0, 2).join(" · ")}</p>
      )}
      <WebhookDetails v={v} />
      {t.last_error && <p className="pl-6 text-xs text-red-600 dark:text-red-400">{t.last_error}</p>}
      {err && <p role="alert" className="pl-6 text-xs text-red-600">{err}</p>}
    </li>
  );
}

/** Previews a cron expression as it is typed; answers null while it is empty. */
function useCronPreview(cron: string, tz: string) {
  const [preview, setPreview] = useState<CronPreview | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    if (!cron.trim()) {
      setPreview(null);
      setError(null);
      return;
    }
    let live = true;
    const timer = setTimeout(() => {
      backend()
        .call("preview_cron", tz.trim() ? { cron, tz, count: 3 } : { cron, count: 3 })
        .then((p) => live && (setPreview(p), setError(null)))
        .catch((e) => live && (setPreview(null), setError(errorMessage(e))));
    }, 200);
    return () => {
      live = false;
      clearTimeout(timer);
    };
  }, [cron, tz]);
  return { preview, error };
}

function AddForm({ persona, others }: { persona: Persona; others: Persona[] }) {
  const add = useTriggers((s) => s.add);
  const [kind, setKind] = useState<Kind>("cron");
  const [cron, setCron] = useState("");
  const [tz, setTz] = useState("");
  const [event, setEvent] = useState("");
  const [source, setSource] = useState("");
  const [chain, setChain] = useState("");
  const [on, setOn] = useState<ChainOn>("completed");
  const [github, setGithub] = useState(false);
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [busy, setBusy] = useState(false);
  const { preview, error: cronError } = useCronPreview(kind === "cron" ? cron : "", tz);

  const submit = async () => {
    let trigger: TriggerInput;
    const local: Record<string, string> = {};
    if (kind === "cron") {
      if (!cron.trim()) local.cron = "Give a schedule, e.g. 0 8 * * 1-5.";
      else if (cronError) local.cron = cronError;
      trigger = tz.trim() ? { kind: "cron", cron, tz } : { kind: "cron", cron };
    } else if (kind === "webhook") {
      trigger = github ? { kind: "webhook", github: true } : { kind: "webhook" };
    } else if (kind === "event") {
      if (!event.trim()) local.event = "Name the event type, e.g. ticket.created or ticket.*";
      trigger = source ? { kind: "event", event, source } : { kind: "event", event };
    } else {
      if (!chain) local.chain = "Pick the persona to run after.";
      trigger = { kind: "chain", chain, on };
    }
    setErrors(local);
    if (Object.keys(local).length) return;
    setBusy(true);
    try {
      await add({ persona: persona.id, trigger });
      setCron("");
      setEvent("");
    } catch (e) {
      if (e instanceof BackendError && e.field) setErrors({ [e.field]: e.message });
      else setErrors({ general: errorMessage(e) });
    } finally {
      setBusy(false);
    }
  };

  const cronShownError = errors.cron ?? (kind === "cron" ? cronError : null);
  return (
    <form
      className="space-y-3 border-t border-zinc-100 p-4 dark:border-zinc-800"
      data-form="trigger"
      onSubmit={(e) => {
        e.preventDefault();
        void submit();
      }}
    >
      <div role="radiogroup" aria-label="Trigger kind" className="flex flex-wrap gap-1">
        {(["cron", "webhook", "event", "chain"] as Kind[]).map((k) => (
          <button
            type="button"
            key={k}
            role="radio"
            aria-checked={kind === k}
            onClick={() => {
              setKind(k);
              setErrors({});
            }}
            className={cx("rounded-md px-2 py-1 text-xs ring-1", kind === k ? "bg-accent-600 text-white ring-accent-600" : "ring-zinc-200 dark:ring-zinc-700")}
          >
            {{ cron: "Schedule", webhook: "Webhook", event: "Event", chain: "Chain" }[k]}
          </button>
        ))}
      </div>
      {errors.general && <p role="alert" className="text-xs text-red-600">{errors.general}</p>}
      {kind === "cron" && (
        <>
          <Field label="Cron" htmlFor="trigger-cron" error={cronShownError} hint={preview ? `Next: ${preview.next_local.join(" · ")}` : "minute hour day month weekday, e.g. 0 8 * * 1-5"}>
            <input id="trigger-cron" className={cx(inputClass, "font-mono")} value={cron} onChange={(e) => {
                setCron(e.target.value);
                // The live preview speaks for the new expression; an earlier refusal no longer does.
                setErrors(({ cron: _, ...rest }) => rest);
              }} placeholder="0 8 * * 1-5" aria-invalid={!!cronShownError} />
          </Field>
          <Field label="Time zone" htmlFor="trigger-tz" error={errors.tz} hint={preview ? `Using ${preview.tz}` : "Blank: the runtime machine's zone."}>
            <input id="trigger-tz" className={inputClass} value={tz} onChange={(e) => setTz(e.target.value)} placeholder="Europe/Prague" />
          </Field>
        </>
      )}
      {kind === "webhook" && (
        <div className="space-y-1 text-xs text-zinc-500">
          <p>A URL and a signing secret are made for it. The secret is shown once when added (Reveal shows it again).</p>
          <label className="flex items-center gap-1.5">
            <input type="checkbox" checked={github} onChange={(e) => setGithub(e.target.checked)} /> Signed by GitHub (X-Hub-Signature-256), for a repository's webhook
          </label>
        </div>
      )}
      {kind === "event" && (
        <>
          <Field label="Event type" htmlFor="trigger-event" error={errors.event} hint="Exact, or a prefix ending in *.">
            <input id="trigger-event" className={cx(inputClass, "font-mono")} value={event} onChange={(e) => setEvent(e.target.value)} placeholder="ticket.created" />
          </Field>
          <Field label="Only from" htmlFor="trigger-source" error={errors.source}>
            <select id="trigger-source" className={inputClass} value={source} onChange={(e) => setSource(e.target.value)}>
              <option value="">Any source</option>
              {others.map((p) => (
                <option key={p.id} value={p.id}>{p.name}</option>
              ))}
              {["webhook", "schedule", "user"].map((k) => (
                <option key={k} value={k}>any {k}</option>
              ))}
            </select>
          </Field>
        </>
      )}
      {kind === "chain" && (
        <div className="grid grid-cols-2 gap-3">
          <Field label="Run after" htmlFor="trigger-chain" error={errors.chain}>
            <select id="trigger-chain" className={inputClass} value={chain} onChange={(e) => setChain(e.target.value)}>
              <option value="">Pick a persona</option>
              {others.map((p) => (
                <option key={p.id} value={p.id}>{p.name}</option>
              ))}
            </select>
          </Field>
          <Field label="When it" htmlFor="trigger-on" error={errors.on}>
            <select id="trigger-on" className={inputClass} value={on} onChange={(e) => setOn(e.target.value as ChainOn)}>
              <option value="completed">completes</option>
              <option value="failed">fails</option>
              <option value="any">ends either way</option>
            </select>
          </Field>
        </div>
      )}
      <Button type="submit" size="sm" busy={busy}>
        <Plus className="size-3.5" /> Add trigger
      </Button>
    </form>
  );
}

export function TriggersCard({ persona }: { persona: Persona }) {
  const { list, loaded, error, load } = useTriggers();
  const personas = usePersonas((s) => s.list);
  useEffect(() => {
    void load();
  }, [load, persona.id]);
  const mine = list.filter((v) => v.trigger.persona_id === persona.id);
  return (
    <Card title="Triggers" className="p-0" action={<Badge>{mine.length}</Badge>}>
      <div data-section="triggers">
        {error && <ErrorBox error={error} retry={() => void load()} />}
        {!loaded ? (
          <Spinner />
        ) : mine.length === 0 ? (
          <Empty title="Runs only by hand">Add a schedule, a webhook, an event subscription or a chain.</Empty>
        ) : (
          <ul className="divide-y divide-zinc-100 dark:divide-zinc-800">
            {mine.map((v) => (
              <Row key={v.trigger.id} v={v} />
            ))}
          </ul>
        )}
        <AddForm persona={persona} others={personas.filter((p) => p.id !== persona.id)} />
      </div>
    </Card>
  );
}
