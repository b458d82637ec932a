import { describe, expect, it } from "vitest";
import type { OutputFrame, OutputLine } from "../generated";
import { ConversationModel, describeProtocol } from "./conversation";

let seq = 0;
/** A served line: the raw text and the frame the runtime parsed from it. */
const line = (kind: OutputLine["kind"], frame?: OutputFrame, text = "{…}"): OutputLine => ({
  execution_id: "e1",
  seq: ++seq,
  kind,
  text,
  at: new Date().toISOString(),
  ...(frame ? { frame } : {}),
});

const assistant = (...blocks: Extract<OutputFrame, { type: "assistant" }>["blocks"]): OutputFrame => ({
  type: "assistant",
  blocks,
  error: null,
  parent_tool_use_id: null,
});

const result = (over: Partial<Extract<OutputFrame, { type: "result" }>> = {}): OutputFrame => ({
  type: "result",
  subtype: "success",
  is_error: false,
  text: null,
  cost_usd: 0.01,
  num_turns: 2,
  duration_ms: null,
  permission_denials: [],
  ...over,
});

describe("ConversationModel", () => {
  it("renders a run as a conversation with tool results attached to their calls", () => {
    seq = 0;
    const m = new ConversationModel();
    m.push([
      line("system", { type: "session", session_id: "s", model: "opus", cwd: "/w", tools: ["Glob"] }),
      line("tool_use", assistant({ type: "text", text: "Looking" }, { type: "tool_use", id: "t1", name: "Glob", input: { pattern: "*" } })),
    ]);
    expect(m.items.map((i) => i.kind)).toEqual(["session", "text", "tool"]);
    m.push([
      line("tool_result", {
        type: "user",
        blocks: [{ type: "tool_result", tool_use_id: "t1", content: "a.md", is_error: false }],
        parent_tool_use_id: null,
      }),
    ]);
    const tool = m.items[2];
    expect(tool.kind === "tool" && tool.result).toEqual({ content: "a.md", isError: false });
    m.push([
      line("protocol", { type: "protocol", message: { kind: "user_message", title: "Hi", content: "done", priority: "normal" } }),
      line("result", result()),
    ]);
    expect(m.items.map((i) => i.kind)).toEqual(["session", "text", "tool", "protocol", "result"]);
    const r = m.items[4];
    expect(r.kind === "result" && r.costUsd).toBe(0.01);
  });

  it("flags permission denials from the result frame", () => {
    seq = 0;
    const m = new ConversationModel();
    m.push([line("tool_use", assistant({ type: "tool_use", id: "b1", name: "Bash", input: { command: "rm -rf /" } }))]);
    m.push([line("result", result({ permission_denials: [{ tool_name: "Bash", tool_use_id: "b1", tool_input: {} }] }))]);
    const t = m.items[0];
    expect(t.kind === "tool" && t.denied).toBe(true);
    const r = m.items[1];
    expect(r.kind === "result" && r.denials).toBe(1);
  });

  it("shows plain lines, warnings, retries and unparsed lines as notices", () => {
    seq = 0;
    const m = new ConversationModel();
    m.push([
      line("stderr", undefined, "boom"),
      line("warning", { type: "warning", key: "user_message", message: "content: missing field" }),
      line("retry", { type: "retry", attempt: 1, max_retries: 10, retry_delay_ms: 500, error_status: 529, error: "overloaded" }),
      line("assistant_text", { type: "unparsed", error: "not json" }, "garbage"),
      line("system", { type: "system", subtype: "status" }),
    ]);
    const notices = m.items.map((i) => (i.kind === "notice" ? [i.level, i.text] : [i.kind]));
    expect(notices).toEqual([
      ["stderr", "boom"],
      ["warning", "user_message: content: missing field"],
      ["retry", "API call failed (HTTP 529): overloaded; retry 1/10 in 500 ms"],
      ["raw", "garbage"],
    ]);
  });

  it("ignores lines it already has and takes a batch in sequence order", () => {
    seq = 0;
    const m = new ConversationModel();
    const a = line("engine", undefined, "one");
    const b = line("engine", undefined, "two");
    expect(m.push([b, a])).toBe(true);
    expect(m.push([a, b])).toBe(false);
    expect(m.items.map((i) => i.kind === "notice" && i.text)).toEqual(["one", "two"]);
    expect(m.lineCount).toBe(2);
  });

  it("keeps up with 10 000 lines in small batches", () => {
    seq = 0;
    const m = new ConversationModel();
    for (let b = 0; b < 100; b++) {
      const batch = [];
      for (let i = 0; i < 100; i++) batch.push(line("assistant_text", assistant({ type: "text", text: `line ${seq + 1}` })));
      m.push(batch);
    }
    expect(m.lineCount).toBe(10_000);
    expect(m.items.length).toBe(10_000);
  });

  it("describes protocol messages", () => {
    expect(describeProtocol({ kind: "outcome_assessment", accomplished: false, summary: "API down" }).label).toBe("Task not accomplished");
  });
});
