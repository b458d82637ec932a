import { motion } from "framer-motion";
import {
  BookCheck,
  Bot,
  CalendarCheck,
  CheckCircle2,
  CircleAlert,
  GitPullRequest,
  type LucideIcon,
  Mail,
  Newspaper,
  ScrollText,
  Siren,
  UserSearch,
  XCircle,
} from "lucide-react";
import { useState } from "react";
import { useNavigate } from "react-router";
import { BackendError, backend, errorMessage } from "../backend";
import { Badge, Button, Card, ErrorBox, Field, PageHeader, Spinner, inputClass } from "../components/ui";
import type { PersonaTemplate } from "../generated";
import { useQuery } from "../lib/useQuery";
import { usePersonas } from "../stores/personas";

// The icons the gallery's templates name (importing all of lucide would triple the bundle).
const icons: Record<string, LucideIcon> = {
  mail: Mail,
  "git-pull-request": GitPullRequest,
  "scroll-text": ScrollText,
  newspaper: Newspaper,
  siren: Siren,
  "user-search": UserSearch,
  "book-check": BookCheck,
  "calendar-check": CalendarCheck,
};

function TemplateCard({ t }: { t: PersonaTemplate }) {
  const fromTemplate = usePersonas((s) => s.fromTemplate);
  const nav = useNavigate();
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<{ message: string; field?: string } | null>(null);
  const [name, setName] = useState(t.spec.name);
  const Icon = icons[t.icon] ?? Bot;
  const create = async () => {
    setBusy(true);
    setError(null);
    try {
      const p = await fromTemplate(t.id, name === t.spec.name ? undefined : name);
      localStorage.setItem("personas.welcomed", "1");
      nav(`/personas/${encodeURIComponent(p.name)}?created=1`);
    } catch (e) {
      setError({ message: errorMessage(e), field: e instanceof BackendError ? e.field : undefined });
    } finally {
      setBusy(false);
    }
  };
  return (
    <motion.div layout initial={{ opacity: 0, y: 8 }} animate={{ opacity: 1, y: 0 }}>
      <Card className="flex h-full flex-col p-4" >
        <div className="flex items-start gap-3" data-template={t.id}>
          <div className="grid size-9 place-items-center rounded-lg bg-accent-50 text-accent-700 dark:bg-violet-950 dark:text-violet-300">
            <Icon className="size-5" aria-hidden />
          </div>
          <div className="flex-1">
            <h3 className="font-semibold">{t.spec.name}</h3>
            <Badge className="mt-0.5">{t.category}</Badge>
          </div>
        </div>
        <p className="mt-3 flex-1 text-sm text-zinc-500">{t.summary}</p>
        {error?.field === "name" && (
          <div className="mt-3">
            <Field label="Name" htmlFor={`name-${t.id}`} error={error.message}>
              <input id={`name-${t.id}`} className={inputClass} value={name} onChange={(e) => setName(e.target.value)} />
            </Field>
          </div>
        )}
        {error && error.field !== "name" && <p role="alert" className="mt-2 text-xs text-red-600">{error.message}</p>}
        <Button className="mt-4" variant="primary" size="sm" busy={busy} onClick={create} aria-label={`Create ${t.spec.name}`}>
          Create persona
        </Button>
      </Card>
    </motion.div>
  );
}

export function Onboarding() {
  const checks = useQuery(() => backend().call("system_check", {}), []);
  const templates = useQuery(() => backend().call("list_templates", {}), []);
  return (
    <div data-page="onboarding">
      <PageHeader title="Welcome to Personas" subtitle="Check your setup, then start from a ready persona — one click, and it runs." />
      <Card title="System check" className="mb-8" action={<Button size="sm" variant="ghost" onClick={checks.reload}>Check again</Button>}>
        {checks.error && <ErrorBox error={checks.error} retry={checks.reload} />}
        {!checks.data ? (
          <Spinner label="Checking your installation…" />
        ) : (
          <ul className="divide-y divide-zinc-100 dark:divide-zinc-800">
            {checks.data.checks.map((c) => (
              <li key={c.check} className="flex items-start gap-3 px-4 py-3 text-sm" data-check={c.check} data-check-status={c.status}>
                {c.status === "ok" ? (
                  <CheckCircle2 className="mt-0.5 size-4 text-emerald-500" aria-label="ok" />
                ) : c.status === "warn" ? (
                  <CircleAlert className="mt-0.5 size-4 text-amber-500" aria-label="warning" />
                ) : (
                  <XCircle className="mt-0.5 size-4 text-red-500" aria-label="failed" />
                )}
                <div className="min-w-0 flex-1">
                  <div className="font-medium capitalize">{c.check}</div>
                  <div className="break-words text-zinc-500">{c.detail}</div>
                  {c.hint && <div className="mt-1 rounded-md bg-amber-50 px-2 py-1 text-xs text-amber-900 dark:bg-amber-950 dark:text-amber-200">Fix: {c.hint}</div>}
                </div>
              </li>
            ))}
          </ul>
        )}
      </Card>
      <h2 className="mb-3 text-lg font-semibold">Template gallery</h2>
      {templates.error && <ErrorBox error={templates.error} retry={templates.reload} />}
      {!templates.data ? (
        <Spinner />
      ) : (
        <div className="grid gap-4 sm:grid-cols-2 lg:grid-cols-4">
          {templates.data.templates.map((t) => (
            <TemplateCard key={t.id} t={t} />
          ))}
        </div>
      )}
    </div>
  );
}
