// Turns an execution's stored output lines (Claude stream-json, protocol messages, engine notes)
// into a conversation: assistant text, tool calls with their results attached, protocol
// messages, the final result, notices. Incremental: `push` takes new lines in sequence order
// and updates only what they touch, so a 10 000-line run stays cheap to follow live.
import type { OutputLine, ProtocolMessage } from "../generated";

export type ToolResult = { content: string; isError: boolean };

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
  | { kind: "notice"; key: string; level: "engine" | "warning" | "stderr" | "retry" | "raw" | "user"; text: string };

type Json = Record<string, unknown>;

function obj(v: unknown): Json | null {
  return v && typeof v === "object" && !Array.isArray(v) ? (v as Json) : null;
}

function parse(text: string): Json | null {
  try {
    return obj(JSON.parse(text));
  } catch {
    return null;
  }
}

function resultText(content: unknown): string {
  if (typeof content === "string") return content;
  if (Array.isArray(content))
    return content
      .map((c) => (obj(c)?.type === "text" ? String(obj(c)?.text ?? "") : JSON.stringify(c)))
      .join("\n");
  return content === undefined ? "" : JSON.stringify(content);
}

export class StreamModel {
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

  private replace(items: Item[], index: number, item: Item) {
    items[index] = item;
  }

  private take(items: Item[], line: OutputLine) {
    const key = `l${line.seq}`;
    switch (line.kind) {
      case "system": {
        const j = parse(line.text);
        if (j?.subtype === "init")
          items.push({
            kind: "session",
            key,
            model: (j.model as string) ?? null,
            cwd: (j.cwd as string) ?? null,
            tools: Array.isArray(j.tools) ? (j.tools as string[]) : [],
          });
        return;
      }
      case "assistant_text":
      case "thinking":
      case "tool_use": {
        const j = parse(line.text);
        const content = obj(j?.message)?.content;
        if (!Array.isArray(content)) {
          items.push({ kind: "notice", key, level: "raw", text: line.text });
          return;
        }
        content.forEach((raw, i) => {
          const b = obj(raw);
          const k = `${key}.${i}`;
          if (!b) return;
          if (b.type === "text" && typeof b.text === "string" && b.text.trim())
            items.push({ kind: "text", key: k, text: b.text });
          else if (b.type === "thinking" && typeof b.thinking === "string")
            items.push({ kind: "thinking", key: k, text: b.thinking });
          else if (b.type === "tool_use") {
            const id = String(b.id ?? k);
            this.toolIndex.set(id, items.length);
            items.push({ kind: "tool", key: k, id, name: String(b.name ?? "tool"), input: b.input, result: null, denied: false });
          }
        });
        return;
      }
      case "tool_result":
      case "user": {
        const j = parse(line.text);
        const content = obj(j?.message)?.content;
        if (!Array.isArray(content)) return;
        for (const raw of content) {
          const b = obj(raw);
          if (b?.type !== "tool_result") continue;
          const id = String(b.tool_use_id ?? "");
          const at = this.toolIndex.get(id);
          const result = { content: resultText(b.content), isError: b.is_error === true };
          if (at !== undefined && items[at]?.kind === "tool") {
            const t = items[at] as Extract<Item, { kind: "tool" }>;
            const denied = t.denied || (result.isError && /permission|not allowed|denied/i.test(result.content));
            this.replace(items, at, { ...t, result, denied });
          } else items.push({ kind: "notice", key: `${key}.${id}`, level: "user", text: result.content });
        }
        return;
      }
      case "result": {
        const j = parse(line.text) ?? {};
        const denials = Array.isArray(j.permission_denials) ? (j.permission_denials as Json[]) : [];
        for (const d of denials) {
          const at = this.toolIndex.get(String(d.tool_use_id ?? ""));
          if (at !== undefined && items[at]?.kind === "tool")
            this.replace(items, at, { ...(items[at] as Extract<Item, { kind: "tool" }>), denied: true });
        }
        items.push({
          kind: "result",
          key,
          isError: j.is_error === true,
          subtype: String(j.subtype ?? ""),
          text: typeof j.result === "string" ? j.result : null,
          costUsd: typeof j.total_cost_usd === "number" ? j.total_cost_usd : null,
          turns: typeof j.num_turns === "number" ? j.num_turns : null,
          durationMs: typeof j.duration_ms === "number" ? j.duration_ms : null,
          denials: denials.length,
        });
        return;
      }
      case "protocol": {
        const j = parse(line.text);
        if (j && typeof j.kind === "string") items.push({ kind: "protocol", key, message: j as unknown as ProtocolMessage });
        else items.push({ kind: "notice", key, level: "warning", text: line.text });
        return;
      }
      case "warning": {
        const j = parse(line.text);
        const text = j && typeof j.reason === "string" ? `${j.key ?? "protocol"}: ${j.reason}` : line.text;
        items.push({ kind: "notice", key, level: "warning", text });
        return;
      }
      case "retry":
      case "stderr":
      case "engine":
      case "raw":
        items.push({ kind: "notice", key, level: line.kind, text: line.text });
        return;
    }
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
