import { describe, expect, it, vi } from "vitest";
import type { StreamFrame } from "../generated";
import { frameBatcher } from "./batch";

const ev = (seq: number): StreamFrame => ({ kind: "event", seq, event: { type: "message", message: { id: `m${seq}` } } }) as unknown as StreamFrame;

describe("frame batcher", () => {
  it("applies many messages as one batch, in order, dropping nothing", () => {
    vi.useFakeTimers();
    const applied: StreamFrame[][] = [];
    const b = frameBatcher((f) => applied.push(f), 50);
    for (let i = 1; i <= 1000; i++) b.push([ev(2 * i - 1), ev(2 * i)]);
    expect(applied).toEqual([]);
    expect(b.pending).toBe(2000);
    vi.advanceTimersByTime(50);
    expect(applied.length).toBe(1);
    expect(applied[0].map((f) => (f as { seq: number }).seq)).toEqual(Array.from({ length: 2000 }, (_, i) => i + 1));
    b.push([ev(2001)]);
    vi.advanceTimersByTime(50);
    expect(applied.length).toBe(2);
    expect(b.pending).toBe(0);
    vi.useRealTimers();
  });

  it("flushes what is buffered on demand (unsubscribe)", () => {
    const applied: StreamFrame[][] = [];
    const b = frameBatcher((f) => applied.push(f));
    b.push([ev(1)]);
    b.flush();
    b.flush();
    expect(applied.length).toBe(1);
  });
});
