import { fireEvent, render } from "@testing-library/react";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { PermissionPolicy, Persona } from "../generated";
import { usePersonas } from "../stores/personas";
import { AllowPersonas } from "./PersonaAccess";

const persona = (id: string, name: string) => ({ id, name, permissions: { mode: "default", allow: [], deny: [], allow_personas: [] } }) as unknown as Persona;
const policy = (allow_personas: string[]): PermissionPolicy => ({ mode: "default", allow: ["Read"], deny: [], allow_personas });

describe("the editor's 'may start personas' list", () => {
  afterEach(() => vi.restoreAllMocks());
  beforeEach(() => usePersonas.setState({ list: [persona("me", "Intake"), persona("w", "Worker"), persona("v", "Vault")], loaded: true }));

  it("lists the other personas by name and stores ids", () => {
    const onChange = vi.fn();
    const { container } = render(<AllowPersonas policy={policy(["w"])} onChange={onChange} self="me" />);
    const boxes = [...container.querySelectorAll<HTMLInputElement>("[data-allow-persona]")];
    expect(boxes.map((b) => [b.dataset.allowPersona, b.checked])).toEqual([
      ["Worker", true],
      ["Vault", false],
    ]);
    fireEvent.click(boxes[1]);
    expect(onChange).toHaveBeenCalledWith(policy(["w", "v"]));
    fireEvent.click(boxes[0]);
    expect(onChange).toHaveBeenLastCalledWith(policy([]));
  });

  it("asks before allowing every persona, and warns while it is allowed", () => {
    const onChange = vi.fn();
    const confirm = vi.spyOn(window, "confirm").mockReturnValue(false);
    const { container, rerender } = render(<AllowPersonas policy={policy([])} onChange={onChange} />);
    fireEvent.click(container.querySelector("[data-allow-any]")!);
    expect(confirm).toHaveBeenCalled();
    expect(onChange).not.toHaveBeenCalled();
    confirm.mockReturnValue(true);
    fireEvent.click(container.querySelector("[data-allow-any]")!);
    expect(onChange).toHaveBeenCalledWith(policy(["*"]));
    expect(container.querySelector("[data-any-persona-warning]")).toBeNull();
    rerender(<AllowPersonas policy={policy(["*"])} onChange={onChange} />);
    expect(container.querySelector("[data-any-persona-warning]")).not.toBeNull();
  });
});
