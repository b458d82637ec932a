import { Brain, Pencil, Plus, Trash2 } from "lucide-react";
import { useState } from "react";
import { BackendError, backend, errorMessage } from "../backend";
import { Badge, Button, Card, Empty, ErrorBox, Field, PageHeader, Spinner, inputClass } from "../components/ui";
import type { MemoryRow } from "../generated";
import { useQuery } from "../lib/useQuery";
import { usePersonas } from "../stores/personas";

type Draft = { id?: string; persona: string; title: string; content: string; category: string; importance: number };

export function Memories() {
  const personas = usePersonas((s) => s.list);
  const [persona, setPersona] = useState("");
  const { data, error, reload } = useQuery(() => backend().call("list_memories", persona ? { persona } : {}), [persona]);
  const [draft, setDraft] = useState<Draft | null>(null);
  const [errs, setErrs] = useState<Record<string, string>>({});
  const [busy, setBusy] = useState(false);
  const name = (m: MemoryRow) => personas.find((p) => p.id === m.persona_id)?.name ?? "deleted persona";
  const save = async () => {
    if (!draft) return;
    setBusy(true);
    setErrs({});
    try {
      if (draft.id) await backend().call("update_memory", { id: draft.id, title: draft.title, content: draft.content, category: draft.category, importance: draft.importance });
      else await backend().call("add_memory", { persona: draft.persona, title: draft.title, content: draft.content, category: draft.category, importance: draft.importance });
      setDraft(null);
      reload();
    } catch (e) {
      setErrs({ [e instanceof BackendError && e.field ? e.field : "general"]: errorMessage(e) });
    } finally {
      setBusy(false);
    }
  };
  const remove = async (m: MemoryRow) => {
    if (!window.confirm(`Forget "${m.title}"?`)) return;
    try {
      await backend().call("delete_memory", { id: m.id });
      reload();
    } catch (e) {
      setErrs({ general: errorMessage(e) });
    }
  };
  return (
    <div data-page="memories">
      <PageHeader
        title="Memories"
        subtitle="What personas remember between runs; the most important go into their prompt."
        actions={
          <>
            <select aria-label="Persona" className={inputClass} value={persona} onChange={(e) => setPersona(e.target.value)}>
              <option value="">All personas</option>
              {personas.map((p) => <option key={p.id} value={p.id}>{p.name}</option>)}
            </select>
            <Button variant="primary" disabled={personas.length === 0} onClick={() => setDraft({ persona: persona || personas[0]?.id, title: "", content: "", category: "fact", importance: 3 })}>
              <Plus className="size-4" /> Add
            </Button>
          </>
        }
      />
      {(error || errs.general) && <ErrorBox error={error ?? errs.general} retry={reload} />}
      {draft && (
        <Card className="mb-6 space-y-3 p-4" title={draft.id ? "Edit memory" : "New memory"}>
          <div className="grid gap-3 p-1 md:grid-cols-2">
            {!draft.id && (
              <Field label="Persona" htmlFor="m-persona" error={errs.persona}>
                <select id="m-persona" className={inputClass} value={draft.persona} onChange={(e) => setDraft({ ...draft, persona: e.target.value })}>
                  {personas.map((p) => <option key={p.id} value={p.id}>{p.name}</option>)}
                </select>
              </Field>
            )}
            <Field label="Title" htmlFor="m-title" error={errs.title}>
              <input id="m-title" className={inputClass} value={draft.title} onChange={(e) => setDraft({ ...draft, title: e.target.value })} />
            </Field>
            <Field label="Category" htmlFor="m-cat" error={errs.category}>
              <input id="m-cat" className={inputClass} value={draft.category} onChange={(e) => setDraft({ ...draft, category: e.target.value })} />
            </Field>
            <Field label="Importance (1–5)" htmlFor="m-imp" error={errs.importance}>
              <input id="m-imp" type="number" min={1} max={5} className={inputClass} value={draft.importance} onChange={(e) => setDraft({ ...draft, importance: Number(e.target.value) })} />
            </Field>
            <div className="md:col-span-2">
              <Field label="Content" htmlFor="m-content" error={errs.content}>
                <textarea id="m-content" rows={3} className={inputClass} value={draft.content} onChange={(e) => setDraft({ ...draft, content: e.target.value })} />
              </Field>
            </div>
          </div>
          <div className="flex gap-2 p-1">
            <Button variant="primary" busy={busy} onClick={save}>Save</Button>
            <Button variant="ghost" onClick={() => setDraft(null)}>Cancel</Button>
          </div>
        </Card>
      )}
      <Card>
        {!data ? (
          <Spinner />
        ) : data.memories.length === 0 ? (
          <Empty icon={<Brain className="size-8" />} title="No memories yet">Personas remember with an agent_memory line; you can add some by hand.</Empty>
        ) : (
          <ul className="divide-y divide-zinc-100 dark:divide-zinc-800">
            {data.memories.map((m) => (
              <li key={m.id} className="flex items-start gap-3 px-4 py-3 text-sm">
                <div className="min-w-0 flex-1">
                  <div className="flex flex-wrap items-center gap-2">
                    <span className="font-semibold">{m.title}</span>
                    <Badge>{m.category}</Badge>
                    <Badge tone="violet">{"★".repeat(m.importance)}</Badge>
                    <span className="text-xs text-zinc-400">{name(m)}</span>
                  </div>
                  <p className="mt-1 whitespace-pre-wrap text-zinc-600 dark:text-zinc-300">{m.content}</p>
                </div>
                <Button size="sm" variant="ghost" aria-label={`Edit ${m.title}`} onClick={() => setDraft({ id: m.id, persona: m.persona_id, title: m.title, content: m.content, category: m.category, importance: m.importance })}><Pencil className="size-3.5" /></Button>
                <Button size="sm" variant="ghost" aria-label={`Delete ${m.title}`} onClick={() => remove(m)}><Trash2 className="size-3.5" /></Button>
              </li>
            ))}
          </ul>
        )}
      </Card>
    </div>
  );
}
