// The persona editor's access cards: the permission policy (mode, allowed/denied rules, the
// three templates as presets, with a clear warning on full trust) and the credentials and
// tools its runs get, and the personas its runs may start (allow_personas).
import { Plus, ShieldAlert, X } from "lucide-react";
import { useEffect, useState } from "react";
import { Link } from "react-router";
import { backend } from "../backend";
import type { PermissionMode, PermissionPolicy, PermissionTemplateInfo } from "../generated";
import { ANY_PERSONA, withTarget } from "../lib/allow";
import { useQuery } from "../lib/useQuery";
import { TypeIcon } from "../pages/Credentials";
import { usePersonas } from "../stores/personas";
import { useCredentials } from "../stores/credentials";
import { Badge, Button, Card, Field, cx, inputClass } from "./ui";

const modes: { mode: PermissionMode; label: string }[] = [
  { mode: "default", label: "default — only allowed tools run" },
  { mode: "acceptEdits", label: "acceptEdits — file edits are accepted" },
  { mode: "dontAsk", label: "dontAsk — anything not allowed is denied" },
  { mode: "plan", label: "plan — plans, changes nothing" },
  { mode: "bypassPermissions", label: "bypassPermissions — full trust" },
];

/** A rule as the CLI takes it: `Name` or `Name(pattern)`; null when fine, else why not. */
export function ruleProblem(rule: string): string | null {
  const m = /^([A-Za-z0-9_-]+)(\((.+)\))?$/.exec(rule);
  if (!m) return "write a tool name, or Tool(pattern) — e.g. Read, Bash(git *)";
  return null;
}

function Rules({ id, label, rules, onChange, error, hint }: { id: string; label: string; rules: string[]; onChange: (r: string[]) => void; error?: string; hint: string }) {
  const [draft, setDraft] = useState("");
  const [problem, setProblem] = useState<string | null>(null);
  const add = () => {
    const r = draft.trim();
    if (!r) return;
    const p = ruleProblem(r);
    if (p) return setProblem(`${r}: ${p}`);
    setProblem(null);
    if (!rules.includes(r)) onChange([...rules, r]);
    setDraft("");
  };
  return (
    <Field label={label} htmlFor={id} error={problem ?? error} hint={hint}>
      <ul className="flex flex-wrap gap-1.5" aria-label={label}>
        {rules.map((r) => (
          <li key={r}>
            <Badge className="font-mono">
              {r}
              <button type="button" className="rounded hover:bg-zinc-200 dark:hover:bg-zinc-700" onClick={() => onChange(rules.filter((x) => x !== r))} aria-label={`Remove ${r} from ${label.toLowerCase()}`}>
                <X className="size-3" />
              </button>
            </Badge>
          </li>
        ))}
        {rules.length === 0 && <li className="text-xs text-zinc-500">none</li>}
      </ul>
      <div className="flex gap-1.5">
        <input
          id={id}
          className={cx(inputClass, "font-mono text-xs")}
          value={draft}
          placeholder="Read, Bash(git *)…"
          onChange={(e) => setDraft(e.target.value)}
          onKeyDown={(e) => {
            if (e.key === "Enter") {
              e.preventDefault();
              add();
            }
          }}
        />
        <Button type="button" size="sm" onClick={add} aria-label={`Add to ${label.toLowerCase()}`}>
          <Plus className="size-3.5" />
        </Button>
      </div>
    </Field>
  );
}

/** Which personas this one's runs may start (persona_action, the MCP run_persona tool). */
export function AllowPersonas({ policy, onChange, error, self }: { policy: PermissionPolicy; onChange: (p: PermissionPolicy) => void; error?: string; self?: string }) {
  const personas = usePersonas((s) => s.list).filter((p) => p.id !== self);
  const any = policy.allow_personas.includes(ANY_PERSONA);
  return (
    <fieldset data-allow-personas>
      <legend className="text-sm font-medium">May start personas</legend>
      <p className="text-xs text-zinc-500">A run may ask only these personas to act; any other request is denied and recorded on the execution.</p>
      {error && (
        <p role="alert" className="mt-1 text-xs text-red-600" data-field-error>
          {error}
        </p>
      )}
      <label className="mt-2 flex items-center gap-2 text-sm">
        <input
          type="checkbox"
          checked={any}
          data-allow-any
          onChange={(e) => {
            if (e.target.checked && !window.confirm("Let this persona start every persona? A run talked into it by untrusted input could then start personas with more tools and credentials.")) return;
            onChange(withTarget(policy, ANY_PERSONA, e.target.checked));
          }}
        />
        <span>Every persona</span>
      </label>
      {any && (
        <p role="alert" data-any-persona-warning className="mt-1 flex gap-1.5 text-xs text-red-700 dark:text-red-300">
          <ShieldAlert className="size-3.5 shrink-0" aria-hidden /> It may start every persona, including ones with full trust or credentials.
        </p>
      )}
      <div className="mt-1 flex flex-wrap gap-x-4 gap-y-1">
        {personas.map((p) => (
          <label key={p.id} className="flex items-center gap-2 text-sm">
            <input type="checkbox" checked={policy.allow_personas.includes(p.id)} data-allow-persona={p.name} onChange={(e) => onChange(withTarget(policy, p.id, e.target.checked))} />
            <span>{p.name}</span>
          </label>
        ))}
      </div>
    </fieldset>
  );
}

export function PermissionsCard({ policy, onChange, errors, self }: { policy: PermissionPolicy; onChange: (p: PermissionPolicy) => void; errors: Record<string, string>; self?: string }) {
  const templates = useQuery(() => backend().call("list_permission_templates", {}), []);
  const apply = (t: PermissionTemplateInfo) => {
    if (t.warning && !window.confirm(`${t.label}: ${t.warning}\n\nApply it?`)) return;
    // Templates are about tools: the personas it may start stay as they are.
    onChange({ mode: t.policy.mode, allow: [...t.policy.allow], deny: [...t.policy.deny], allow_personas: policy.allow_personas });
  };
  const same = (t: PermissionTemplateInfo) => t.policy.mode === policy.mode && t.policy.allow.join() === policy.allow.join() && t.policy.deny.join() === policy.deny.join();
  return (
    <Card title="Permissions" className="p-0">
      <div className="space-y-4 p-4">
        <div>
          <p className="mb-1.5 text-sm font-medium">Start from a template</p>
          <div className="flex flex-wrap gap-1.5">
            {templates.data?.templates.map((t) => (
              <Button
                key={t.id}
                type="button"
                size="sm"
                variant={same(t) ? "primary" : "secondary"}
                className={cx(t.warning && !same(t) && "text-red-700 dark:text-red-300")}
                onClick={() => apply(t)}
                title={t.description}
                data-permission-template={t.id}
                aria-pressed={same(t)}
              >
                {t.warning && <ShieldAlert className="size-3.5" aria-hidden />}
                {t.label}
              </Button>
            ))}
          </div>
        </div>
        {policy.mode === "bypassPermissions" && (
          <div role="alert" data-full-trust-warning className="flex gap-2 rounded-lg bg-red-50 p-3 text-xs text-red-800 ring-1 ring-red-200 dark:bg-red-950 dark:text-red-200 dark:ring-red-900">
            <ShieldAlert className="size-4 shrink-0" aria-hidden />
            <span>
              <strong>Full trust.</strong> Every tool runs without a check: shell commands, and writes anywhere you can write. Use it only for a persona whose instructions and inputs you trust completely.
            </span>
          </div>
        )}
        <Field label="Mode" htmlFor="mode" error={errors.permission_mode ?? errors.mode}>
          <select
            id="mode"
            className={inputClass}
            value={policy.mode}
            onChange={(e) => {
              const mode = e.target.value as PermissionMode;
              if (mode === "bypassPermissions" && !window.confirm("Full trust lets this persona run any tool without a check. Switch to it?")) return;
              onChange({ ...policy, mode });
            }}
          >
            {modes.map((m) => (
              <option key={m.mode} value={m.mode}>
                {m.label}
              </option>
            ))}
          </select>
        </Field>
        <Rules id="allow" label="Allowed tools" rules={policy.allow} onChange={(allow) => onChange({ ...policy, allow })} error={errors.allow_tool} hint="Run without asking. Enter adds one." />
        <Rules id="deny" label="Denied tools" rules={policy.deny} onChange={(deny) => onChange({ ...policy, deny })} error={errors.deny_tool} hint="Removed from runs entirely." />
        <AllowPersonas policy={policy} onChange={onChange} error={errors.allow_personas} self={self} />
      </div>
    </Card>
  );
}

export type Links = { credentials: string[]; tools: string[] };

function toggle(list: string[], name: string, on: boolean) {
  return on ? [...list.filter((x) => x !== name), name] : list.filter((x) => x !== name);
}

export function AccessCard({ links, onChange, errors }: { links: Links; onChange: (l: Links) => void; errors: Record<string, string> }) {
  const { credentials, tools, loaded, load } = useCredentials();
  useEffect(() => {
    void load();
  }, [load]);
  return (
    <Card title="Credentials & tools" className="p-0">
      <div className="space-y-4 p-4">
        <fieldset>
          <legend className="text-sm font-medium">Credentials</legend>
          <p className="text-xs text-zinc-500">Their variables are in each run's environment; values are redacted from all output.</p>
          {errors.credentials && (
            <p role="alert" className="mt-1 text-xs text-red-600" data-field-error>
              {errors.credentials}
            </p>
          )}
          <ul className="mt-2 space-y-1">
            {credentials.map((c) => (
              <li key={c.id}>
                <label className="flex items-center gap-2 text-sm">
                  <input type="checkbox" checked={links.credentials.includes(c.name)} onChange={(e) => onChange({ ...links, credentials: toggle(links.credentials, c.name, e.target.checked) })} aria-label={`Give credential ${c.name}`} />
                  <TypeIcon kind={c.kind} className="size-4 text-zinc-500" />
                  <span>{c.name}</span>
                  <span className="truncate text-xs text-zinc-500">{c.fields.filter((f) => f.set).map((f) => f.variable).join(", ")}</span>
                  {c.last_check && !c.last_check.ok && <Badge tone="red">failing</Badge>}
                </label>
              </li>
            ))}
          </ul>
          {loaded && credentials.length === 0 && (
            <p className="mt-2 text-xs text-zinc-500">
              None stored yet — <Link className="underline" to="/credentials">add one</Link>.
            </p>
          )}
        </fieldset>
        <fieldset>
          <legend className="text-sm font-medium">Tools</legend>
          {errors.tools && (
            <p role="alert" className="mt-1 text-xs text-red-600" data-field-error>
              {errors.tools}
            </p>
          )}
          <ul className="mt-2 space-y-1">
            {tools.map((t) => (
              <li key={t.id}>
                <label className="flex items-center gap-2 text-sm" title={t.description}>
                  <input type="checkbox" checked={links.tools.includes(t.name)} onChange={(e) => onChange({ ...links, tools: toggle(links.tools, t.name, e.target.checked) })} aria-label={`Give tool ${t.name}`} />
                  <span>{t.name}</span>
                  <span className="truncate text-xs text-zinc-500">{t.description}</span>
                </label>
              </li>
            ))}
          </ul>
          {loaded && tools.length === 0 && (
            <p className="mt-2 text-xs text-zinc-500">
              None defined yet — <Link className="underline" to="/tools">define one</Link>.
            </p>
          )}
        </fieldset>
      </div>
    </Card>
  );
}
