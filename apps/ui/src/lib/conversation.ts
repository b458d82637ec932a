// Turns an execution's output lines into a conversation: assistant text, tool calls with their
// results attached, protocol messages, the final result, notices. The runtime serves each line
// with the frame it parsed (`OutputLine.frame`, from personas-core's stream-json and protocol
// parsers), so nothing here parses JSON: it only assembles frames. Incremental: `push` takes new
// lines in sequence order and updates only what they touch, so a 10 000-line run stays cheap to
// follow live.
import type { FrameBlock, OutputFrame, OutputLine, ProtocolMessage } from "../generated";
import { unhandled } from "./exhaustive";

export type ToolResult = { content: string; isError: boolean };

export type NoticeLevel = "engine" | "warning" | "stderr" | "retry" | "raw" | "user";

export type Item =
  | { kind: "session"; key: string; model: string | null; cwd: string | null; tools: string[] }
  | { kind: "text"; key: string; text: string }
  | { kind: "thinking"; key: string; text: string }
  | { kind: "tool"; key: string; id: string; name: string; input: unknown; result: ToolResult | null; denied: boolean }
  | { kind: "protocol"; key: string; message: ProtocolMessage }
  | {
      kind: "result";
      key: string;
      isError: boolean;
      subtype: string;
      text: string | null;
      costUsd: number | null;
      turns: number | null;
      durationMs: number | null;
      denials: number;
    }
  | { kind: "notice"; key: string; level: NoticeLevel; text: string };

type Tool = Extract<Item, { kind: "tool" }>;

function retryText(f: Extract<OutputFrame, { type: "retry" }>): string {
  const status = f.error_status ? ` (HTTP ${f.error_status})` : "";
  const why = f.error ? `: ${f.error}` : "";
  return `API call failed${status}${why}; retry ${f.attempt}/${f.max_retries} in ${f.retry_delay_ms} ms`;
}

export class ConversationModel {
  items: Item[] = [];
  lastSeq = 0;
  /** Lines taken in (including ones that render as nothing). */
  lineCount = 0;
  private toolIndex = new Map<string, number>();

  /** Adds lines (any order within the batch; already-seen sequences are ignored). Returns true
   * when the items changed. */
  push(lines: OutputLine[]): boolean {
    const fresh = lines.filter((l) => l.seq > this.lastSeq).sort((a, b) => a.seq - b.seq);
    if (fresh.length === 0) return false;
    const items = this.items.slice();
    for (const line of fresh) {
      this.lastSeq = line.seq;
      this.lineCount += 1;
      this.take(items, line);
    }
    this.items = items;
    return true;
  }

  private take(items: Item[], line: OutputLine) {
    const key = `l${line.seq}`;
    const f = line.frame;
    if (!f) {
      // Plain-text lines (stderr, engine notes, raw output) have no frame.
      const level: NoticeLevel = line.kind === "stderr" || line.kind === "engine" ? line.kind : "raw";
      items.push({ kind: "notice", key, level, text: line.text });
      return;
    }
    switch (f.type) {
      case "session":
        items.push({ kind: "session", key, model: f.model, cwd: f.cwd, tools: f.tools });
        return;
      case "system":
        return;
      case "retry":
        items.push({ kind: "notice", key, level: "retry", text: retryText(f) });
        return;
      case "assistant":
        f.blocks.forEach((b, i) => this.assistantBlock(items, `${key}.${i}`, b));
        return;
      case "user":
        for (const b of f.blocks) if (b.type === "tool_result") this.toolResult(items, key, b);
        return;
      case "result": {
        for (const d of f.permission_denials) {
          const at = this.toolIndex.get(d.tool_use_id);
          if (at !== undefined && items[at]?.kind === "tool") items[at] = { ...(items[at] as Tool), denied: true };
        }
        items.push({
          kind: "result",
          key,
          isError: f.is_error,
          subtype: f.subtype,
          text: f.text,
          costUsd: f.cost_usd,
          turns: f.num_turns,
          durationMs: f.duration_ms,
          denials: f.permission_denials.length,
        });
        return;
      }
      case "protocol":
        items.push({ kind: "protocol", key, message: f.message });
        return;
      case "warning":
        items.push({ kind: "notice", key, level: "warning", text: f.key ? `${f.key}: ${f.message}` : f.message });
        return;
      case "unparsed":
        items.push({ kind: "notice", key, level: "raw", text: line.text });
        return;
      default:
        unhandled(f, "output frame");
    }
  }

  private assistantBlock(items: Item[], key: string, b: FrameBlock) {
    switch (b.type) {
      case "text":
        if (b.text.trim()) items.push({ kind: "text", key, text: b.text });
        return;
      case "thinking":
        items.push({ kind: "thinking", key, text: b.text });
        return;
      case "tool_use": {
        const id = b.id || key;
        this.toolIndex.set(id, items.length);
        items.push({ kind: "tool", key, id, name: b.name || "tool", input: b.input, result: null, denied: false });
        return;
      }
      case "tool_result":
      case "other":
        return;
      default:
        unhandled(b, "content block");
    }
  }

  private toolResult(items: Item[], key: string, b: Extract<FrameBlock, { type: "tool_result" }>) {
    const result = { content: b.content, isError: b.is_error };
    const at = this.toolIndex.get(b.tool_use_id);
    if (at !== undefined && items[at]?.kind === "tool") {
      const t = items[at] as Tool;
      const denied = t.denied || (result.isError && /permission|not allowed|denied/i.test(result.content));
      items[at] = { ...t, result, denied };
    } else items.push({ kind: "notice", key: `${key}.${b.tool_use_id}`, level: "user", text: result.content });
  }
}

/** A one-line description of a protocol message, for badges and lists. */
export function describeProtocol(m: ProtocolMessage): { label: string; detail: string } {
  switch (m.kind) {
    case "user_message":
      return { label: "Message to you", detail: m.title ? `${m.title}: ${m.content}` : m.content };
    case "emit_event":
      return { label: "Event emitted", detail: m.event_type };
    case "persona_action":
      return { label: "Asked another persona", detail: `${m.target}${m.action ? ` · ${m.action}` : ""}` };
    case "agent_memory":
      return { label: "Remembered", detail: m.title };
    case "manual_review":
      return { label: "Review requested", detail: m.title };
    case "outcome_assessment":
      return { label: m.accomplished ? "Task accomplished" : "Task not accomplished", detail: m.summary };
  }
}
