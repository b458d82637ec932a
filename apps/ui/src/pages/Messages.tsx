import { CheckCheck, Inbox } from "lucide-react";
import { useEffect, useState } from "react";
import { Link } from "react-router";
import { errorMessage } from "../backend";
import { Badge, Button, Card, Empty, ErrorBox, PageHeader } from "../components/ui";
import { ago } from "../lib/format";
import { useInbox } from "../stores/inbox";

const tone = { urgent: "red", high: "amber", normal: "zinc", low: "zinc" } as const;

export function Messages() {
  const { latest, unread, refresh, markRead } = useInbox();
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    refresh().catch((e) => setError(errorMessage(e)));
  }, [refresh]);
  return (
    <div data-page="messages">
      <PageHeader
        title="Messages"
        subtitle={`${unread} unread — what your personas want you to know.`}
        actions={<Button onClick={() => markRead().catch((e) => setError(errorMessage(e)))} disabled={unread === 0}><CheckCheck className="size-4" /> Mark all read</Button>}
      />
      {error && <ErrorBox error={error} retry={() => refresh().then(() => setError(null)).catch((e) => setError(errorMessage(e)))} />}
      <Card>
        {latest.length === 0 ? (
          <Empty icon={<Inbox className="size-8" />} title="Inbox zero">Personas send messages with a user_message line in their answer.</Empty>
        ) : (
          <ul className="divide-y divide-zinc-100 dark:divide-zinc-800">
            {latest.map((m) => (
              <li key={m.id} className="flex gap-3 px-4 py-3" data-message-status={m.status}>
                <span className={m.status === "unread" ? "mt-2 size-2 shrink-0 rounded-full bg-accent-600" : "mt-2 size-2 shrink-0"} aria-label={m.status} />
                <div className="min-w-0 flex-1">
                  <div className="flex flex-wrap items-center gap-2 text-sm">
                    <span className="font-semibold">{m.title ?? "Message"}</span>
                    <Badge tone={tone[m.priority as keyof typeof tone] ?? "zinc"}>{m.priority}</Badge>
                    <span className="text-xs text-zinc-400">from {m.persona_name} · {ago(m.created_at)}</span>
                  </div>
                  <p className="mt-1 whitespace-pre-wrap text-sm text-zinc-600 dark:text-zinc-300">{m.content}</p>
                  {m.execution_id && <Link className="text-xs text-accent-600" to={`/executions/${m.execution_id}`}>View the run</Link>}
                </div>
                {m.status === "unread" && <Button size="sm" variant="ghost" onClick={() => markRead([m.id]).catch((e) => setError(errorMessage(e)))}>Mark read</Button>}
              </li>
            ))}
          </ul>
        )}
      </Card>
    </div>
  );
}
