// Routes of the app, and the connection to the runtime through the Backend.
import { lazy, useEffect, useState } from "react";
import { BrowserRouter, Route, Routes, useNavigate } from "react-router";
import { backend, setBackend } from "./backend";
import { TauriBackend, isTauri } from "./backend/tauri";
import { WebBackend, adoptToken, forgetToken, storeToken } from "./backend/web";
import { DesktopBar } from "./components/DesktopBar";
import { Layout } from "./components/Layout";
import { Button, Card, Field, inputClass } from "./components/ui";
import { CloudPage } from "./pages/Cloud";
import { Credentials } from "./pages/Credentials";
import { Dashboard } from "./pages/Dashboard";
import { Executions } from "./pages/Executions";
import { Memories } from "./pages/Memories";
import { Messages } from "./pages/Messages";
import { PersonaEditor } from "./pages/PersonaEditor";
import { Personas } from "./pages/Personas";
import { Reviews } from "./pages/Reviews";
import { SettingsPage } from "./pages/Settings";
import { Tools } from "./pages/Tools";
import { useApp } from "./stores/app";
import { useInbox } from "./stores/inbox";
import { useReviews } from "./stores/reviews";
import { frameBatcher } from "./lib/batch";
import { usePersonas } from "./stores/personas";

// Pages that bring a large library (charts, the canvas, Markdown, animation) load on first visit,
// so the first page paints without them and the webview holds less until they are needed.
const Canvas = lazy(() => import("./pages/Canvas").then((m) => ({ default: m.Canvas })));
const EventBus = lazy(() => import("./pages/EventBus").then((m) => ({ default: m.EventBus })));
const ExecutionView = lazy(() => import("./pages/ExecutionView").then((m) => ({ default: m.ExecutionView })));
const Observability = lazy(() => import("./pages/Observability").then((m) => ({ default: m.Observability })));
const Onboarding = lazy(() => import("./pages/Onboarding").then((m) => ({ default: m.Onboarding })));

function TokenGate({ onToken, rejected }: { onToken: (t: string) => void; rejected: boolean }) {
  const [value, setValue] = useState("");
  return (
    <div className="grid h-full place-items-center p-6">
      <Card className="w-full max-w-md p-6">
        <h1 className="text-xl font-semibold">Connect to Personas</h1>
        <p className="mt-2 text-sm text-zinc-500">
          Open the link <code>personas up</code> printed (it carries the access token once), or paste the token from{" "}
          <code>&lt;data dir&gt;/api-token</code>.
        </p>
        <form
          className="mt-4 space-y-3"
          onSubmit={(e) => {
            e.preventDefault();
            if (value.trim()) onToken(value.trim());
          }}
        >
          <Field label="API token" htmlFor="token" error={rejected ? "That token was refused by the runtime." : null}>
            <input id="token" className={inputClass} value={value} onChange={(e) => setValue(e.target.value)} autoFocus />
          </Field>
          <Button variant="primary" type="submit">
            Connect
          </Button>
        </form>
      </Card>
    </div>
  );
}

/** Opens the pages the desktop shell asks for (deep links, the tray's recent runs). */
function ShellNavigation() {
  const navigate = useNavigate();
  useEffect(() => backend().onNavigate?.((path) => navigate(path)), [navigate]);
  return null;
}

// In the desktop shell the engine is in-process: no token, no HTTP.
const desktop = isTauri();

export function App() {
  const [token, setToken] = useState<string | null>(() => (desktop ? "in-process" : adoptToken()));
  const [rejected, setRejected] = useState(false);
  const [ready, setReady] = useState(false);

  useEffect(() => {
    if (!token) return;
    setBackend(desktop ? new TauriBackend() : new WebBackend(token));
    let stop = () => {};
    backend()
      .call("get_settings", {})
      .then(() => {
        setReady(true);
        const app = useApp.getState();
        const batch = frameBatcher(app.applyFrames);
        const unsubscribe = backend().subscribe({ onFrames: batch.push, onStatus: app.setStatus });
        stop = () => {
          unsubscribe();
          batch.flush();
        };
        void usePersonas.getState().load();
        void useInbox.getState().refresh().catch(() => undefined);
        void useReviews.getState().refresh().catch(() => undefined);
      })
      .catch((e) => {
        if (e.code === "unauthorized") {
          forgetToken();
          setRejected(true);
          setToken(null);
        } else {
          useApp.getState().setStatus("closed");
          setReady(true);
        }
      });
    return () => stop();
  }, [token]);

  const epoch = useApp((s) => s.epochVersion);
  useEffect(() => {
    if (epoch > 0) {
      void usePersonas.getState().load();
      void useInbox.getState().refresh().catch(() => undefined);
      void useReviews.getState().refresh().catch(() => undefined);
    }
  }, [epoch]);

  if (!token)
    return (
      <TokenGate
        rejected={rejected}
        onToken={(t) => {
          storeToken(t);
          setRejected(false);
          setToken(t);
        }}
      />
    );
  if (!ready) return null;
  return (
    <BrowserRouter>
      {desktop && <ShellNavigation />}
      {desktop && <DesktopBar />}
      <Routes>
        <Route element={<Layout />}>
          <Route index element={<Dashboard />} />
          <Route path="welcome" element={<Onboarding />} />
          <Route path="personas" element={<Personas />} />
          <Route path="personas/new" element={<PersonaEditor />} />
          <Route path="personas/:name" element={<PersonaEditor />} />
          <Route path="executions" element={<Executions />} />
          <Route path="executions/:id" element={<ExecutionView />} />
          <Route path="messages" element={<Messages />} />
          <Route path="reviews" element={<Reviews />} />
          <Route path="memories" element={<Memories />} />
          <Route path="credentials" element={<Credentials />} />
          <Route path="tools" element={<Tools />} />
          <Route path="observability" element={<Observability />} />
          <Route path="bus" element={<EventBus />} />
          <Route path="canvas" element={<Canvas />} />
          <Route path="cloud" element={<CloudPage />} />
          <Route path="settings" element={<SettingsPage />} />
          <Route path="*" element={<p className="text-zinc-500">Nothing here.</p>} />
        </Route>
      </Routes>
    </BrowserRouter>
  );
}
