import { describe, expect, it } from "vitest";
import type { OutputLine } from "../generated";
import { StreamModel, describeProtocol } from "./stream";

let seq = 0;
const line = (kind: OutputLine["kind"], text: unknown): OutputLine => ({
  execution_id: "e1",
  seq: ++seq,
  kind,
  text: typeof text === "string" ? text : JSON.stringify(text),
  at: new Date().toISOString(),
});

describe("StreamModel", () => {
  it("renders a run as a conversation with tool results attached to their calls", () => {
    seq = 0;
    const m = new StreamModel();
    m.push([
      line("system", { type: "system", subtype: "init", model: "opus", cwd: "/w", tools: ["Glob"] }),
      line("tool_use", { type: "assistant", message: { content: [{ type: "text", text: "Looking" }, { type: "tool_use", id: "t1", name: "Glob", input: { pattern: "*" } }] } }),
    ]);
    expect(m.items.map((i) => i.kind)).toEqual(["session", "text", "tool"]);
    m.push([line("tool_result", { type: "user", message: { content: [{ type: "tool_result", tool_use_id: "t1", content: [{ type: "text", text: "a.md" }] }] } })]);
    const tool = m.items[2];
    expect(tool.kind === "tool" && tool.result).toEqual({ content: "a.md", isError: false });
    m.push([
      line("protocol", { kind: "user_message", title: "Hi", content: "done", priority: "normal" }),
      line("result", { type: "result", subtype: "success", is_error: false, total_cost_usd: 0.01, num_turns: 2, permission_denials: [] }),
    ]);
    expect(m.items.map((i) => i.kind)).toEqual(["session", "text", "tool", "protocol", "result"]);
    const r = m.items[4];
    expect(r.kind === "result" && r.costUsd).toBe(0.01);
  });

  it("flags permission denials from the result line", () => {
    seq = 0;
    const m = new StreamModel();
    m.push([line("tool_use", { type: "assistant", message: { content: [{ type: "tool_use", id: "b1", name: "Bash", input: { command: "rm -rf /" } }] } })]);
    m.push([line("result", { type: "result", subtype: "success", is_error: false, permission_denials: [{ tool_name: "Bash", tool_use_id: "b1", tool_input: {} }] })]);
    const t = m.items[0];
    expect(t.kind === "tool" && t.denied).toBe(true);
    const r = m.items[1];
    expect(r.kind === "result" && r.denials).toBe(1);
  });

  it("ignores lines it already has and takes a batch in sequence order", () => {
    seq = 0;
    const m = new StreamModel();
    const a = line("engine", "one");
    const b = line("engine", "two");
    expect(m.push([b, a])).toBe(true);
    expect(m.push([a, b])).toBe(false);
    expect(m.items.map((i) => i.kind === "notice" && i.text)).toEqual(["one", "two"]);
    expect(m.lineCount).toBe(2);
  });

  it("keeps up with 10 000 lines in small batches", () => {
    seq = 0;
    const m = new StreamModel();
    for (let b = 0; b < 100; b++) {
      const batch = [];
      for (let i = 0; i < 100; i++) batch.push(line("assistant_text", { type: "assistant", message: { content: [{ type: "text", text: `line ${seq + 1}` }] } }));
      m.push(batch);
    }
    expect(m.lineCount).toBe(10_000);
    expect(m.items.length).toBe(10_000);
  });

  it("describes protocol messages", () => {
    expect(describeProtocol({ kind: "outcome_assessment", accomplished: false, summary: "API down" }).label).toBe("Task not accomplished");
  });
});
