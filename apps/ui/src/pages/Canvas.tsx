// The team canvas: personas as nodes, their event subscriptions and chains as edges, and the
// personas each one may start (its allow_personas) as "may start" edges. Drawing an edge from A
// to B asks what it means — B subscribes to an event type A emits, B runs after A ends, or A may
// start B — and adds that trigger to B or that target to A's policy; deleting an edge (select
// it, then Delete/Backspace, or the list below) removes it. Node positions are saved with the
// `save_canvas` operation.
import {
  Background,
  type Connection,
  Controls,
  type Edge,
  type EdgeChange,
  MarkerType,
  type Node,
  type NodeChange,
  ReactFlow,
  applyNodeChanges,
} from "@xyflow/react";
import "@xyflow/react/dist/style.css";
import { Link2, Network, Plus, Radio, ShieldCheck, Trash2 } from "lucide-react";
import { useCallback, useEffect, useMemo, useRef, useState } from "react";
import { BackendError, backend, errorMessage } from "../backend";
import { Dialog } from "../components/Dialog";
import { Badge, Button, Card, Empty, ErrorBox, Field, PageHeader, Spinner, cx, inputClass } from "../components/ui";
import type { ChainOn, Persona } from "../generated";
import { ANY_PERSONA, type AllowEdge, allowEdgesOf, parseAllowEdgeId, withTarget } from "../lib/allow";
import { useApp } from "../stores/app";
import { toSpec, usePersonas } from "../stores/personas";
import { type TriggerEdge, defaultEventType, edgeRequest, edgesOf, useTriggers } from "../stores/triggers";

type Pending = { source: string; target: string };

function ConnectDialog({ pending, personas, onClose }: { pending: Pending; personas: Persona[]; onClose: () => void }) {
  const add = useTriggers((s) => s.add);
  const update = usePersonas((s) => s.update);
  const [source, setSource] = useState(pending.source);
  const [target, setTarget] = useState(pending.target);
  const name = (id: string) => personas.find((p) => p.id === id)?.name ?? "";
  const [kind, setKind] = useState<"event" | "chain" | "allow">("event");
  const [event, setEvent] = useState(() => (pending.source ? defaultEventType(name(pending.source)) : ""));
  const [on, setOn] = useState<ChainOn>("completed");
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [busy, setBusy] = useState(false);
  const submit = async () => {
    const local: Record<string, string> = {};
    if (!source) local.source = "Pick where it starts.";
    if (!target) local.target = "Pick the persona that runs.";
    if (source && source === target) local.target = "A persona cannot follow itself here.";
    if (kind === "event" && !event.trim()) local.event = "Name the event type.";
    setErrors(local);
    if (Object.keys(local).length) return;
    setBusy(true);
    try {
      if (kind === "allow") {
        const from = personas.find((p) => p.id === source);
        if (from) await update(from.id, { ...toSpec(from), permissions: withTarget(from.permissions, target, true) });
      } else {
        await add(edgeRequest(source, target, kind === "event" ? { kind, event } : { kind, on }));
      }
      onClose();
    } catch (e) {
      if (e instanceof BackendError && e.field) setErrors({ [e.field === "chain" || e.field === "allow_personas" ? "source" : e.field]: e.message });
      else setErrors({ general: errorMessage(e) });
    } finally {
      setBusy(false);
    }
  };
  return (
    <Dialog title="Connect personas" onClose={onClose}>
      <form
        className="space-y-4"
        data-form="connect"
        onSubmit={(e) => {
          e.preventDefault();
          void submit();
        }}
      >
        {errors.general && <p role="alert" className="text-xs text-red-600">{errors.general}</p>}
        <div className="grid grid-cols-2 gap-3">
          <Field label="From" htmlFor="connect-source" error={errors.source}>
            <select
              id="connect-source"
              className={inputClass}
              value={source}
              onChange={(e) => {
                setSource(e.target.value);
                setEvent(defaultEventType(name(e.target.value)));
              }}
            >
              <option value="">Pick a persona</option>
              {personas.map((p) => (
                <option key={p.id} value={p.id}>{p.name}</option>
              ))}
            </select>
          </Field>
          <Field label="To (runs)" htmlFor="connect-target" error={errors.target}>
            <select id="connect-target" className={inputClass} value={target} onChange={(e) => setTarget(e.target.value)}>
              <option value="">Pick a persona</option>
              {personas.map((p) => (
                <option key={p.id} value={p.id}>{p.name}</option>
              ))}
            </select>
          </Field>
        </div>
        <fieldset className="space-y-2">
          <legend className="text-sm font-medium">What connects them</legend>
          <label className="flex items-start gap-2 text-sm">
            <input type="radio" name="connect-kind" checked={kind === "event"} onChange={() => setKind("event")} className="mt-1" />
            <span>
              <span className="font-medium">Event subscription</span>
              <span className="block text-xs text-zinc-500">{name(target) || "The target"} runs on each event of a type {name(source) || "the source"} emits.</span>
            </span>
          </label>
          <label className="flex items-start gap-2 text-sm">
            <input type="radio" name="connect-kind" checked={kind === "chain"} onChange={() => setKind("chain")} className="mt-1" />
            <span>
              <span className="font-medium">Chain</span>
              <span className="block text-xs text-zinc-500">{name(target) || "The target"} runs after each run of {name(source) || "the source"} ends.</span>
            </span>
          </label>
          <label className="flex items-start gap-2 text-sm">
            <input type="radio" name="connect-kind" checked={kind === "allow"} onChange={() => setKind("allow")} className="mt-1" />
            <span>
              <span className="font-medium">May start</span>
              <span className="block text-xs text-zinc-500">Runs of {name(source) || "the source"} may ask {name(target) || "the target"} to act (persona_action); without this they are denied.</span>
            </span>
          </label>
        </fieldset>
        {kind === "event" ? (
          <Field label="Event type" htmlFor="connect-event" error={errors.event} hint="Exact, or a prefix ending in *.">
            <input id="connect-event" className={cx(inputClass, "font-mono")} value={event} onChange={(e) => setEvent(e.target.value)} />
          </Field>
        ) : kind === "allow" ? null : (
          <Field label="When it" htmlFor="connect-on" error={errors.on}>
            <select id="connect-on" className={inputClass} value={on} onChange={(e) => setOn(e.target.value as ChainOn)}>
              <option value="completed">completes</option>
              <option value="failed">fails</option>
              <option value="any">ends either way</option>
            </select>
          </Field>
        )}
        <div className="flex justify-end gap-2">
          <Button type="button" variant="ghost" onClick={onClose}>Cancel</Button>
          <Button type="submit" variant="primary" busy={busy}>Connect</Button>
        </div>
      </form>
    </Dialog>
  );
}

function toAllowEdge(e: AllowEdge): Edge {
  const color = "#d97706";
  return {
    id: e.id,
    source: e.source,
    target: e.target,
    label: "may start",
    style: { stroke: color, strokeWidth: 1.5, strokeDasharray: "2 4" },
    markerEnd: { type: MarkerType.ArrowClosed, color },
    ariaLabel: "May start",
    data: { kind: "allow" },
  };
}

function toFlowEdge(e: TriggerEdge, dark: boolean): Edge {
  const color = !e.enabled ? "#a1a1aa" : e.kind === "event" ? "#8b5cf6" : dark ? "#38bdf8" : "#0284c7";
  return {
    id: e.id,
    source: e.source,
    target: e.target,
    label: e.kind === "event" ? e.label : e.label,
    animated: e.kind === "event" && e.enabled,
    style: { stroke: color, strokeWidth: 2, strokeDasharray: e.kind === "chain" ? "6 4" : undefined },
    markerEnd: { type: MarkerType.ArrowClosed, color },
    ariaLabel: `${e.kind === "event" ? "Subscription" : "Chain"} ${e.label}`,
    data: { kind: e.kind },
  };
}

export function Canvas() {
  const personas = usePersonas((s) => s.list);
  const loaded = usePersonas((s) => s.loaded);
  const triggers = useTriggers();
  const epoch = useApp((s) => s.epochVersion);
  const dark = useApp((s) => s.theme === "dark" || (s.theme === "system" && document.documentElement.classList.contains("dark")));
  const [nodes, setNodes] = useState<Node[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [saved, setSaved] = useState(true);
  const [pending, setPending] = useState<Pending | null>(null);
  const timer = useRef<ReturnType<typeof setTimeout>>(undefined);
  const loadTriggers = triggers.load;

  useEffect(() => {
    void loadTriggers();
  }, [loadTriggers, epoch]);

  useEffect(() => {
    if (!loaded) return;
    backend()
      .call("get_canvas", {})
      .then((layout) => {
        const at = new Map(layout.nodes.map((n) => [n.persona_id, n]));
        setNodes(
          personas.map((p, i) => ({
            id: p.id,
            position: at.get(p.id) ? { x: at.get(p.id)!.x, y: at.get(p.id)!.y } : { x: (i % 4) * 240, y: Math.floor(i / 4) * 160 },
            data: { label: p.name },
            deletable: false,
            ariaLabel: `Persona ${p.name}`,
            style: { borderRadius: 12, padding: 10, fontWeight: 600, border: "1px solid #a78bfa" },
          })),
        );
      })
      .catch((e) => setError(errorMessage(e)));
  }, [loaded, personas]);

  const persist = useCallback((ns: Node[]) => {
    clearTimeout(timer.current);
    setSaved(false);
    timer.current = setTimeout(() => {
      backend()
        .call("save_canvas", { nodes: ns.map((n) => ({ persona_id: n.id, x: n.position.x, y: n.position.y })) })
        .then(() => setSaved(true))
        .catch((e) => setError(errorMessage(e)));
    }, 400);
  }, []);

  const onNodesChange = useCallback(
    (changes: NodeChange[]) =>
      setNodes((ns) => {
        const next = applyNodeChanges(changes, ns ?? []);
        if (changes.some((c) => c.type === "position" && !c.dragging)) persist(next);
        return next;
      }),
    [persist],
  );

  const links = useMemo(() => edgesOf(triggers.list), [triggers.list]);
  const allowed = useMemo(() => allowEdgesOf(personas), [personas]);
  const [selected, setSelected] = useState<Set<string>>(new Set());
  const edges = useMemo(
    () => [...links.map((l) => toFlowEdge(l, dark)), ...allowed.map(toAllowEdge)].map((e) => ({ ...e, selected: selected.has(e.id) })),
    [links, allowed, dark, selected],
  );
  const update = usePersonas((s) => s.update);
  const removeLink = useCallback(
    (id: string) => {
      setError(null);
      const allow = parseAllowEdgeId(id);
      if (!allow) {
        triggers.remove(id).catch((e) => setError(errorMessage(e)));
        return;
      }
      const from = personas.find((p) => p.id === allow.source);
      if (from) update(from.id, { ...toSpec(from), permissions: withTarget(from.permissions, allow.target, false) }).catch((e) => setError(errorMessage(e)));
    },
    [triggers, personas, update],
  );
  const anyStarters = personas.filter((p) => p.permissions.allow_personas.includes(ANY_PERSONA));
  const onEdgesChange = useCallback(
    (changes: EdgeChange[]) => {
      setSelected((cur) => {
        const next = new Set(cur);
        for (const c of changes) {
          if (c.type === "select") {
            if (c.selected) next.add(c.id);
            else next.delete(c.id);
          } else if (c.type === "remove") {
            next.delete(c.id);
          }
        }
        return next;
      });
      for (const c of changes) if (c.type === "remove") removeLink(c.id);
    },
    [removeLink],
  );
  const onConnect = useCallback((c: Connection) => {
    if (c.source && c.target && c.source !== c.target) setPending({ source: c.source, target: c.target });
  }, []);
  const name = (id: string) => personas.find((p) => p.id === id)?.name ?? "(deleted)";

  return (
    <div data-page="canvas">
      <PageHeader
        title="Team canvas"
        subtitle={
          <span>
            Drag from a persona's lower handle to another to connect them; select a connection and press Delete to remove it.{" "}
            <Badge tone={saved ? "green" : "amber"}>{saved ? "Layout saved" : "Saving…"}</Badge>
          </span>
        }
        actions={
          <Button onClick={() => setPending({ source: "", target: "" })} disabled={personas.length < 2}>
            <Plus className="size-4" /> New connection
          </Button>
        }
      />
      {(error || triggers.error) && <ErrorBox error={(error ?? triggers.error)!} retry={() => void loadTriggers()} />}
      <Card className="h-[calc(100vh-20rem)] min-h-96 overflow-hidden">
        {!nodes || !triggers.loaded ? (
          <Spinner />
        ) : nodes.length === 0 ? (
          <Empty icon={<Network className="size-8" />} title="No personas to arrange">Create personas, then connect them here.</Empty>
        ) : (
          <ReactFlow
            nodes={nodes}
            edges={edges}
            onNodesChange={onNodesChange}
            onEdgesChange={onEdgesChange}
            onConnect={onConnect}
            fitView
            colorMode={dark ? "dark" : "light"}
            deleteKeyCode={["Delete", "Backspace"]}
          >
            <Background />
            <Controls />
          </ReactFlow>
        )}
      </Card>
      {nodes && nodes.length > 0 && (
        <Card title="Connections" className="mt-6 p-0">
          {links.length === 0 && allowed.length === 0 && anyStarters.length === 0 ? (
            <Empty title="No connections yet">Draw one on the canvas, or use New connection.</Empty>
          ) : (
            <ul className="divide-y divide-zinc-100 dark:divide-zinc-800" data-connections>
              {links.map((l) => (
                <li key={l.id} className="flex items-center gap-2 px-4 py-2 text-sm" data-connection={l.kind} data-connection-id={l.id}>
                  {l.kind === "event" ? <Radio className="size-4 text-violet-500" aria-hidden /> : <Link2 className="size-4 text-sky-600" aria-hidden />}
                  <span className={cx("flex-1", !l.enabled && "text-zinc-400")}>
                    <span className="font-medium">{name(l.source)}</span> → <span className="font-medium">{name(l.target)}</span>{" "}
                    <span className="text-zinc-500">{l.kind === "event" ? `on ${l.label}` : l.label}</span>
                    {!l.enabled && " (off)"}
                  </span>
                  <Button size="sm" variant="ghost" aria-label={`Remove connection ${name(l.source)} to ${name(l.target)}`} onClick={() => removeLink(l.id)}>
                    <Trash2 className="size-3.5" />
                  </Button>
                </li>
              ))}
              {allowed.map((l) => (
                <li key={l.id} className="flex items-center gap-2 px-4 py-2 text-sm" data-connection="allow" data-connection-id={l.id}>
                  <ShieldCheck className="size-4 text-amber-600" aria-hidden />
                  <span className="flex-1">
                    <span className="font-medium">{name(l.source)}</span> may start <span className="font-medium">{name(l.target)}</span>
                  </span>
                  <Button size="sm" variant="ghost" aria-label={`Remove connection ${name(l.source)} to ${name(l.target)}`} onClick={() => removeLink(l.id)}>
                    <Trash2 className="size-3.5" />
                  </Button>
                </li>
              ))}
              {anyStarters.map((p) => (
                <li key={`any:${p.id}`} className="flex items-center gap-2 px-4 py-2 text-sm text-red-700 dark:text-red-300" data-connection="allow-any">
                  <ShieldCheck className="size-4" aria-hidden />
                  <span className="flex-1">
                    <span className="font-medium">{p.name}</span> may start every persona (change it in its editor)
                  </span>
                </li>
              ))}
            </ul>
          )}
        </Card>
      )}
      {pending && <ConnectDialog pending={pending} personas={personas} onClose={() => setPending(null)} />}
    </div>
  );
}
