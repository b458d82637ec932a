import { beforeEach, describe, expect, it } from "vitest";
import { BackendError, setBackend, type Backend } from "../backend";
import type { Credential, OperationName } from "../generated";
import { givenFields, upsertCredential, useCredentials } from "./credentials";
import { parseHeaders } from "../pages/Tools";
import { ruleProblem } from "../components/PersonaAccess";

const SECRET = "ghp_StoreMustNeverHoldThis123";

function cred(name: string, ok: boolean | null = null, id = name): Credential {
  return {
    id,
    name,
    kind: "github",
    label: "GitHub token",
    fields: [{ field: "token", description: "", variable: "GITHUB_TOKEN", secret: true, required: true, set: true, value: null, default: false }],
    last_check: ok === null ? null : { ok, error: ok ? null : "HTTP 401", at: new Date().toISOString() },
    personas: [],
    created_at: new Date().toISOString(),
    updated_at: new Date().toISOString(),
  };
}

// Answers from memory like the server would: it never returns a value it was given.
function fakeBackend(calls: { op: string; req: Record<string, unknown> }[], opts: { testFails?: boolean; gate?: Promise<void> } = {}): Backend {
  return {
    kind: "web",
    subscribe: () => () => {},
    call: (async (op: OperationName, req: Record<string, unknown>) => {
      calls.push({ op, req });
      if (op === "create_credential") return cred(req.name as string);
      if (op === "update_credential") return cred(req.credential as string);
      if (op === "vault_status") return { mode: "passphrase", created: true, generation: 1, rotated_at: null, can_store: true, problem: null, hint: null, credentials: 1 };
      if (op === "test_credential") {
        await opts.gate;
        if (opts.testFails) throw new BackendError("unavailable", "the vault is locked", "vault");
        return { status: "ok", detail: "HTTP 200 OK", credential: cred(req.credential as string, true) };
      }
      throw new Error(`unexpected ${op}`);
    }) as Backend["call"],
  };
}

describe("credentials store", () => {
  beforeEach(() => useCredentials.setState({ credentials: [], tests: {}, tools: [], types: [], vault: null, loaded: false, error: null }));

  it("sends only the values given, so a secret left empty keeps its stored value", async () => {
    expect(givenFields({ token: "", api_url: "https://x", other: "  " })).toEqual({ api_url: "https://x" });
    const calls: { op: string; req: Record<string, unknown> }[] = [];
    setBackend(fakeBackend(calls));
    await useCredentials.getState().update({ credential: "github", fields: { token: "", api_url: "https://x" } });
    expect(calls[0].req.fields).toEqual({ api_url: "https://x" });
  });

  it("never keeps a secret value in its state after creating a credential", async () => {
    const calls: { op: string; req: Record<string, unknown> }[] = [];
    setBackend(fakeBackend(calls));
    await useCredentials.getState().create({ name: "github", kind: "github", fields: { token: SECRET } });
    expect(calls[0].req.fields).toEqual({ token: SECRET });
    const state = useCredentials.getState();
    expect(state.credentials.map((c) => c.name)).toEqual(["github"]);
    expect(JSON.stringify({ ...state })).not.toContain(SECRET);
  });

  it("shows a test as running, then its result, and keeps the recorded check", async () => {
    let open = () => {};
    const gate = new Promise<void>((r) => (open = r));
    setBackend(fakeBackend([], { gate }));
    useCredentials.setState({ credentials: [cred("github")] });
    const pending = useCredentials.getState().test("github");
    expect(useCredentials.getState().tests.github).toEqual({ state: "running" });
    open();
    expect(await pending).toEqual({ state: "done", status: "ok", detail: "HTTP 200 OK" });
    expect(useCredentials.getState().credentials[0].last_check?.ok).toBe(true);
  });

  it("turns a failed call into a failed test result instead of losing it", async () => {
    setBackend(fakeBackend([], { testFails: true }));
    const r = await useCredentials.getState().test("github");
    expect(r).toEqual({ state: "done", status: "failed", detail: "the vault is locked" });
  });

  it("forgets an old test result when the credential changes", async () => {
    setBackend(fakeBackend([]));
    useCredentials.setState({ credentials: [cred("github")], tests: { github: { state: "done", status: "failed", detail: "HTTP 401" } } });
    await useCredentials.getState().update({ credential: "github", fields: { token: SECRET } });
    expect(useCredentials.getState().tests.github).toBeUndefined();
  });

  it("keeps the list sorted and replaces by id", () => {
    const list = upsertCredential([cred("b"), cred("a")], cred("C", true, "a"));
    expect(list.map((c) => c.name)).toEqual(["b", "C"]);
  });
});

describe("form helpers", () => {
  it("parses header lines and names a bad one", () => {
    expect(parseHeaders("Authorization: Bearer $GITHUB_TOKEN\n\nAccept: application/json")).toEqual([
      ["Authorization", "Bearer $GITHUB_TOKEN"],
      ["Accept", "application/json"],
    ]);
    expect(parseHeaders("no colon here")).toMatch(/no colon here/);
  });

  it("accepts tool rules the CLI takes and refuses others", () => {
    expect(ruleProblem("Read")).toBeNull();
    expect(ruleProblem("Bash(git *)")).toBeNull();
    expect(ruleProblem("Bash(")).not.toBeNull();
    expect(ruleProblem("two words")).not.toBeNull();
  });
});
