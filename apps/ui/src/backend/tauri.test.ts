// The desktop Backend over Tauri's own IPC mocks: requests travel as `{ req }` to the command of
// the same name, errors keep their code and field, and stream frames reach the handlers in order.
import { clearMocks, mockIPC } from "@tauri-apps/api/mocks";
import { afterEach, describe, expect, it } from "vitest";
import type { StreamFrame } from "../generated";
import { TauriBackend, isTauri } from "./tauri";
import { BackendError } from "./types";

type Internals = { runCallback(id: number, data: unknown): void };
const internals = () => (window as unknown as { __TAURI_INTERNALS__: Internals }).__TAURI_INTERNALS__;

afterEach(() => clearMocks());

describe("TauriBackend", () => {
  it("calls the operation's command with the request as `req`", async () => {
    const seen: [string, unknown][] = [];
    mockIPC((cmd, args) => {
      seen.push([cmd, args]);
      return { personas: [] };
    });
    expect(isTauri()).toBe(true);
    const out = await new TauriBackend().call("list_personas", {});
    expect(out).toEqual({ personas: [] });
    expect(seen).toEqual([["list_personas", { req: {} }]]);
  });

  it("turns a command's ApiError into a BackendError with code and field", async () => {
    mockIPC(() => {
      throw { code: "conflict", message: "a persona named X exists", field: "name" };
    });
    const err = await new TauriBackend().call("create_persona", { name: "X" } as never).catch((e) => e);
    expect(err).toBeInstanceOf(BackendError);
    expect([err.code, err.field, err.message]).toEqual(["conflict", "name", "a persona named X exists"]);
  });

  it("delivers channel frames in order and unsubscribes on close", async () => {
    let channelId = -1;
    const calls: string[] = [];
    mockIPC((cmd, args) => {
      calls.push(cmd);
      if (cmd === "subscribe_events") {
        channelId = (args as { onFrames: { id: number } }).onFrames.id;
        return 7;
      }
      if (cmd === "unsubscribe_events") {
        expect(args).toEqual({ id: 7 });
      }
      return null;
    });
    const got: StreamFrame[] = [];
    const statuses: string[] = [];
    const close = new TauriBackend().subscribe({
      onFrames: (f) => got.push(...f),
      onStatus: (s) => statuses.push(s),
    });
    await expect.poll(() => statuses.at(-1)).toBe("open");
    const hello: StreamFrame = { kind: "hello", epoch: "e", seq: 3 } as StreamFrame;
    const resync: StreamFrame = { kind: "resync", epoch: "e", seq: 4, reason: "r" } as StreamFrame;
    // Sent out of order: the channel reorders by index.
    internals().runCallback(channelId, { index: 1, message: [resync] });
    internals().runCallback(channelId, { index: 0, message: [hello] });
    expect(got).toEqual([hello, resync]);
    close();
    await expect.poll(() => calls.includes("unsubscribe_events")).toBe(true);
  });
});
