// Create or edit a persona: instructions (with prompt version history and a diff), model,
// limits, permission policy, credentials, tools and triggers; and run it with a JSON input. Server errors
// land next to the field they name.
import { Cloud, History, Play, Save, Trash2 } from "lucide-react";
import { useEffect, useMemo, useState } from "react";
import { useNavigate, useParams } from "react-router";
import { BackendError, backend, errorMessage } from "../backend";
import { Badge, Button, Card, ErrorBox, Field, PageHeader, Spinner, cx, inputClass } from "../components/ui";
import { AccessCard, type Links, PermissionsCard } from "../components/PersonaAccess";
import { TriggersCard } from "../components/Triggers";
import { ChannelsCard, PersonaMemoriesCard, PolicyCard } from "../components/PersonaOversight";
import type { Persona, PersonaSpec } from "../generated";
import { diffLines } from "../lib/diff";
import { useQuery } from "../lib/useQuery";
import { canExecute, useCloud } from "../stores/cloud";
import { toSpec, usePersonas } from "../stores/personas";

function emptySpec(): PersonaSpec {
  return {
    name: "",
    description: "",
    instructions: "",
    sections: [],
    model: null,
    max_concurrent: 1,
    timeout_secs: 600,
    max_turns: null,
    max_budget_usd: null,
    permissions: { mode: "default", allow: [], deny: [], allow_personas: [] },
    enabled: true,
  };
}


type Errors = Record<string, string>;

function Versions({ persona }: { persona: Persona }) {
  const { data, error } = useQuery(() => backend().call("list_prompt_versions", { persona: persona.id }), [persona.prompt_version]);
  const [pick, setPick] = useState<number | null>(null);
  if (error) return <ErrorBox error={error} />;
  if (!data) return <Spinner />;
  const versions = [...data.versions].reverse();
  const chosen = versions.find((v) => v.version === pick);
  const prev = chosen && data.versions.find((v) => v.version === chosen.version - 1);
  return (
    <div className="p-4">
      <ul className="flex flex-wrap gap-1.5">
        {versions.map((v) => (
          <li key={v.version}>
            <button className={cx("rounded-md px-2 py-1 text-xs ring-1", pick === v.version ? "bg-accent-600 text-white ring-accent-600" : "ring-zinc-200 dark:ring-zinc-700")} onClick={() => setPick(v.version)}>
              v{v.version} · {new Date(v.created_at).toLocaleDateString()}
            </button>
          </li>
        ))}
      </ul>
      {chosen && (
        <pre className="mt-3 max-h-72 overflow-auto rounded-lg bg-zinc-50 p-3 font-mono text-xs dark:bg-zinc-950" aria-label={`Changes in version ${chosen.version}`}>
          {prev
            ? diffLines(prev.instructions, chosen.instructions).map((d, i) => (
                <div key={i} className={d.op === "add" ? "bg-emerald-100 dark:bg-emerald-950" : d.op === "del" ? "bg-red-100 line-through dark:bg-red-950" : ""}>
                  {d.op === "add" ? "+ " : d.op === "del" ? "- " : "  "}
                  {d.text}
                </div>
              ))
            : chosen.instructions}
        </pre>
      )}
    </div>
  );
}

function RunPanel({ persona }: { persona: Persona }) {
  const nav = useNavigate();
  const [input, setInput] = useState("");
  const [err, setErr] = useState<string | null>(null);
  const [busy, setBusy] = useState<"local" | "cloud" | null>(null);
  const cloud = useCloud((s) => s.status);
  const refreshCloud = useCloud((s) => s.refresh);
  const executeInCloud = useCloud((s) => s.execute);
  useEffect(() => {
    void refreshCloud();
  }, [refreshCloud]);
  const run = async (where: "local" | "cloud") => {
    let parsed: unknown = undefined;
    if (input.trim()) {
      try {
        parsed = JSON.parse(input);
      } catch (e) {
        setErr(`Input is not valid JSON: ${(e as Error).message}`);
        return;
      }
    }
    setErr(null);
    setBusy(where);
    try {
      // A cloud run is mirrored here under the same id: the same execution view follows it.
      const exec = where === "cloud" ? await executeInCloud(persona.id, parsed) : await backend().call("run_persona", { persona: persona.id, input: parsed });
      nav(`/executions/${exec.id}`);
    } catch (e) {
      setErr(errorMessage(e));
    } finally {
      setBusy(null);
    }
  };
  return (
    <Card title="Run" className="p-0">
      <div className="space-y-3 p-4">
        <Field label="Input (JSON, optional)" htmlFor="run-input" error={err} hint="Handed to the persona as its input.">
          <textarea id="run-input" rows={5} className={cx(inputClass, "font-mono text-xs")} value={input} onChange={(e) => setInput(e.target.value)} placeholder='{"pr": 42}' />
        </Field>
        <div className="flex flex-wrap items-center gap-2">
          <Button variant="primary" busy={busy === "local"} onClick={() => void run("local")} disabled={!persona.enabled || busy !== null}>
            <Play className="size-4" /> Run now
          </Button>
          <Button
            busy={busy === "cloud"}
            onClick={() => void run("cloud")}
            disabled={!persona.enabled || busy !== null || !canExecute(cloud)}
            title={canExecute(cloud) ? "Runs on the cloud's workers (push the persona first: personas persona push)" : "Connect to a cloud on the Cloud page first"}
          >
            <Cloud className="size-4" /> Execute in cloud
          </Button>
        </div>
      </div>
    </Card>
  );
}

export function PersonaEditor() {
  const { name } = useParams();
  const creating = name === undefined;
  const nav = useNavigate();
  const store = usePersonas();
  const persona = useMemo(
    () => (creating ? null : store.list.find((p) => p.name.toLowerCase() === decodeURIComponent(name ?? "").toLowerCase()) ?? null),
    [creating, name, store.list],
  );
  const [spec, setSpec] = useState<PersonaSpec>(emptySpec);
  const [errors, setErrors] = useState<Errors>({});
  const [general, setGeneral] = useState<string | null>(null);
  const [saving, setSaving] = useState(false);
  const [saved, setSaved] = useState(false);
  const [links, setLinks] = useState<Links>({ credentials: [], tools: [] });
  const [linksLoaded, setLinksLoaded] = useState(creating);
  useEffect(() => {
    if (persona) setSpec(toSpec(persona));
  }, [persona]);
  const personaId = persona?.id;
  useEffect(() => {
    if (!personaId) return;
    backend()
      .call("get_persona_links", { persona: personaId })
      .then((l) => {
        setLinks({ credentials: l.credentials, tools: l.tools });
        setLinksLoaded(true);
      })
      .catch((e) => setGeneral(errorMessage(e)));
  }, [personaId]);
  if (!creating && !store.loaded) return <Spinner />;
  if (!creating && !persona) return <ErrorBox error={`No persona named ${decodeURIComponent(name ?? "")}.`} />;

  const set = <K extends keyof PersonaSpec>(k: K, v: PersonaSpec[K]) => {
    setSpec((s) => ({ ...s, [k]: v }));
    setSaved(false);
  };
  const fail = (e: unknown) => {
    if (e instanceof BackendError && e.field) setErrors({ [e.field]: e.message });
    else setGeneral(errorMessage(e));
  };
  const save = async () => {
    setErrors({});
    setGeneral(null);
    setSaving(true);
    try {
      // Links are sent only once known, so a failed load never clears them.
      const extras = linksLoaded ? links : {};
      const p = creating ? await store.create(spec, extras) : await store.update(persona!.id, spec, extras);
      setSaved(true);
      if (creating || p.name !== persona?.name) nav(`/personas/${encodeURIComponent(p.name)}`, { replace: true });
    } catch (e) {
      fail(e);
    } finally {
      setSaving(false);
    }
  };
  const remove = async () => {
    if (!persona || !window.confirm(`Delete ${persona.name}? Its past runs stay in history.`)) return;
    try {
      await store.remove(persona.id);
      nav("/personas");
    } catch (e) {
      fail(e);
    }
  };
  const num = (v: string) => (v.trim() === "" ? null : Number(v));

  return (
    <div data-page="persona-editor">
      <PageHeader
        title={creating ? "New persona" : persona!.name}
        subtitle={creating ? "Say in plain words what it should do." : <span className="flex gap-2"><Badge>prompt v{persona!.prompt_version}</Badge>{saved && <Badge tone="green">Saved</Badge>}</span>}
        actions={
          <>
            {!creating && <Button variant="ghost" onClick={remove}><Trash2 className="size-4" /> Delete</Button>}
            <Button variant="primary" onClick={save} busy={saving}><Save className="size-4" /> {creating ? "Create" : "Save"}</Button>
          </>
        }
      />
      {general && <ErrorBox error={general} />}
      <div className="grid gap-6 lg:grid-cols-3">
        <div className="space-y-6 lg:col-span-2">
          <Card className="space-y-4 p-4">
            <Field label="Name" htmlFor="name" error={errors.name}>
              <input id="name" className={inputClass} value={spec.name} onChange={(e) => set("name", e.target.value)} />
            </Field>
            <Field label="Description" htmlFor="description" error={errors.description}>
              <input id="description" className={inputClass} value={spec.description} onChange={(e) => set("description", e.target.value)} />
            </Field>
            <Field label="Instructions" htmlFor="instructions" error={errors.instructions} hint="A change here becomes a new prompt version.">
              <textarea id="instructions" rows={10} className={inputClass} value={spec.instructions} onChange={(e) => set("instructions", e.target.value)} />
            </Field>
            {spec.sections.map((s, i) => (
              <Field key={i} label={`Section: ${s.title}`} htmlFor={`section-${i}`} error={errors[`sections[${i}].title`]}>
                <textarea id={`section-${i}`} rows={3} className={inputClass} value={s.body} onChange={(e) => set("sections", spec.sections.map((x, j) => (j === i ? { ...x, body: e.target.value } : x)))} />
              </Field>
            ))}
          </Card>
          {persona && (
            <Card title={<span className="flex items-center gap-1.5"><History className="size-4" /> Prompt versions</span>}>
              <Versions persona={persona} />
            </Card>
          )}
          {persona && <TriggersCard persona={persona} />}
          {persona && <PolicyCard persona={persona} />}
          {persona && <ChannelsCard persona={persona} />}
          {persona && <PersonaMemoriesCard persona={persona} />}
        </div>
        <div className="space-y-6">
          {persona && <RunPanel persona={persona} />}
          <Card title="Model & limits" className="p-0">
            <div className="grid grid-cols-2 gap-3 p-4">
              <div className="col-span-2">
                <Field label="Model" htmlFor="model" error={errors.model} hint="Blank lets the CLI choose (e.g. sonnet, opus).">
                  <input id="model" className={inputClass} value={spec.model ?? ""} onChange={(e) => set("model", e.target.value.trim() ? e.target.value : null)} />
                </Field>
              </div>
              <Field label="Timeout (s)" htmlFor="timeout" error={errors.timeout}>
                <input id="timeout" type="number" min={1} className={inputClass} value={spec.timeout_secs} onChange={(e) => set("timeout_secs", Number(e.target.value))} />
              </Field>
              <Field label="Max concurrent" htmlFor="maxc" error={errors.max_concurrent}>
                <input id="maxc" type="number" min={1} className={inputClass} value={spec.max_concurrent} onChange={(e) => set("max_concurrent", Number(e.target.value))} />
              </Field>
              <Field label="Max turns" htmlFor="turns" error={errors.max_turns}>
                <input id="turns" type="number" min={1} className={inputClass} value={spec.max_turns ?? ""} onChange={(e) => set("max_turns", num(e.target.value))} />
              </Field>
              <Field label="Budget (USD)" htmlFor="budget" error={errors.max_budget_usd}>
                <input id="budget" type="number" step="0.01" className={inputClass} value={spec.max_budget_usd ?? ""} onChange={(e) => set("max_budget_usd", num(e.target.value))} />
              </Field>
              <label className="col-span-2 flex items-center gap-2 text-sm">
                <input type="checkbox" checked={spec.enabled} onChange={(e) => set("enabled", e.target.checked)} /> Enabled
              </label>
            </div>
          </Card>
          <PermissionsCard policy={spec.permissions} onChange={(p) => set("permissions", p)} errors={errors} self={persona?.id} />
          <AccessCard
            links={links}
            onChange={(l) => {
              setLinks(l);
              setSaved(false);
            }}
            errors={errors}
          />
        </div>
      </div>
    </div>
  );
}
