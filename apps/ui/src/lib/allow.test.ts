import { describe, expect, it } from "vitest";
import type { PermissionPolicy, Persona } from "../generated";
import { allowEdgeId, allowEdgesOf, parseAllowEdgeId, withTarget } from "./allow";

const policy = (allow_personas: string[]): PermissionPolicy => ({ mode: "default", allow: [], deny: [], allow_personas });
const persona = (id: string, allow_personas: string[]) => ({ id, name: id.toUpperCase(), permissions: policy(allow_personas) }) as unknown as Persona;

describe("allow edges", () => {
  it("draws one edge per named target that exists, none for '*'", () => {
    const edges = allowEdgesOf([persona("a", ["b", "gone", "*"]), persona("b", []), persona("c", ["a"])]);
    expect(edges.map((e) => [e.source, e.target])).toEqual([
      ["a", "b"],
      ["c", "a"],
    ]);
    expect(edges[0].id).toBe(allowEdgeId("a", "b"));
  });

  it("round-trips edge ids and tells them from trigger ids", () => {
    expect(parseAllowEdgeId(allowEdgeId("p1", "p2"))).toEqual({ source: "p1", target: "p2" });
    expect(parseAllowEdgeId("0190a5b2-trigger-id")).toBeNull();
  });

  it("adds and removes a target without repeats, keeping the rest of the policy", () => {
    const p = { ...policy(["x"]), mode: "plan" as const, allow: ["Read"] };
    const added = withTarget(withTarget(p, "y", true), "y", true);
    expect(added.allow_personas).toEqual(["x", "y"]);
    expect(added.allow).toEqual(["Read"]);
    expect(added.mode).toBe("plan");
    expect(withTarget(added, "x", false).allow_personas).toEqual(["y"]);
  });
});
