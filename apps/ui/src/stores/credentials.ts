// Credentials, their types, the vault's state and custom tools: what a persona may be given.
// Secret values only ever pass through here on their way into a request; nothing in this store
// holds one (the server never returns them, and forms keep them in their own local state).
import { create } from "zustand";
import { backend } from "../backend";
import type { CreateCredential, CreateTool, Credential, CredentialType, TestStatus, Tool, UpdateCredential, VaultStatus } from "../generated";

/** The state of a credential's "Test" button. */
export type TestState = { state: "running" } | { state: "done"; status: TestStatus; detail: string };

type CredentialsState = {
  credentials: Credential[];
  types: CredentialType[];
  vault: VaultStatus | null;
  tools: Tool[];
  loaded: boolean;
  error: string | null;
  tests: Record<string, TestState>;
  load(): Promise<void>;
  create(req: CreateCredential): Promise<Credential>;
  update(req: UpdateCredential): Promise<Credential>;
  remove(credential: string, force?: boolean): Promise<void>;
  test(credential: string): Promise<TestState>;
  createTool(req: CreateTool): Promise<Tool>;
  removeTool(tool: string): Promise<void>;
};

const byName = <T extends { name: string }>(list: T[]) => [...list].sort((a, b) => a.name.localeCompare(b.name, undefined, { sensitivity: "base" }));

/** Replaces (or adds) `c` by id. */
export function upsertCredential(list: Credential[], c: Credential): Credential[] {
  return byName([...list.filter((x) => x.id !== c.id), c]);
}

/** Empty strings are values the user did not give: left out, so secrets keep their value. */
export function givenFields(values: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(values).filter(([, v]) => v.trim() !== ""));
}

export const useCredentials = create<CredentialsState>((set, get) => ({
  credentials: [],
  types: [],
  vault: null,
  tools: [],
  loaded: false,
  error: null,
  tests: {},
  load: async () => {
    try {
      const [c, t, v, tools] = await Promise.all([
        backend().call("list_credentials", {}),
        backend().call("list_credential_types", {}),
        backend().call("vault_status", {}),
        backend().call("list_tools", {}),
      ]);
      set({ credentials: c.credentials, types: t.types, vault: v, tools: tools.tools, loaded: true, error: null });
    } catch (e) {
      set({ error: (e as Error).message, loaded: true });
    }
  },
  create: async (req) => {
    const c = await backend().call("create_credential", { ...req, fields: givenFields(req.fields) });
    set({ credentials: upsertCredential(get().credentials, c) });
    // The first credential creates the vault: its status changes with it.
    void backend().call("vault_status", {}).then((vault) => set({ vault }), () => undefined);
    return c;
  },
  update: async (req) => {
    const c = await backend().call("update_credential", { ...req, fields: givenFields(req.fields) });
    // The old result was about the old values.
    const tests = { ...get().tests };
    for (const old of get().credentials.filter((x) => x.id === c.id)) delete tests[old.name];
    delete tests[c.name];
    set({ credentials: upsertCredential(get().credentials, c), tests });
    return c;
  },
  remove: async (credential, force) => {
    const c = await backend().call("delete_credential", force ? { credential, force } : { credential });
    set({ credentials: get().credentials.filter((x) => x.id !== c.id) });
  },
  test: async (credential) => {
    set({ tests: { ...get().tests, [credential]: { state: "running" } } });
    let result: TestState;
    try {
      const r = await backend().call("test_credential", { credential });
      result = { state: "done", status: r.status, detail: r.detail };
      set({ credentials: upsertCredential(get().credentials, r.credential) });
    } catch (e) {
      result = { state: "done", status: "failed", detail: (e as Error).message };
    }
    set({ tests: { ...get().tests, [credential]: result } });
    return result;
  },
  createTool: async (req) => {
    const t = await backend().call("create_tool", req);
    set({ tools: byName([...get().tools.filter((x) => x.id !== t.id), t]) });
    return t;
  },
  removeTool: async (tool) => {
    const t = await backend().call("delete_tool", { tool });
    set({ tools: get().tools.filter((x) => x.id !== t.id) });
  },
}));
