import { Bot, Plus } from "lucide-react";
import { Link } from "react-router";
import { Badge, Button, Card, Empty, ErrorBox, PageHeader, Spinner } from "../components/ui";
import { usePersonas } from "../stores/personas";

export function Personas() {
  const { list, loaded, error, load } = usePersonas();
  return (
    <div data-page="personas">
      <PageHeader
        title="Personas"
        subtitle="Agents written in plain language. Each has its own instructions, limits and permissions."
        actions={
          <>
            <Link to="/welcome"><Button>From a template</Button></Link>
            <Link to="/personas/new"><Button variant="primary"><Plus className="size-4" /> New persona</Button></Link>
          </>
        }
      />
      {error && <ErrorBox error={error} retry={load} />}
      {!loaded ? (
        <Spinner />
      ) : list.length === 0 ? (
        <Card>
          <Empty icon={<Bot className="size-8" />} title="No personas yet">
            Start from a <Link className="text-accent-600 underline" to="/welcome">template</Link> or write your own.
          </Empty>
        </Card>
      ) : (
        <div className="grid gap-4 sm:grid-cols-2 lg:grid-cols-3">
          {list.map((p) => (
            <Link key={p.id} to={`/personas/${encodeURIComponent(p.name)}`} className="group">
              <Card className="h-full p-4 transition group-hover:ring-accent-400">
                <div className="flex items-center gap-2">
                  <Bot className="size-4 text-accent-600" aria-hidden />
                  <h3 className="flex-1 font-semibold">{p.name}</h3>
                  {!p.enabled && <Badge tone="amber">disabled</Badge>}
                </div>
                <p className="mt-2 line-clamp-3 text-sm text-zinc-500">{p.description || p.instructions}</p>
                <div className="mt-3 flex flex-wrap gap-1.5">
                  <Badge>v{p.prompt_version}</Badge>
                  <Badge>{p.model ?? "default model"}</Badge>
                  <Badge>{p.permissions.allow.length ? `${p.permissions.allow.length} tools allowed` : "no tools"}</Badge>
                </div>
              </Card>
            </Link>
          ))}
        </div>
      )}
    </div>
  );
}
