// Custom tools: a command line or an HTTP request a persona's prompt documents. Credential
// values are referenced as $VARIABLES (never typed in here); attach a tool to a persona from
// here or from the persona's editor.
import { Globe, Plus, Terminal, Trash2, Wrench } from "lucide-react";
import { type FormEvent, useEffect, useState } from "react";
import { Link } from "react-router";
import { BackendError, backend, errorMessage } from "../backend";
import { Dialog } from "../components/Dialog";
import { Badge, Button, Card, Empty, ErrorBox, Field, PageHeader, Spinner, cx, inputClass } from "../components/ui";
import type { Persona, PersonaSpec, Tool, ToolCall } from "../generated";
import { useCredentials } from "../stores/credentials";
import { usePersonas } from "../stores/personas";

export function specOf(p: Persona): PersonaSpec {
  const { name, description, instructions, sections, model, max_concurrent, timeout_secs, max_turns, max_budget_usd, permissions, enabled } = p;
  return { name, description, instructions, sections, model, max_concurrent, timeout_secs, max_turns, max_budget_usd, permissions, enabled };
}

/** "Name: value" lines → header pairs; a line without a colon is an error naming it. */
export function parseHeaders(text: string): [string, string][] | string {
  const out: [string, string][] = [];
  for (const line of text.split("\n").map((l) => l.trim()).filter(Boolean)) {
    const i = line.indexOf(":");
    if (i <= 0) return `"${line}" is not "Name: value"`;
    out.push([line.slice(0, i).trim(), line.slice(i + 1).trim()]);
  }
  return out;
}

function ToolForm({ onClose }: { onClose: () => void }) {
  const createTool = useCredentials((s) => s.createTool);
  const [name, setName] = useState("");
  const [description, setDescription] = useState("");
  const [kind, setKind] = useState<"command" | "http">("command");
  const [command, setCommand] = useState("");
  const [method, setMethod] = useState("GET");
  const [url, setUrl] = useState("");
  const [headers, setHeaders] = useState("");
  const [body, setBody] = useState("");
  const [schema, setSchema] = useState("");
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [busy, setBusy] = useState(false);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    const errs: Record<string, string> = {};
    let call: ToolCall;
    if (kind === "command") call = { kind: "command", command };
    else {
      const h = parseHeaders(headers);
      if (typeof h === "string") errs.headers = h;
      call = { kind: "http", method, url, headers: typeof h === "string" ? [] : h, body: body.trim() ? body : null };
    }
    let input_schema: unknown = undefined;
    if (schema.trim()) {
      try {
        input_schema = JSON.parse(schema);
      } catch (err) {
        errs.input_schema = `Not valid JSON: ${(err as Error).message}`;
      }
    }
    setErrors(errs);
    if (Object.keys(errs).length) return;
    setBusy(true);
    try {
      await createTool({ name, description, call, input_schema });
      onClose();
    } catch (err) {
      setErrors({ [err instanceof BackendError && err.field ? err.field : "general"]: errorMessage(err) });
    } finally {
      setBusy(false);
    }
  };
  return (
    <Dialog title="Add a tool" onClose={onClose} wide>
      <form className="space-y-4" onSubmit={submit} data-form="tool">
        {errors.general && <ErrorBox error={errors.general} />}
        <div className="grid gap-4 sm:grid-cols-2">
          <Field label="Name" htmlFor="tool-name" error={errors.name}>
            <input id="tool-name" className={inputClass} value={name} onChange={(e) => setName(e.target.value)} spellCheck={false} />
          </Field>
          <Field label="How it is called" htmlFor="tool-kind">
            <select id="tool-kind" className={inputClass} value={kind} onChange={(e) => setKind(e.target.value as "command" | "http")}>
              <option value="command">A command line</option>
              <option value="http">An HTTP request</option>
            </select>
          </Field>
        </div>
        <Field label="Description" htmlFor="tool-description" error={errors.description} hint="What it does; the agent reads this.">
          <input id="tool-description" className={inputClass} value={description} onChange={(e) => setDescription(e.target.value)} />
        </Field>
        {kind === "command" ? (
          <Field label="Command" htmlFor="tool-command" error={errors.command} hint="Run by the agent with its Bash tool (allow Bash for the persona).">
            <input id="tool-command" className={cx(inputClass, "font-mono")} value={command} onChange={(e) => setCommand(e.target.value)} placeholder="gh issue list --repo acme/app" spellCheck={false} />
          </Field>
        ) : (
          <>
            <div className="grid gap-4 sm:grid-cols-4">
              <Field label="Method" htmlFor="tool-method" error={errors.method}>
                <select id="tool-method" className={inputClass} value={method} onChange={(e) => setMethod(e.target.value)}>
                  {["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"].map((m) => (
                    <option key={m}>{m}</option>
                  ))}
                </select>
              </Field>
              <div className="sm:col-span-3">
                <Field label="URL" htmlFor="tool-url" error={errors.url}>
                  <input id="tool-url" className={cx(inputClass, "font-mono")} value={url} onChange={(e) => setUrl(e.target.value)} placeholder="https://api.github.com/repos/acme/app/issues" spellCheck={false} />
                </Field>
              </div>
            </div>
            <Field label="Headers" htmlFor="tool-headers" error={errors.headers} hint="One per line; use a credential's variable, e.g. Authorization: Bearer $GITHUB_TOKEN">
              <textarea id="tool-headers" rows={3} className={cx(inputClass, "font-mono text-xs")} value={headers} onChange={(e) => setHeaders(e.target.value)} spellCheck={false} />
            </Field>
            <Field label="Body (optional)" htmlFor="tool-body" error={errors.body}>
              <textarea id="tool-body" rows={3} className={cx(inputClass, "font-mono text-xs")} value={body} onChange={(e) => setBody(e.target.value)} spellCheck={false} />
            </Field>
          </>
        )}
        <Field label="Input schema (JSON, optional)" htmlFor="tool-schema" error={errors.input_schema}>
          <textarea id="tool-schema" rows={3} className={cx(inputClass, "font-mono text-xs")} value={schema} onChange={(e) => setSchema(e.target.value)} placeholder='{"type": "object", "properties": {"title": {"type": "string"}}}' spellCheck={false} />
        </Field>
        <div className="flex justify-end gap-2">
          <Button type="button" variant="ghost" onClick={onClose}>
            Cancel
          </Button>
          <Button type="submit" variant="primary" busy={busy}>
            Add tool
          </Button>
        </div>
      </form>
    </Dialog>
  );
}

function ToolRow({ t }: { t: Tool }) {
  const { removeTool, load } = useCredentials();
  const personas = usePersonas((s) => s.list);
  const [error, setError] = useState<string | null>(null);
  const attach = async (personaId: string) => {
    setError(null);
    const p = personas.find((x) => x.id === personaId);
    if (!p) return;
    try {
      const links = await backend().call("get_persona_links", { persona: p.id });
      await backend().call("update_persona", { persona: p.id, spec: specOf(p), tools: [...links.tools, t.name] });
      await load();
    } catch (e) {
      setError(errorMessage(e));
    }
  };
  const del = async () => {
    if (!window.confirm(`Delete the tool ${t.name}? It is detached from every persona.`)) return;
    await removeTool(t.name).catch((e) => setError(errorMessage(e)));
  };
  const available = personas.filter((p) => !t.personas.includes(p.name));
  return (
    <li className="px-4 py-3" data-tool={t.name}>
      <div className="flex flex-wrap items-start gap-3">
        <div className="grid size-9 shrink-0 place-items-center rounded-lg bg-accent-50 text-accent-700 dark:bg-violet-950 dark:text-violet-300">
          {t.call.kind === "command" ? <Terminal className="size-5" aria-hidden /> : <Globe className="size-5" aria-hidden />}
        </div>
        <div className="min-w-0 flex-1">
          <div className="flex items-center gap-2">
            <span className="font-semibold">{t.name}</span>
            <Badge>{t.call.kind === "command" ? "command" : `HTTP ${t.call.method}`}</Badge>
          </div>
          <p className="text-sm text-zinc-500">{t.description}</p>
          <pre className="mt-2 overflow-x-auto rounded-lg bg-zinc-50 p-2 font-mono text-xs dark:bg-zinc-950">{t.usage}</pre>
          <p className="mt-1 text-xs text-zinc-500">
            {t.personas.length ? (
              <>
                Attached to{" "}
                {t.personas.map((p, i) => (
                  <span key={p}>
                    {i > 0 && ", "}
                    <Link className="underline" to={`/personas/${encodeURIComponent(p)}`}>
                      {p}
                    </Link>
                  </span>
                ))}
              </>
            ) : (
              "Not attached to any persona"
            )}
          </p>
          {error && (
            <p role="alert" className="mt-1 text-xs text-red-600">
              {error}
            </p>
          )}
        </div>
        <div className="flex items-center gap-1">
          {available.length > 0 && (
            <select aria-label={`Attach ${t.name} to a persona`} className={cx(inputClass, "w-44 py-1 text-xs")} value="" onChange={(e) => void attach(e.target.value)}>
              <option value="">Attach to…</option>
              {available.map((p) => (
                <option key={p.id} value={p.id}>
                  {p.name}
                </option>
              ))}
            </select>
          )}
          <Button size="sm" variant="ghost" onClick={del} aria-label={`Delete ${t.name}`}>
            <Trash2 className="size-3.5" />
          </Button>
        </div>
      </div>
    </li>
  );
}

export function Tools() {
  const { tools, loaded, error, load } = useCredentials();
  const [adding, setAdding] = useState(false);
  useEffect(() => {
    void load();
  }, [load]);
  return (
    <div data-page="tools">
      <PageHeader
        title="Tools"
        subtitle="Commands and HTTP requests a persona's prompt documents. Reference credentials as $VARIABLES."
        actions={
          <Button variant="primary" onClick={() => setAdding(true)}>
            <Plus className="size-4" /> Add tool
          </Button>
        }
      />
      {error && <ErrorBox error={error} retry={() => void load()} />}
      <Card>
        {!loaded ? (
          <Spinner />
        ) : tools.length === 0 ? (
          <Empty icon={<Wrench className="size-8" />} title="No tools yet">
            Define a command (e.g. <code>gh pr list</code>) or an HTTP request, then attach it to a persona.
          </Empty>
        ) : (
          <ul className="divide-y divide-zinc-100 dark:divide-zinc-800" aria-label="Tools">
            {tools.map((t) => (
              <ToolRow key={t.id} t={t} />
            ))}
          </ul>
        )}
      </Card>
      {adding && <ToolForm onClose={() => setAdding(false)} />}
    </div>
  );
}
