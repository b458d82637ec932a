// Credentials: what personas get as environment variables. Values are write-only: secret
// inputs are password fields, a stored secret is never shown again (editing one means typing a
// new value), and the "Test" button runs the type's health check live. A banner says when the
// vault cannot store secrets, and how to fix that.
import {
  BookOpen,
  Brain,
  CheckCircle2,
  CircleAlert,
  ClipboardList,
  Database,
  FlaskConical,
  GitBranch,
  KeyRound,
  ListChecks,
  Lock,
  type LucideIcon,
  Mail,
  MessageSquare,
  Pencil,
  Plus,
  Send,
  ShieldAlert,
  ShieldCheck,
  Sparkles,
  Trash2,
  Webhook,
  XCircle,
} from "lucide-react";
import { type FormEvent, useEffect, useState } from "react";
import { Link, useSearchParams } from "react-router";
import { BackendError, errorMessage } from "../backend";
import { Dialog } from "../components/Dialog";
import { Badge, Button, Card, Empty, ErrorBox, Field, PageHeader, Spinner, inputClass } from "../components/ui";
import type { Credential, CredentialType, VaultStatus } from "../generated";
import { ago } from "../lib/format";
import { useCredentials } from "../stores/credentials";

const icons: Record<string, LucideIcon> = {
  bearer: KeyRound,
  api_key: KeyRound,
  http_basic: Lock,
  github: GitBranch,
  slack_bot: MessageSquare,
  slack_webhook: Webhook,
  telegram_bot: Send,
  openai: Sparkles,
  anthropic: Brain,
  smtp: Mail,
  postgres: Database,
  notion: BookOpen,
  linear: ListChecks,
  jira: ClipboardList,
};

export function TypeIcon({ kind, className = "size-5" }: { kind: string; className?: string }) {
  const Icon = icons[kind] ?? KeyRound;
  return <Icon className={className} aria-hidden />;
}

/** Where the vault's key is; a warning with the fix when secrets cannot be stored. */
export function VaultBanner({ vault }: { vault: VaultStatus | null }) {
  if (!vault) return null;
  if (!vault.can_store)
    return (
      <div role="alert" data-vault-banner="problem" className="mb-6 flex gap-3 rounded-xl bg-amber-50 p-4 text-sm text-amber-900 ring-1 ring-amber-200 dark:bg-amber-950 dark:text-amber-100 dark:ring-amber-900">
        <ShieldAlert className="mt-0.5 size-5 shrink-0" aria-hidden />
        <div className="space-y-1">
          <p className="font-semibold">Secrets cannot be stored right now</p>
          <p>{vault.problem}</p>
          {vault.hint && (
            <p>
              <span className="font-medium">Fix: </span>
              {vault.hint}
            </p>
          )}
        </div>
      </div>
    );
  const where = vault.mode === "keychain" ? "the OS keychain" : "a key derived from PERSONAS_VAULT_PASSPHRASE";
  return (
    <p data-vault-banner="ok" className="mb-6 flex items-center gap-2 text-sm text-zinc-500">
      <ShieldCheck className="size-4 text-emerald-500" aria-hidden />
      {vault.created ? `Encrypted (AES-256-GCM) under ${where} · key generation ${vault.generation}` : `The vault is created with the first credential, under ${where}.`}
    </p>
  );
}

function Health({ c }: { c: Credential }) {
  const test = useCredentials((s) => s.tests[c.name]);
  if (test?.state === "running")
    return (
      <Badge tone="blue" className="animate-pulse">
        Testing…
      </Badge>
    );
  if (!c.last_check) return <Badge>Not checked</Badge>;
  return c.last_check.ok ? (
    <Badge tone="green">
      <CheckCircle2 className="size-3" aria-hidden /> Healthy · {ago(c.last_check.at)}
    </Badge>
  ) : (
    <Badge tone="red">
      <XCircle className="size-3" aria-hidden /> Failing · {ago(c.last_check.at)}
    </Badge>
  );
}

function TestResult({ name }: { name: string }) {
  const test = useCredentials((s) => s.tests[name]);
  if (!test || test.state !== "done") return null;
  const tone = test.status === "ok" ? "text-emerald-700 dark:text-emerald-300" : test.status === "failed" ? "text-red-700 dark:text-red-300" : "text-amber-700 dark:text-amber-300";
  const Icon = test.status === "ok" ? CheckCircle2 : test.status === "failed" ? XCircle : CircleAlert;
  return (
    <p role="status" data-test-result={test.status} className={`mt-2 flex items-start gap-1.5 text-xs ${tone}`}>
      <Icon className="mt-px size-3.5 shrink-0" aria-hidden />
      <span>
        {test.status === "ok" ? "Works" : test.status === "failed" ? "Failed" : "Not checked"}: {test.detail}
      </span>
    </p>
  );
}

function CredentialRow({ c, onEdit }: { c: Credential; onEdit: () => void }) {
  const { test, remove } = useCredentials();
  const running = useCredentials((s) => s.tests[c.name]?.state === "running");
  const [error, setError] = useState<string | null>(null);
  const del = async () => {
    setError(null);
    if (!window.confirm(`Delete the credential ${c.name}? Its encrypted values are erased.`)) return;
    try {
      await remove(c.name);
    } catch (e) {
      if (e instanceof BackendError && e.field === "force") {
        if (window.confirm(`${c.name} is used by ${c.personas.join(", ")}. Delete it anyway and unlink it from them?`)) {
          await remove(c.name, true).catch((e2) => setError(errorMessage(e2)));
        }
      } else setError(errorMessage(e));
    }
  };
  const vars = c.fields.filter((f) => f.set);
  return (
    <li className="px-4 py-3" data-credential={c.name}>
      <div className="flex flex-wrap items-start gap-3">
        <div className="grid size-9 shrink-0 place-items-center rounded-lg bg-accent-50 text-accent-700 dark:bg-violet-950 dark:text-violet-300">
          <TypeIcon kind={c.kind} />
        </div>
        <div className="min-w-0 flex-1">
          <div className="flex flex-wrap items-center gap-2">
            <span className="font-semibold">{c.name}</span>
            <span className="text-sm text-zinc-500">{c.label || c.kind}</span>
            <Health c={c} />
          </div>
          <div className="mt-1 flex flex-wrap gap-1.5 text-xs">
            {vars.map((f) => (
              <code key={f.field} className="rounded bg-zinc-100 px-1.5 py-0.5 dark:bg-zinc-800" title={f.description}>
                {f.variable}
                {f.secret ? <span className="text-zinc-500"> = ••••••</span> : f.value && !f.default ? <span className="text-zinc-500"> = {f.value}</span> : null}
              </code>
            ))}
          </div>
          {c.last_check && !c.last_check.ok && c.last_check.error && <p className="mt-1 text-xs text-red-700 dark:text-red-300">{c.last_check.error}</p>}
          <p className="mt-1 text-xs text-zinc-500">
            {c.personas.length ? (
              <>
                Used by{" "}
                {c.personas.map((p, i) => (
                  <span key={p}>
                    {i > 0 && ", "}
                    <Link className="underline" to={`/personas/${encodeURIComponent(p)}`}>
                      {p}
                    </Link>
                  </span>
                ))}
              </>
            ) : (
              "Not used by any persona yet"
            )}
          </p>
          <TestResult name={c.name} />
          {error && (
            <p role="alert" className="mt-2 text-xs text-red-600">
              {error}
            </p>
          )}
        </div>
        <div className="flex gap-1">
          <Button size="sm" onClick={() => void test(c.name)} busy={running} aria-label={`Test ${c.name}`}>
            <FlaskConical className="size-3.5" /> Test
          </Button>
          <Button size="sm" variant="ghost" onClick={onEdit} aria-label={`Edit ${c.name}`}>
            <Pencil className="size-3.5" />
          </Button>
          <Button size="sm" variant="ghost" onClick={del} aria-label={`Delete ${c.name}`}>
            <Trash2 className="size-3.5" />
          </Button>
        </div>
      </div>
    </li>
  );
}

type FormErrors = Record<string, string>;

/** Adds a credential (`editing` null) or changes one. Secret inputs start empty either way. */
function CredentialForm({ types, editing, initialKind, onClose }: { types: CredentialType[]; editing: Credential | null; initialKind?: string; onClose: () => void }) {
  const { create, update } = useCredentials();
  const [kind, setKind] = useState(editing?.kind ?? initialKind ?? types[0]?.kind ?? "");
  const [name, setName] = useState(editing?.name ?? initialKind ?? "");
  const [values, setValues] = useState<Record<string, string>>(() =>
    Object.fromEntries((editing?.fields ?? []).filter((f) => !f.secret && f.value !== null && !f.default).map((f) => [f.field, f.value as string])),
  );
  const [errors, setErrors] = useState<FormErrors>({});
  const [busy, setBusy] = useState(false);
  const type = types.find((t) => t.kind === kind);
  const stored = (field: string) => editing?.fields.find((f) => f.field === field && f.secret && f.set);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setErrors({});
    setBusy(true);
    try {
      if (editing) await update({ credential: editing.id, name, fields: values });
      else await create({ name, kind, fields: values });
      onClose();
    } catch (err) {
      const field = err instanceof BackendError && err.field ? err.field : "general";
      setErrors({ [field]: errorMessage(err) });
    } finally {
      setBusy(false);
    }
  };
  const general = errors.general ?? errors.vault ?? Object.entries(errors).find(([k]) => k.startsWith("env.") || k === "clear")?.[1];
  return (
    <Dialog title={editing ? `Edit ${editing.name}` : "Add a credential"} onClose={onClose}>
      <form className="space-y-4" onSubmit={submit} data-form="credential" autoComplete="off">
        {general && <ErrorBox error={general} />}
        <Field label="Type" htmlFor="cred-kind" error={errors.kind}>
          <select
            id="cred-kind"
            className={inputClass}
            value={kind}
            disabled={!!editing}
            onChange={(e) => {
              // A name that was just the type's follows the type.
              if (name === kind || name === "") setName(e.target.value);
              setKind(e.target.value);
            }}
          >
            {!type && <option value={kind}>{kind} (unknown)</option>}
            {types.map((t) => (
              <option key={t.kind} value={t.kind}>
                {t.label}
              </option>
            ))}
          </select>
        </Field>
        <Field label="Name" htmlFor="cred-name" error={errors.name} hint="How personas refer to it; also the first part of redaction markers ([redacted:name.field]).">
          <input id="cred-name" className={inputClass} value={name} onChange={(e) => setName(e.target.value)} spellCheck={false} />
        </Field>
        {type?.fields.map((f) => {
          const id = `cred-field-${f.name}`;
          const keep = stored(f.name);
          return (
            <Field
              key={f.name}
              label={`${f.name}${f.required ? " *" : ""}`}
              htmlFor={id}
              error={errors[`fields.${f.name}`]}
              hint={
                <>
                  {f.description} · becomes <code>{f.env}</code>
                  {f.secret && " · encrypted, never shown again"}
                </>
              }
            >
              <input
                id={id}
                data-secret={f.secret ? "true" : "false"}
                type={f.secret ? "password" : "text"}
                autoComplete={f.secret ? "new-password" : "off"}
                spellCheck={false}
                className={inputClass}
                placeholder={keep ? "•••••• stored — leave empty to keep it" : (f.default ?? "")}
                value={values[f.name] ?? ""}
                onChange={(e) => setValues((v) => ({ ...v, [f.name]: e.target.value }))}
              />
            </Field>
          );
        })}
        {type?.check ? (
          <p className="text-xs text-zinc-500">
            The Test button checks it with <code>{type.check}</code>.
          </p>
        ) : (
          type && <p className="text-xs text-zinc-500">This type has no harmless health check.</p>
        )}
        <div className="flex justify-end gap-2">
          <Button type="button" variant="ghost" onClick={onClose}>
            Cancel
          </Button>
          <Button type="submit" variant="primary" busy={busy}>
            {editing ? "Save" : "Add credential"}
          </Button>
        </div>
      </form>
    </Dialog>
  );
}

export function Credentials() {
  const { credentials, types, vault, loaded, error, load } = useCredentials();
  const [params, setParams] = useSearchParams();
  const [editing, setEditing] = useState<Credential | null>(null);
  const [adding, setAdding] = useState<string | null>(null);
  useEffect(() => {
    void load();
  }, [load]);
  // `?add=TYPE` opens the form for that type (links from persona templates and docs).
  useEffect(() => {
    const kind = params.get("add");
    if (kind !== null && loaded) {
      setAdding(kind);
      params.delete("add");
      setParams(params, { replace: true });
    }
  }, [params, setParams, loaded]);
  return (
    <div data-page="credentials">
      <PageHeader
        title="Credentials"
        subtitle="What personas get as environment variables. Values are encrypted and never shown again."
        actions={
          <Button variant="primary" onClick={() => setAdding(types[0]?.kind ?? "")} disabled={!loaded || !types.length}>
            <Plus className="size-4" /> Add credential
          </Button>
        }
      />
      <VaultBanner vault={vault} />
      {error && <ErrorBox error={error} retry={() => void load()} />}
      <Card>
        {!loaded ? (
          <Spinner />
        ) : credentials.length === 0 ? (
          <Empty icon={<KeyRound className="size-8" />} title="No credentials yet">
            Add a GitHub token, a Slack bot, an API key… then give it to a persona in its editor. Its runs get it as an environment variable; every copy in the output is redacted.
          </Empty>
        ) : (
          <ul className="divide-y divide-zinc-100 dark:divide-zinc-800" aria-label="Credentials">
            {credentials.map((c) => (
              <CredentialRow key={c.id} c={c} onEdit={() => setEditing(c)} />
            ))}
          </ul>
        )}
      </Card>
      {adding !== null && <CredentialForm types={types} editing={null} initialKind={adding || undefined} onClose={() => setAdding(null)} />}
      {editing && <CredentialForm types={types} editing={editing} onClose={() => setEditing(null)} />}
    </div>
  );
}
