// Coalesces stream frames into one store update per animation frame. At thousands of output
// lines a second the runtime sends many WebSocket messages per frame; applying each one would
// re-render the execution view for every message. Frames are kept in arrival order and none is
// dropped; a hidden tab (no animation frames) is still flushed by a timer.
import type { StreamFrame } from "../generated";

export function frameBatcher(apply: (frames: StreamFrame[]) => void, maxDelayMs = 100) {
  let buffer: StreamFrame[] = [];
  let scheduled = false;
  let raf: number | null = null;
  let timer: ReturnType<typeof setTimeout> | null = null;
  const flush = () => {
    if (raf !== null && typeof cancelAnimationFrame === "function") cancelAnimationFrame(raf);
    if (timer !== null) clearTimeout(timer);
    raf = null;
    timer = null;
    scheduled = false;
    const frames = buffer;
    buffer = [];
    if (frames.length) apply(frames);
  };
  return {
    push(frames: StreamFrame[]) {
      for (const f of frames) buffer.push(f);
      if (scheduled) return;
      scheduled = true;
      if (typeof requestAnimationFrame === "function") raf = requestAnimationFrame(flush);
      timer = setTimeout(flush, maxDelayMs);
    },
    flush,
    get pending() {
      return buffer.length;
    },
  };
}
