// Persona-to-persona permission as the UI sees it: a persona's `allow_personas` (persona ids, or
// "*" for every persona) drawn as "may start" edges on the team canvas and edited as a list in
// the persona editor. Pure, so the canvas and the editor agree and both are tested once.
import type { PermissionPolicy, Persona } from "../generated";

/** The entry that lets a persona start every persona. */
export const ANY_PERSONA = "*";

/** One "may start" edge: `source`'s runs may start `target`. */
export type AllowEdge = { id: string; kind: "allow"; source: string; target: string };

const PREFIX = "allow:";

/** The edge id of "source may start target"; ids of trigger edges never start with it. */
export function allowEdgeId(source: string, target: string): string {
  return `${PREFIX}${source}:${target}`;
}

/** The (source, target) an allow edge id stands for, or null for any other edge. */
export function parseAllowEdgeId(id: string): { source: string; target: string } | null {
  if (!id.startsWith(PREFIX)) return null;
  const [source, target] = id.slice(PREFIX.length).split(":");
  return source && target ? { source, target } : null;
}

/** Edges for every named target of every persona; a target that no longer exists has none. */
export function allowEdgesOf(personas: Persona[]): AllowEdge[] {
  const known = new Set(personas.map((p) => p.id));
  return personas.flatMap((p) =>
    p.permissions.allow_personas
      .filter((t) => t !== ANY_PERSONA && known.has(t))
      .map((t) => ({ id: allowEdgeId(p.id, t), kind: "allow" as const, source: p.id, target: t })),
  );
}

/** `policy` with `target` allowed (on) or not (off); order kept, no repeats. */
export function withTarget(policy: PermissionPolicy, target: string, on: boolean): PermissionPolicy {
  const rest = policy.allow_personas.filter((t) => t !== target);
  return { ...policy, allow_personas: on ? [...rest, target] : rest };
}
