// The web Backend: operations as `POST /api/<name>` with the API token, events on one
// WebSocket that reconnects by itself and resumes from the last sequence it saw, so a dropped
// connection loses nothing (the server replays, or says `resync` when it cannot).
import type { OperationName, StreamFrame } from "../generated";
import { type Backend, BackendError, type Request, type Response, type StreamHandlers } from "./types";

const TOKEN_KEY = "personas.token";

/** Takes `#token=…` from the address (once, as printed by `personas up`), keeps it, and removes
 * it from the address bar and history. Returns the stored token. */
export function adoptToken(loc: Location = window.location, storage: Storage = window.localStorage): string | null {
  const m = /(?:^#|&)token=([0-9a-fA-F]{16,})/.exec(loc.hash);
  if (m) {
    storage.setItem(TOKEN_KEY, m[1]);
    const clean = loc.pathname + loc.search;
    window.history.replaceState(null, "", clean);
  }
  return storage.getItem(TOKEN_KEY);
}

export function storeToken(token: string, storage: Storage = window.localStorage) {
  storage.setItem(TOKEN_KEY, token.trim());
}

export function forgetToken(storage: Storage = window.localStorage) {
  storage.removeItem(TOKEN_KEY);
}

export class WebBackend implements Backend {
  readonly kind = "web" as const;
  private readonly base: string;
  private readonly token: string;

  constructor(token: string, base = "") {
    this.token = token;
    this.base = base;
  }

  async call<K extends OperationName>(op: K, request: Request<K>): Promise<Response<K>> {
    let resp: globalThis.Response;
    try {
      resp = await fetch(`${this.base}/api/${op}`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${this.token}` },
        body: JSON.stringify(request ?? {}),
      });
    } catch (e) {
      throw new BackendError("network", `cannot reach Personas (${(e as Error).message}); is \`personas up\` running?`);
    }
    const text = await resp.text();
    let body: unknown;
    try {
      body = text ? JSON.parse(text) : {};
    } catch {
      throw new BackendError("internal", `the server answered ${resp.status} with non-JSON: ${text.slice(0, 200)}`);
    }
    if (!resp.ok) {
      const e = body as { code?: string; message?: string; field?: string };
      throw new BackendError((e.code as BackendError["code"]) ?? "internal", e.message ?? `HTTP ${resp.status}`, e.field);
    }
    return body as Response<K>;
  }

  subscribe(handlers: StreamHandlers): () => void {
    let socket: WebSocket | null = null;
    let closed = false;
    let epoch: string | null = null;
    let seq: number | null = null;
    let attempt = 0;
    let timer: ReturnType<typeof setTimeout> | undefined;

    const connect = () => {
      if (closed) return;
      handlers.onStatus("connecting");
      const proto = window.location.protocol === "https:" ? "wss:" : "ws:";
      const host = this.base ? new URL(this.base).host : window.location.host;
      const q = epoch !== null && seq !== null ? `?after=${seq}&epoch=${encodeURIComponent(epoch)}` : "";
      const ws = new WebSocket(`${proto}//${host}/api/events${q}`, ["personas", `personas.token.${this.token}`]);
      socket = ws;
      ws.onopen = () => {
        attempt = 0;
        handlers.onStatus("open");
      };
      ws.onmessage = (msg) => {
        let frames: StreamFrame[];
        try {
          frames = JSON.parse(msg.data as string) as StreamFrame[];
        } catch {
          return;
        }
        for (const f of frames) {
          if (f.kind === "hello") {
            if (epoch !== null && f.epoch !== epoch) {
              // A new runtime instance: its sequence starts over and our state is stale.
              seq = f.seq;
            } else if (seq === null) seq = f.seq;
            epoch = f.epoch;
          } else if (f.kind === "event") {
            seq = f.seq;
          } else if (f.kind === "resync") {
            seq = f.seq;
            epoch = f.epoch;
          }
        }
        handlers.onFrames(frames);
      };
      ws.onclose = () => {
        socket = null;
        if (closed) return;
        handlers.onStatus("closed");
        attempt += 1;
        timer = setTimeout(connect, Math.min(5000, 250 * 2 ** Math.min(attempt, 5)));
      };
    };
    connect();
    return () => {
      closed = true;
      clearTimeout(timer);
      socket?.close();
    };
  }
}
