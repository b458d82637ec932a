// Desktop-only status in the corner: the runtime failed to start, the scheduler is paused (with
// resume), or an update is available (installed only when the person clicks Install).
import { Download, PauseCircle, PlayCircle, TriangleAlert } from "lucide-react";
import { useEffect, useState } from "react";
import { backend, errorMessage } from "../backend";
import type { ShellInfo, TauriBackend, UpdateOffer } from "../backend/tauri";
import { Button } from "./ui";

function shell(): TauriBackend {
  return backend() as TauriBackend;
}

export function DesktopBar() {
  const [info, setInfo] = useState<ShellInfo | null>(null);
  const [offer, setOffer] = useState<UpdateOffer | null>(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    void shell().shellInfo().then(setInfo);
    // A feed that cannot be reached is not worth a banner; the next start checks again.
    void shell()
      .checkUpdate()
      .then(setOffer)
      .catch(() => undefined);
    return shell().onScheduler((paused) => setInfo((i) => (i ? { ...i, scheduler_paused: paused } : i)));
  }, []);

  const togglePause = async (paused: boolean) => {
    setBusy(true);
    setError(null);
    try {
      await shell().setSchedulerPaused(paused);
      setInfo(await shell().shellInfo());
    } catch (e) {
      setError(errorMessage(e));
    } finally {
      setBusy(false);
    }
  };

  const install = async () => {
    if (!offer) return;
    setBusy(true);
    setError(null);
    try {
      await shell().installUpdate(offer.version);
    } catch (e) {
      setError(errorMessage(e));
      setBusy(false);
    }
  };

  if (!info) return null;
  const items: React.ReactNode[] = [];
  if (info.mode === "failed")
    items.push(
      <p key="failed" role="alert" className="flex items-start gap-2 text-red-700 dark:text-red-300">
        <TriangleAlert className="mt-0.5 size-4 shrink-0" aria-hidden />
        The Personas runtime did not start: {info.error}
      </p>,
    );
  if (info.mode === "local")
    items.push(
      <div key="sched" className="flex items-center gap-2" data-testid="scheduler-state">
        {info.scheduler_paused ? (
          <>
            <PauseCircle className="size-4 text-amber-600" aria-hidden /> Scheduler paused
            <Button size="sm" busy={busy} onClick={() => togglePause(false)}>
              <PlayCircle className="size-4" aria-hidden /> Resume
            </Button>
          </>
        ) : null}
      </div>,
    );
  if (offer)
    items.push(
      <div key="update" className="flex items-center gap-2">
        <Download className="size-4 text-accent-600" aria-hidden />
        Personas {offer.version} is available (you have {offer.current_version}).
        <Button size="sm" variant="primary" busy={busy} onClick={install}>
          Install and restart
        </Button>
      </div>,
    );
  if (error) items.push(<p key="err" role="alert" className="text-red-700 dark:text-red-300">{error}</p>);
  const visible = info.mode === "failed" || info.scheduler_paused || offer || error;
  if (!visible) return null;
  return (
    <aside
      aria-label="Desktop status"
      className="fixed bottom-4 right-4 z-50 max-w-md space-y-2 rounded-xl bg-white p-3 text-sm shadow-lg ring-1 ring-zinc-200 dark:bg-zinc-900 dark:ring-zinc-700"
    >
      {items}
    </aside>
  );
}
