import { act, cleanup, fireEvent, render, waitFor } from "@testing-library/react";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { setBackend, type Backend } from "../backend";
import type { OperationName, Persona, TriggerConfig, TriggerView } from "../generated";
import { useTriggers } from "../stores/triggers";
import { TriggersCard } from "./Triggers";

const URL = "http://127.0.0.1:9420/webhooks/t1";

function hookView(config: TriggerConfig, secret?: string): TriggerView {
  return {
    trigger: {
      id: "t1",
      persona_id: "p1",
      persona_name: "Hooked",
      kind: "webhook",
      config,
      enabled: true,
      next_fire_at: null,
      last_fired_at: null,
      fire_count: 0,
      last_error: null,
      last_error_at: null,
      created_at: "",
    },
    summary: "webhook (GitHub)",
    next_fires: [],
    next_fires_local: [],
    webhook: { url: URL, github: true, signing: "X-Hub-Signature-256: sha256=<hex of HMAC-SHA256(secret, raw body)>" },
    ...(secret ? { secret } : {}),
  };
}

function fakeBackend(calls: { op: string; req: Record<string, unknown> }[], answers: Partial<Record<OperationName, (req: Record<string, unknown>) => unknown>>): Backend {
  return {
    kind: "web",
    subscribe: () => () => {},
    call: (async (op: OperationName, req: Record<string, unknown>) => {
      calls.push({ op, req });
      const a = answers[op];
      if (!a) throw new Error(`unexpected ${op}`);
      return a(req);
    }) as Backend["call"],
  };
}

const persona = { id: "p1", name: "Hooked" } as Persona;

describe("webhook triggers in the persona editor", () => {
  beforeEach(() => useTriggers.setState({ list: [], shown: null, loaded: false, error: null }));
  afterEach(cleanup);

  it("shows the secret once after creation, never keeps it in the list, and reveals or rotates it on request", async () => {
    const calls: { op: string; req: Record<string, unknown> }[] = [];
    const config: TriggerConfig = { kind: "webhook", github: true };
    setBackend(
      fakeBackend(calls, {
        list_triggers: () => ({ triggers: [] }),
        add_trigger: () => hookView(config, "first-secret"),
        reveal_webhook_secret: () => ({ trigger_id: "t1", secret: "first-secret", webhook: hookView(config).webhook }),
        rotate_webhook_secret: () => ({ trigger_id: "t1", secret: "second-secret", webhook: hookView(config).webhook }),
      }),
    );
    const ui = render(<TriggersCard persona={persona} />);
    await waitFor(() => expect(useTriggers.getState().loaded).toBe(true));

    fireEvent.click(ui.getByRole("radio", { name: "Webhook" }));
    fireEvent.click(ui.getByLabelText(/Signed by GitHub/));
    await act(async () => fireEvent.click(ui.getByRole("button", { name: /Add trigger/ })));
    expect(calls.find((c) => c.op === "add_trigger")?.req).toEqual({ persona: "p1", trigger: { kind: "webhook", github: true } });

    const secret = await ui.findByText("first-secret");
    expect(secret.closest("[data-webhook-secret-panel]")?.textContent).toContain("shown once");
    expect(ui.getByLabelText("Copy webhook secret")).toBeTruthy();
    expect(ui.container.querySelector("[data-webhook-signing]")?.textContent).toContain("X-Hub-Signature-256");
    expect(JSON.stringify(useTriggers.getState().list)).not.toContain("first-secret");

    fireEvent.click(ui.getByRole("button", { name: "Hide" }));
    expect(ui.container.textContent).not.toContain("first-secret");
    expect(useTriggers.getState().shown).toBeNull();

    await act(async () => fireEvent.click(ui.getByRole("button", { name: /Reveal secret/ })));
    expect(await ui.findByText("first-secret")).toBeTruthy();
    fireEvent.click(ui.getByRole("button", { name: "Hide" }));

    fireEvent.click(ui.getByRole("button", { name: /Rotate secret/ }));
    expect(calls.some((c) => c.op === "rotate_webhook_secret")).toBe(false);
    await act(async () => fireEvent.click(ui.getByRole("button", { name: /old secret stops working/ })));
    expect(await ui.findByText("second-secret")).toBeTruthy();
    expect(ui.container.textContent).toContain("the old one no longer works");
    expect(calls.map((c) => c.op)).toEqual(["list_triggers", "add_trigger", "reveal_webhook_secret", "rotate_webhook_secret"]);
    expect(calls.slice(2).map((c) => c.req)).toEqual([{ id: "t1" }, { id: "t1" }]);
  });

  it("says why a reveal failed", async () => {
    const calls: { op: string; req: Record<string, unknown> }[] = [];
    setBackend(
      fakeBackend(calls, {
        list_triggers: () => ({ triggers: [hookView({ kind: "webhook", github: false })] }),
        reveal_webhook_secret: () => {
          throw new Error("the vault is locked with a passphrase: set PERSONAS_VAULT_PASSPHRASE to use credentials");
        },
      }),
    );
    const ui = render(<TriggersCard persona={persona} />);
    const reveal = await ui.findByRole("button", { name: /Reveal secret/ });
    await act(async () => fireEvent.click(reveal));
    expect((await ui.findByRole("alert")).textContent).toContain("PERSONAS_VAULT_PASSPHRASE");
  });
});
