// The desktop Backend: operations are Tauri commands (one per operation of the table, taking
// `{ req }`), events arrive on a Tauri channel from the engine in the same process. The only file
// of the app that imports @tauri-apps.
import { Channel, invoke } from "@tauri-apps/api/core";
import { listen } from "@tauri-apps/api/event";
import type { ApiError, OperationName, StreamFrame } from "../generated";
import { type Backend, BackendError, type Request, type Response, type StreamHandlers } from "./types";

/** Whether the app runs inside the desktop shell. */
export function isTauri(): boolean {
  return typeof window !== "undefined" && "__TAURI_INTERNALS__" in window;
}

function toBackendError(e: unknown): BackendError {
  if (e && typeof e === "object" && "code" in e && "message" in e) return BackendError.from(e as ApiError);
  return new BackendError("internal", typeof e === "string" ? e : String(e));
}

/** What the shell says about itself (see the `shell_info` command). */
export interface ShellInfo {
  mode: "local" | "attached" | "failed";
  data_dir: string;
  url: string | null;
  error: string | null;
  scheduler_paused: boolean;
  version: string;
  os: string;
}

export interface UpdateOffer {
  version: string;
  current_version: string;
  notes: string | null;
}

export class TauriBackend implements Backend {
  readonly kind = "tauri" as const;

  async call<K extends OperationName>(op: K, request: Request<K>): Promise<Response<K>> {
    try {
      return await invoke<Response<K>>(op, { req: request ?? {} });
    } catch (e) {
      throw toBackendError(e);
    }
  }

  subscribe(handlers: StreamHandlers): () => void {
    let closed = false;
    let id: number | null = null;
    const channel = new Channel<StreamFrame[]>();
    channel.onmessage = (frames) => {
      if (!closed) handlers.onFrames(frames);
    };
    handlers.onStatus("connecting");
    invoke<number>("subscribe_events", { after: null, epoch: null, onFrames: channel })
      .then((sub) => {
        id = sub;
        if (closed) void invoke("unsubscribe_events", { id: sub });
        else handlers.onStatus("open");
      })
      .catch(() => handlers.onStatus("closed"));
    return () => {
      closed = true;
      if (id !== null) void invoke("unsubscribe_events", { id });
    };
  }

  notify(title: string, body: string): void {
    // The shell raises notifications itself from the engine's events; a page-originated one is
    // only logged so nothing is shown twice.
    console.info("notification", title, body);
  }

  onNavigate(go: (path: string) => void): () => void {
    const off = listen<string>("personas://navigate", (e) => go(e.payload));
    return () => void off.then((f) => f());
  }

  /** The scheduler was paused or resumed (from the tray or a window). */
  onScheduler(changed: (paused: boolean) => void): () => void {
    const off = listen<boolean>("personas://scheduler", (e) => changed(e.payload));
    return () => void off.then((f) => f());
  }

  shellInfo(): Promise<ShellInfo> {
    return invoke<ShellInfo>("shell_info");
  }

  setSchedulerPaused(paused: boolean): Promise<boolean> {
    return invoke<boolean>("set_scheduler_paused", { paused }).catch((e) => {
      throw toBackendError(e);
    });
  }

  checkUpdate(): Promise<UpdateOffer | null> {
    return invoke<UpdateOffer | null>("check_update").catch((e) => {
      throw toBackendError(e);
    });
  }

  installUpdate(version: string): Promise<void> {
    return invoke<void>("install_update", { version }).catch((e) => {
      throw toBackendError(e);
    });
  }
}
