// Personas: the list every page picks from, kept fresh after each change made here.
import { create } from "zustand";
import type { Persona, PersonaSpec } from "../generated";
import { backend } from "../backend";

/** Credentials and tools (names) to give a persona; a list left out is not changed. */
export type PersonaExtras = { credentials?: string[]; tools?: string[] };

type PersonasState = {
  list: Persona[];
  loaded: boolean;
  error: string | null;
  load(): Promise<void>;
  create(spec: PersonaSpec, extras?: PersonaExtras): Promise<Persona>;
  fromTemplate(templateId: string, name?: string): Promise<Persona>;
  update(persona: string, spec: PersonaSpec, extras?: PersonaExtras): Promise<Persona>;
  remove(persona: string): Promise<void>;
};

/** The editable settings of a stored persona (what create/update take). */
export function toSpec(p: Persona): PersonaSpec {
  const { name, description, instructions, sections, model, max_concurrent, timeout_secs, max_turns, max_budget_usd, permissions, enabled } = p;
  return { name, description, instructions, sections, model, max_concurrent, timeout_secs, max_turns, max_budget_usd, permissions, enabled };
}

function upsert(list: Persona[], p: Persona): Persona[] {
  const rest = list.filter((x) => x.id !== p.id);
  return [...rest, p].sort((a, b) => a.name.localeCompare(b.name, undefined, { sensitivity: "base" }));
}

export const usePersonas = create<PersonasState>((set, get) => ({
  list: [],
  loaded: false,
  error: null,
  load: async () => {
    try {
      const r = await backend().call("list_personas", {});
      set({ list: r.personas, loaded: true, error: null });
    } catch (e) {
      set({ error: (e as Error).message, loaded: true });
    }
  },
  create: async (spec, extras) => {
    const p = await backend().call("create_persona", { spec, ...extras });
    set({ list: upsert(get().list, p) });
    return p;
  },
  fromTemplate: async (template_id, name) => {
    const p = await backend().call("create_from_template", name ? { template_id, name } : { template_id });
    set({ list: upsert(get().list, p) });
    return p;
  },
  update: async (persona, spec, extras) => {
    const p = await backend().call("update_persona", { persona, spec, ...extras });
    set({ list: upsert(get().list, p) });
    return p;
  },
  remove: async (persona) => {
    const p = await backend().call("delete_persona", { persona });
    set({ list: get().list.filter((x) => x.id !== p.id) });
  },
}));
