// The persona editor's oversight cards: notification channels, budgets and the circuit
// breaker (policy), and the persona's memories. Each card loads and saves on its own, so the
// editor's Save button stays about the persona's spec.
import { Bell, Brain, PauseCircle, Play, Plus, Send, Trash2, Wallet } from "lucide-react";
import { useState } from "react";
import { Link } from "react-router";
import { BackendError, backend, errorMessage } from "../backend";
import type { Channel, ChannelKind, ChannelTest, OnReject, Persona, PersonaPolicy, Policy, TimeoutAction } from "../generated";
import { ago } from "../lib/format";
import { useQuery } from "../lib/useQuery";
import { Badge, Button, Card, ErrorBox, Field, Spinner, inputClass } from "./ui";

/** Example settings per channel kind (every `ChannelKind`, so a new kind fails `tsc` until it
 * has one); secret fields are `credential:NAME.FIELD` references to the vault. */
export const CHANNEL_EXAMPLES = {
  slack: { webhook_url: "credential:slack.url" },
  telegram: { bot_token: "credential:telegram.token", chat_id: "12345" },
  email: { url: "smtps://smtp.example.com", username: "me", password: "credential:smtp.password", from: "me@example.com", to: ["me@example.com"] },
  webhook: { url: "https://example.com/hook", secret: "credential:hook.token" },
  desktop: {},
} as const satisfies Record<ChannelKind, object>;
const CHANNEL_KINDS = Object.keys(CHANNEL_EXAMPLES) as ChannelKind[];

/** What an undecided review does at its deadline, and what a rejection does to the run. */
const TIMEOUT_ACTIONS = { approve: "approve", reject: "reject", cancel: "cancel" } as const satisfies Record<TimeoutAction, string>;
const ON_REJECT = { resume: "resume", end: "end" } as const satisfies Record<OnReject, string>;

function fieldErrors(e: unknown): Record<string, string> {
  return { [e instanceof BackendError && e.field ? e.field : "general"]: errorMessage(e) };
}

export function ChannelsCard({ persona }: { persona: Persona }) {
  const { data, error, reload } = useQuery(() => backend().call("list_channels", { persona: persona.id }), [persona.id]);
  const [adding, setAdding] = useState(false);
  const [name, setName] = useState("");
  const [kind, setKind] = useState<ChannelKind>("slack");
  const [config, setConfig] = useState(JSON.stringify(CHANNEL_EXAMPLES.slack, null, 2));
  const [errs, setErrs] = useState<Record<string, string>>({});
  const [busy, setBusy] = useState(false);
  const [tests, setTests] = useState<Record<string, ChannelTest | "busy">>({});
  const add = async () => {
    setErrs({});
    let parsed: unknown;
    try {
      parsed = config.trim() ? JSON.parse(config) : {};
    } catch (e) {
      setErrs({ config: `config: not valid JSON (${(e as Error).message})` });
      return;
    }
    setBusy(true);
    try {
      await backend().call("add_channel", { persona: persona.id, name, kind, config: parsed });
      setAdding(false);
      setName("");
      reload();
    } catch (e) {
      setErrs(fieldErrors(e));
    } finally {
      setBusy(false);
    }
  };
  const test = async (c: Channel) => {
    setTests((t) => ({ ...t, [c.id]: "busy" }));
    try {
      const r = await backend().call("test_channel", { persona: persona.id, name: c.name });
      setTests((t) => ({ ...t, [c.id]: r }));
    } catch (e) {
      setTests((t) => ({ ...t, [c.id]: { ok: false, message: errorMessage(e) } }));
    }
  };
  const remove = async (c: Channel) => {
    if (!window.confirm(`Remove the ${c.kind} channel ${c.name}?`)) return;
    try {
      await backend().call("remove_channel", { persona: persona.id, name: c.name });
      reload();
    } catch (e) {
      setErrs(fieldErrors(e));
    }
  };
  const configError = Object.entries(errs).find(([k]) => k === "config" || k.startsWith("config."))?.[1];
  return (
    <Card
      title={<span className="flex items-center gap-1.5"><Bell className="size-4" /> Notification channels</span>}
      action={!adding && <Button size="sm" variant="ghost" onClick={() => setAdding(true)}><Plus className="size-4" /> Add channel</Button>}
      className="p-0"
    >
      <div className="space-y-3 p-4 text-sm" data-section="channels">
        {error && <ErrorBox error={error} retry={reload} />}
        {errs.general && <ErrorBox error={errs.general} />}
        {!data ? (
          !error && <Spinner />
        ) : data.channels.length === 0 && !adding ? (
          <p className="text-zinc-500">Messages and review requests stay in the app. Add Slack, Telegram, email, a signed webhook or desktop notifications.</p>
        ) : (
          <ul className="space-y-2">
            {data.channels.map((c) => {
              const t = tests[c.id];
              return (
                <li key={c.id} className="rounded-lg p-2 ring-1 ring-zinc-200 dark:ring-zinc-700" data-channel={c.name}>
                  <div className="flex items-center gap-2">
                    <Badge tone="violet">{c.kind}</Badge>
                    <span className="font-medium">{c.name}</span>
                    <span className="ml-auto flex gap-1">
                      <Button size="sm" variant="ghost" busy={t === "busy"} onClick={() => test(c)} aria-label={`Test channel ${c.name}`}><Send className="size-3.5" /> Test</Button>
                      <Button size="sm" variant="ghost" onClick={() => remove(c)} aria-label={`Remove channel ${c.name}`}><Trash2 className="size-3.5" /></Button>
                    </span>
                  </div>
                  {Object.keys(c.config as object).length > 0 && <code className="mt-1 block truncate text-xs text-zinc-500">{JSON.stringify(c.config)}</code>}
                  {t && t !== "busy" && (
                    <p className={t.ok ? "mt-1 text-xs text-emerald-600" : "mt-1 text-xs text-red-600"} data-channel-test={t.ok ? "ok" : "failed"}>{t.message}</p>
                  )}
                </li>
              );
            })}
          </ul>
        )}
        {adding && (
          <div className="space-y-3 rounded-lg p-3 ring-1 ring-accent-200 dark:ring-violet-900" data-form="channel">
            <div className="grid grid-cols-2 gap-3">
              <Field label="Channel name" htmlFor="channel-name" error={errs.name}>
                <input id="channel-name" className={inputClass} value={name} onChange={(e) => setName(e.target.value)} />
              </Field>
              <Field label="Type" htmlFor="channel-kind" error={errs.kind}>
                <select
                  id="channel-kind"
                  className={inputClass}
                  value={kind}
                  onChange={(e) => {
                    const k = e.target.value as ChannelKind;
                    setKind(k);
                    setConfig(JSON.stringify(CHANNEL_EXAMPLES[k], null, 2));
                  }}
                >
                  {CHANNEL_KINDS.map((k) => <option key={k} value={k}>{k}</option>)}
                </select>
              </Field>
            </div>
            <Field label="Settings (JSON)" htmlFor="channel-config" error={configError} hint={<>Secrets are never stored: add them as a credential and give <code>credential:NAME.FIELD</code> (or <code>env:NAME</code> for a variable <code>channel_env_allow</code> in config.toml lists), resolved when sending.</>}>
              <textarea id="channel-config" rows={5} className={`${inputClass} font-mono text-xs`} value={config} onChange={(e) => setConfig(e.target.value)} />
            </Field>
            <div className="flex gap-2">
              <Button variant="primary" size="sm" busy={busy} onClick={add}>Add channel</Button>
              <Button size="sm" variant="ghost" onClick={() => { setAdding(false); setErrs({}); }}>Cancel</Button>
            </div>
          </div>
        )}
      </div>
    </Card>
  );
}

type PolicyDraft = Record<keyof Policy, string>;
const toDraft = (p: Policy): PolicyDraft => ({
  review_timeout_secs: p.review_timeout_secs?.toString() ?? "",
  review_timeout_action: p.review_timeout_action ?? "",
  on_reject: p.on_reject ?? "",
  daily_budget_usd: p.daily_budget_usd?.toString() ?? "",
  monthly_budget_usd: p.monthly_budget_usd?.toString() ?? "",
  failure_threshold: p.failure_threshold?.toString() ?? "",
  max_retries: p.max_retries?.toString() ?? "",
});
const num = (s: string) => (s.trim() === "" ? null : Number(s));

/** A draft back into a policy; numbers the form cannot read are named by field. */
export function draftToPolicy(d: PolicyDraft): { policy: Policy } | { field: string; message: string } {
  const numbers = ["review_timeout_secs", "daily_budget_usd", "monthly_budget_usd", "failure_threshold", "max_retries"] as const;
  for (const f of numbers) {
    const v = num(d[f]);
    if (v !== null && !Number.isFinite(v)) return { field: `policy.${f}`, message: "must be a number" };
  }
  return {
    policy: {
      review_timeout_secs: num(d.review_timeout_secs),
      review_timeout_action: (d.review_timeout_action || null) as TimeoutAction | null,
      on_reject: (d.on_reject || null) as OnReject | null,
      daily_budget_usd: num(d.daily_budget_usd),
      monthly_budget_usd: num(d.monthly_budget_usd),
      failure_threshold: num(d.failure_threshold),
      max_retries: num(d.max_retries),
    },
  };
}

export function PolicyCard({ persona }: { persona: Persona }) {
  const { data, error, reload, setData } = useQuery(() => backend().call("get_policy", { persona: persona.id }), [persona.id]);
  const [draft, setDraft] = useState<PolicyDraft | null>(null);
  const [errs, setErrs] = useState<Record<string, string>>({});
  const [busy, setBusy] = useState<"save" | "resume" | null>(null);
  const [saved, setSaved] = useState(false);
  if (error) return <Card title="Budgets & healing"><ErrorBox error={error} retry={reload} /></Card>;
  if (!data) return <Card title="Budgets & healing"><Spinner /></Card>;
  const d = draft ?? toDraft(data.policy);
  const set = (k: keyof Policy, v: string) => {
    setDraft({ ...d, [k]: v });
    setSaved(false);
  };
  const act = async (what: "save" | "resume", f: () => Promise<PersonaPolicy>) => {
    setBusy(what);
    setErrs({});
    try {
      setData(await f());
      setDraft(null);
      if (what === "save") setSaved(true);
    } catch (e) {
      setErrs(fieldErrors(e));
    } finally {
      setBusy(null);
    }
  };
  const save = () => {
    const p = draftToPolicy(d);
    if ("field" in p) return setErrs({ [p.field]: `${p.field}: ${p.message}` });
    void act("save", () => backend().call("update_policy", { persona: persona.id, policy: p.policy }));
  };
  const def = data.defaults;
  const input = (k: keyof Policy, label: string, placeholder: string, step?: string) => (
    <Field label={label} htmlFor={`policy-${k}`} error={errs[`policy.${k}`]}>
      <input id={`policy-${k}`} type="number" min={0} step={step} className={inputClass} placeholder={placeholder} value={d[k]} onChange={(e) => set(k, e.target.value)} />
    </Field>
  );
  return (
    <Card title={<span className="flex items-center gap-1.5"><Wallet className="size-4" /> Budgets & healing</span>} action={saved && <Badge tone="green">Saved</Badge>} className="p-0">
      <div className="space-y-3 p-4 text-sm" data-section="policy" data-paused={data.paused}>
        {data.paused && (
          <div className="flex items-start gap-2 rounded-lg bg-red-50 p-3 text-red-800 dark:bg-red-950 dark:text-red-200" role="alert" data-breaker="open">
            <PauseCircle className="mt-0.5 size-4 shrink-0" />
            <div className="flex-1">
              <p className="font-medium">Paused by its circuit breaker</p>
              <p className="text-xs">{data.breaker?.reason ?? `${data.breaker?.consecutive_failures ?? "Several"} failures in a row`}{data.breaker?.opened_at && <> · {ago(data.breaker.opened_at)}</>}</p>
            </div>
            <Button size="sm" busy={busy === "resume"} onClick={() => act("resume", () => backend().call("resume_persona", { persona: persona.id }))}><Play className="size-4" /> Resume</Button>
          </div>
        )}
        {!data.paused && data.breaker && data.breaker.consecutive_failures > 0 && (
          <p className="text-xs text-amber-700 dark:text-amber-300" data-breaker="closed">{data.breaker.consecutive_failures} failure(s) in a row; it pauses at {data.policy.failure_threshold ?? def.failure_threshold}.</p>
        )}
        {errs.general && <ErrorBox error={errs.general} />}
        <div className="grid grid-cols-2 gap-3">
          {input("daily_budget_usd", "Daily cap (USD)", def.daily_budget_usd === null ? "none" : `global $${def.daily_budget_usd}`, "0.01")}
          {input("monthly_budget_usd", "Monthly cap (USD)", def.monthly_budget_usd === null ? "none" : `global $${def.monthly_budget_usd}`, "0.01")}
          {input("failure_threshold", "Pause after failures", `${def.failure_threshold} (default)`)}
          {input("max_retries", "Retries", `${def.max_retries} (default)`)}
          {input("review_timeout_secs", "Review timeout (s)", `${def.review_timeout_secs} (default)`)}
          <Field label="At the deadline" htmlFor="policy-review_timeout_action" error={errs["policy.review_timeout_action"]}>
            <select id="policy-review_timeout_action" className={inputClass} value={d.review_timeout_action} onChange={(e) => set("review_timeout_action", e.target.value)}>
              <option value="">{def.review_timeout_action} (default)</option>
              {Object.entries(TIMEOUT_ACTIONS).map(([a, label]) => <option key={a} value={a}>{label}</option>)}
            </select>
          </Field>
          <Field label="On reject" htmlFor="policy-on_reject" error={errs["policy.on_reject"]}>
            <select id="policy-on_reject" className={inputClass} value={d.on_reject} onChange={(e) => set("on_reject", e.target.value)}>
              <option value="">{def.on_reject} (default)</option>
              {Object.entries(ON_REJECT).map(([a, label]) => <option key={a} value={a}>{label}</option>)}
            </select>
          </Field>
        </div>
        <Button variant="primary" size="sm" busy={busy === "save"} disabled={draft === null} onClick={save}>Save policy</Button>
      </div>
    </Card>
  );
}

export function PersonaMemoriesCard({ persona }: { persona: Persona }) {
  const { data, error, reload } = useQuery(() => backend().call("list_memories", { persona: persona.id, limit: 20 }), [persona.id]);
  const [err, setErr] = useState<string | null>(null);
  const forget = async (id: string, title: string) => {
    if (!window.confirm(`Forget "${title}"?`)) return;
    try {
      await backend().call("delete_memory", { id });
      reload();
    } catch (e) {
      setErr(errorMessage(e));
    }
  };
  return (
    <Card title={<span className="flex items-center gap-1.5"><Brain className="size-4" /> Memories</span>} action={<Link to="/memories" className="text-xs text-accent-600">Manage</Link>} className="p-0">
      <div className="p-4 text-sm" data-section="memories">
        {(error || err) && <ErrorBox error={(error ?? err)!} retry={reload} />}
        {!data ? (
          !error && <Spinner />
        ) : data.memories.length === 0 ? (
          <p className="text-zinc-500">Nothing remembered yet. Runs add memories with an agent_memory line.</p>
        ) : (
          <ul className="space-y-2">
            {data.memories.map((m) => (
              <li key={m.id} className="flex items-start gap-2" data-memory={m.title}>
                <Badge>{m.importance}</Badge>
                <div className="min-w-0 flex-1">
                  <p className="font-medium">{m.title}</p>
                  <p className="truncate text-xs text-zinc-500">{m.content}</p>
                </div>
                <Button size="sm" variant="ghost" onClick={() => forget(m.id, m.title)} aria-label={`Forget ${m.title}`}><Trash2 className="size-3.5" /></Button>
              </li>
            ))}
          </ul>
        )}
      </div>
    </Card>
  );
}
