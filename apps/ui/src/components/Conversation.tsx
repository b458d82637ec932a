// An execution's output as a conversation, virtualised: only the rows on screen are in the
// DOM, so a run of 10 000+ lines scrolls and streams smoothly. Follows the end while the user
// is at the bottom.
import { useVirtualizer } from "@tanstack/react-virtual";
import { AlertTriangle, Brain, ChevronRight, Info, Megaphone, ShieldAlert, Terminal, Wrench } from "lucide-react";
import { memo, useEffect, useRef, useState } from "react";
import type { Item } from "../lib/conversation";
import { describeProtocol } from "../lib/conversation";
import { duration, money } from "../lib/format";
import { Markdown } from "./Markdown";
import { Badge, cx } from "./ui";

function Collapsible({ summary, children, open: initial = false, tone }: { summary: React.ReactNode; children: React.ReactNode; open?: boolean; tone?: string }) {
  const [open, setOpen] = useState(initial);
  return (
    <div className={cx("rounded-lg ring-1", tone ?? "ring-zinc-200 dark:ring-zinc-800")}>
      <button className="flex w-full items-center gap-2 px-3 py-2 text-left text-sm" aria-expanded={open} onClick={() => setOpen(!open)}>
        <ChevronRight className={cx("size-3.5 transition-transform", open && "rotate-90")} aria-hidden />
        {summary}
      </button>
      {open && <div className="border-t border-zinc-100 px-3 py-2 dark:border-zinc-800">{children}</div>}
    </div>
  );
}

const Row = memo(function Row({ item }: { item: Item }) {
  switch (item.kind) {
    case "session":
      return (
        <div className="flex flex-wrap items-center gap-2 text-xs text-zinc-500">
          <Terminal className="size-3.5" /> Session started {item.model && <Badge>{item.model}</Badge>} <span className="truncate">{item.cwd}</span>
        </div>
      );
    case "text":
      return (
        <div className="rounded-xl bg-white px-4 py-2 ring-1 ring-zinc-200 dark:bg-zinc-900 dark:ring-zinc-800" data-kind="assistant-text">
          <Markdown text={item.text} />
        </div>
      );
    case "thinking":
      return (
        <Collapsible summary={<span className="flex items-center gap-1.5 text-zinc-500"><Brain className="size-3.5" /> Thinking</span>}>
          <p className="whitespace-pre-wrap text-xs text-zinc-500">{item.text}</p>
        </Collapsible>
      );
    case "tool":
      return (
        <div data-kind="tool-call" data-tool={item.name} data-denied={item.denied || undefined}>
          <Collapsible
            tone={item.denied ? "ring-red-300 dark:ring-red-900" : undefined}
            summary={
              <span className="flex min-w-0 flex-1 items-center gap-2">
                <Wrench className="size-3.5 text-accent-600" aria-hidden />
                <span className="font-medium">{item.name}</span>
                <span className="truncate font-mono text-xs text-zinc-500">{JSON.stringify(item.input)}</span>
                <span className="ml-auto">
                  {item.denied ? (
                    <Badge tone="red"><ShieldAlert className="size-3" /> Permission denied</Badge>
                  ) : item.result ? (
                    <Badge tone={item.result.isError ? "red" : "green"}>{item.result.isError ? "error" : "done"}</Badge>
                  ) : (
                    <Badge tone="blue">running…</Badge>
                  )}
                </span>
              </span>
            }
          >
            <div className="text-xs font-medium text-zinc-500">Input</div>
            <pre className="mb-2 overflow-x-auto font-mono text-xs">{JSON.stringify(item.input, null, 2)}</pre>
            {item.result && (
              <>
                <div className="text-xs font-medium text-zinc-500">Result</div>
                <pre className="max-h-80 overflow-auto whitespace-pre-wrap font-mono text-xs">{item.result.content}</pre>
              </>
            )}
          </Collapsible>
        </div>
      );
    case "protocol": {
      const d = describeProtocol(item.message);
      return (
        <div className="flex items-start gap-2 rounded-lg bg-accent-50 px-3 py-2 text-sm ring-1 ring-accent-100 dark:bg-violet-950/50 dark:ring-violet-900" data-kind="protocol">
          <Megaphone className="mt-0.5 size-4 text-accent-600" aria-hidden />
          <div>
            <div className="font-medium text-accent-700 dark:text-violet-300">{d.label}</div>
            <div className="text-zinc-600 dark:text-zinc-300">{d.detail}</div>
          </div>
        </div>
      );
    }
    case "result":
      return (
        <div className={cx("rounded-xl px-4 py-3 text-sm ring-1", item.isError ? "bg-red-50 ring-red-200 dark:bg-red-950 dark:ring-red-900" : "bg-emerald-50 ring-emerald-200 dark:bg-emerald-950/50 dark:ring-emerald-900")} data-kind="result">
          <div className="flex flex-wrap gap-3 font-medium">
            <span>{item.isError ? `Ended with an error (${item.subtype})` : "Finished"}</span>
            {item.turns !== null && <span className="text-zinc-500">{item.turns} turns</span>}
            {item.durationMs !== null && <span className="text-zinc-500">{duration(item.durationMs)}</span>}
            {item.costUsd !== null && <span className="text-zinc-500" data-cost>{money(item.costUsd)}</span>}
            {item.denials > 0 && <Badge tone="red"><ShieldAlert className="size-3" /> {item.denials} permission denial(s)</Badge>}
          </div>
        </div>
      );
    case "notice":
      return (
        <div className={cx("flex items-start gap-2 font-mono text-xs", item.level === "warning" ? "text-amber-700 dark:text-amber-400" : item.level === "stderr" ? "text-red-600 dark:text-red-400" : "text-zinc-500")}>
          {item.level === "warning" ? <AlertTriangle className="mt-0.5 size-3.5 shrink-0" /> : <Info className="mt-0.5 size-3.5 shrink-0" />}
          <span className="break-all whitespace-pre-wrap">{item.text}</span>
        </div>
      );
  }
});

export function Conversation({ items, version }: { items: Item[]; version: number }) {
  const parent = useRef<HTMLDivElement>(null);
  const [follow, setFollow] = useState(true);
  const v = useVirtualizer({
    count: items.length,
    getScrollElement: () => parent.current,
    estimateSize: () => 56,
    overscan: 8,
    getItemKey: (i) => items[i].key,
  });
  useEffect(() => {
    if (follow && items.length) v.scrollToIndex(items.length - 1, { align: "end" });
  }, [version, follow, items.length, v]);
  return (
    <div
      ref={parent}
      className="h-[calc(100vh-16rem)] min-h-80 overflow-y-auto rounded-xl bg-zinc-100/60 p-3 dark:bg-zinc-900/40"
      onScroll={(e) => {
        const el = e.currentTarget;
        setFollow(el.scrollHeight - el.scrollTop - el.clientHeight < 80);
      }}
      tabIndex={0}
      aria-label="Execution output"
    >
      <div style={{ height: v.getTotalSize(), position: "relative" }}>
        {v.getVirtualItems().map((row) => (
          <div key={row.key} data-index={row.index} ref={v.measureElement} className="absolute left-0 top-0 w-full pb-2" style={{ transform: `translateY(${row.start}px)` }}>
            <Row item={items[row.index]} />
          </div>
        ))}
      </div>
    </div>
  );
}
