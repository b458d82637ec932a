// The team canvas: personas as nodes, their positions saved. Edges (event subscriptions and
// chain triggers) plug in with the bus issue: `onConnect` / `onEdgesDelete` below are where
// they will call the subscription operations.
import { Background, Controls, type Node, type NodeChange, ReactFlow, applyNodeChanges } from "@xyflow/react";
import "@xyflow/react/dist/style.css";
import { Network } from "lucide-react";
import { useCallback, useEffect, useRef, useState } from "react";
import { backend, errorMessage } from "../backend";
import { Badge, Card, Empty, ErrorBox, PageHeader, Spinner } from "../components/ui";
import { useApp } from "../stores/app";
import { usePersonas } from "../stores/personas";

export function Canvas() {
  const personas = usePersonas((s) => s.list);
  const loaded = usePersonas((s) => s.loaded);
  const dark = useApp((s) => s.theme === "dark" || (s.theme === "system" && document.documentElement.classList.contains("dark")));
  const [nodes, setNodes] = useState<Node[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [saved, setSaved] = useState(true);
  const timer = useRef<ReturnType<typeof setTimeout>>(undefined);

  useEffect(() => {
    if (!loaded) return;
    backend()
      .call("get_canvas", {})
      .then((layout) => {
        const at = new Map(layout.nodes.map((n) => [n.persona_id, n]));
        setNodes(
          personas.map((p, i) => ({
            id: p.id,
            position: at.get(p.id) ? { x: at.get(p.id)!.x, y: at.get(p.id)!.y } : { x: (i % 4) * 240, y: Math.floor(i / 4) * 140 },
            data: { label: p.name },
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

  return (
    <div data-page="canvas">
      <PageHeader title="Team canvas" subtitle={<span>Arrange your personas. Connecting them with events and chains arrives with the event bus. <Badge tone={saved ? "green" : "amber"}>{saved ? "Layout saved" : "Saving…"}</Badge></span>} />
      {error && <ErrorBox error={error} />}
      <Card className="h-[calc(100vh-12rem)] overflow-hidden">
        {!nodes ? (
          <Spinner />
        ) : nodes.length === 0 ? (
          <Empty icon={<Network className="size-8" />} title="No personas to arrange" />
        ) : (
          <ReactFlow nodes={nodes} edges={[]} onNodesChange={onNodesChange} fitView colorMode={dark ? "dark" : "light"} nodesConnectable={false}>
            <Background />
            <Controls />
          </ReactFlow>
        )}
      </Card>
    </div>
  );
}
