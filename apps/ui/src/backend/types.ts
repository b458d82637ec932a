// The one interface the app talks to. Two implementations: `web.ts` (HTTP + WebSocket to
// `personas up`) and, in the desktop shell, a Tauri one (invoke/listen). Nothing outside an
// implementation file may import @tauri-apps.
import type { ApiError, Code, OperationName, Operations, StreamFrame } from "../generated";

export type Request<K extends OperationName> = Operations[K]["request"];
export type Response<K extends OperationName> = Operations[K]["response"];

export type ConnectionStatus = "connecting" | "open" | "closed" | "unauthorized";

export interface StreamHandlers {
  /** Frames in order, as they arrive (bursts come together). */
  onFrames(frames: StreamFrame[]): void;
  onStatus(status: ConnectionStatus): void;
}

export interface Backend {
  readonly kind: "web" | "tauri";
  /** Calls one operation of the table. Rejects with a `BackendError`. */
  call<K extends OperationName>(op: K, request: Request<K>): Promise<Response<K>>;
  /** Opens the event stream (reconnecting and resuming by itself); returns a closer. */
  subscribe(handlers: StreamHandlers): () => void;
  /** Optional native abilities (the desktop shell provides them). */
  notify?(title: string, body: string): void;
  /** Pages the shell asks to open (deep links, tray menu); returns an unsubscriber. */
  onNavigate?(go: (path: string) => void): () => void;
}

/** An operation's failure, with the closed code and the field at fault. */
export class BackendError extends Error {
  readonly code: Code | "network";
  readonly field?: string;
  constructor(code: Code | "network", message: string, field?: string) {
    super(message);
    this.code = code;
    this.field = field;
  }
  static from(e: ApiError): BackendError {
    return new BackendError(e.code, e.message, e.field);
  }
}

/** The message to show for any thrown value. */
export function errorMessage(e: unknown): string {
  if (e instanceof Error) return e.message;
  return String(e);
}
