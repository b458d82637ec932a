// The sidebar's width: dragged (or moved with the arrow keys) on its edge, kept across restarts
// in localStorage — the desktop window keeps its size and position through the window-state
// plugin, and this keeps the sidebar with it.
import { useCallback, useState } from "react";

const KEY = "personas.sidebarWidth";
export const SIDEBAR_MIN = 180;
export const SIDEBAR_MAX = 420;
const DEFAULT = 240;

export function clampWidth(w: number): number {
  if (!Number.isFinite(w)) return DEFAULT;
  return Math.round(Math.min(SIDEBAR_MAX, Math.max(SIDEBAR_MIN, w)));
}

export function useSidebarWidth(storage: Storage = window.localStorage): [number, (w: number) => void] {
  const [width, setWidth] = useState(() => {
    const saved = storage.getItem(KEY);
    return saved === null ? DEFAULT : clampWidth(Number(saved));
  });
  const set = useCallback(
    (w: number) => {
      const c = clampWidth(w);
      setWidth(c);
      storage.setItem(KEY, String(c));
    },
    [storage],
  );
  return [width, set];
}

export function SidebarHandle({ width, onWidth }: { width: number; onWidth: (w: number) => void }) {
  return (
    <div
      role="separator"
      aria-orientation="vertical"
      aria-label="Resize the sidebar"
      aria-valuemin={SIDEBAR_MIN}
      aria-valuemax={SIDEBAR_MAX}
      aria-valuenow={width}
      tabIndex={0}
      className="w-1 shrink-0 cursor-col-resize bg-transparent hover:bg-accent-500/40 focus:bg-accent-500/40 focus:outline-none"
      onPointerDown={(e) => {
        const startX = e.clientX;
        const start = width;
        const target = e.currentTarget;
        target.setPointerCapture(e.pointerId);
        const move = (m: PointerEvent) => onWidth(start + m.clientX - startX);
        const up = () => {
          target.removeEventListener("pointermove", move);
          target.removeEventListener("pointerup", up);
        };
        target.addEventListener("pointermove", move);
        target.addEventListener("pointerup", up);
      }}
      onKeyDown={(e) => {
        if (e.key === "ArrowLeft") onWidth(width - 16);
        else if (e.key === "ArrowRight") onWidth(width + 16);
        else return;
        e.preventDefault();
      }}
    />
  );
}
