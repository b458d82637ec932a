import { act, fireEvent, render, renderHook } from "@testing-library/react";
import { describe, expect, it } from "vitest";
import { SIDEBAR_MAX, SIDEBAR_MIN, SidebarHandle, clampWidth, useSidebarWidth } from "./SidebarResize";

function memoryStorage(init: Record<string, string> = {}): Storage {
  const m = new Map(Object.entries(init));
  return {
    get length() {
      return m.size;
    },
    clear: () => m.clear(),
    getItem: (k) => m.get(k) ?? null,
    key: (i) => [...m.keys()][i] ?? null,
    removeItem: (k) => void m.delete(k),
    setItem: (k, v) => void m.set(k, v),
  };
}

describe("sidebar width", () => {
  it("is clamped, and garbage falls back to the default", () => {
    expect(clampWidth(10)).toBe(SIDEBAR_MIN);
    expect(clampWidth(9999)).toBe(SIDEBAR_MAX);
    expect(clampWidth(Number("x"))).toBe(240);
  });

  it("survives a restart through storage", () => {
    const storage = memoryStorage();
    const first = renderHook(() => useSidebarWidth(storage));
    act(() => first.result.current[1](300));
    first.unmount();
    const second = renderHook(() => useSidebarWidth(storage));
    expect(second.result.current[0]).toBe(300);
  });

  it("moves with the arrow keys on the handle", () => {
    const widths: number[] = [];
    const { getByRole } = render(<SidebarHandle width={240} onWidth={(w) => widths.push(w)} />);
    fireEvent.keyDown(getByRole("separator"), { key: "ArrowRight" });
    fireEvent.keyDown(getByRole("separator"), { key: "ArrowLeft" });
    expect(widths).toEqual([256, 224]);
  });
});
