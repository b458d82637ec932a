// The app frame: navigation rail, connection indicator, theme switch, and the page.
import { Activity, BarChart3, Bot, Brain, Cloud, Inbox, KeyRound, LayoutDashboard, Moon, Network, RadioTower, Settings, ShieldCheck, Sparkles, Sun, Wrench } from "lucide-react";
import { Suspense } from "react";
import { NavLink, Outlet } from "react-router";
import { useApp } from "../stores/app";
import { useInbox } from "../stores/inbox";
import { useReviews } from "../stores/reviews";
import { SidebarHandle, useSidebarWidth } from "./SidebarResize";
import { cx } from "./ui";

const nav = [
  { to: "/", label: "Dashboard", icon: LayoutDashboard, end: true },
  { to: "/personas", label: "Personas", icon: Bot },
  { to: "/executions", label: "Executions", icon: Activity },
  { to: "/messages", label: "Messages", icon: Inbox, badge: "unread" as const },
  { to: "/reviews", label: "Reviews", icon: ShieldCheck, badge: "pending" as const },
  { to: "/memories", label: "Memories", icon: Brain },
  { to: "/credentials", label: "Credentials", icon: KeyRound },
  { to: "/tools", label: "Tools", icon: Wrench },
  { to: "/observability", label: "Observability", icon: BarChart3 },
  { to: "/bus", label: "Event bus", icon: RadioTower },
  { to: "/canvas", label: "Team canvas", icon: Network },
  { to: "/cloud", label: "Cloud", icon: Cloud },
  { to: "/welcome", label: "Templates & setup", icon: Sparkles },
  { to: "/settings", label: "Settings", icon: Settings },
];

export function Layout() {
  const status = useApp((s) => s.status);
  const theme = useApp((s) => s.theme);
  const setTheme = useApp((s) => s.setTheme);
  const unread = useInbox((s) => s.unread);
  const pending = useReviews((s) => s.pending);
  const [sidebar, setSidebar] = useSidebarWidth();
  const dark = theme === "dark" || (theme === "system" && document.documentElement.classList.contains("dark"));
  return (
    <div className="flex h-full">
      <aside style={{ width: sidebar }} className="flex shrink-0 flex-col border-r border-zinc-200 bg-white/70 backdrop-blur dark:border-zinc-800 dark:bg-zinc-900/60">
        <div className="flex items-center gap-2 px-5 py-5">
          <div className="grid size-8 place-items-center rounded-lg bg-accent-600 text-white shadow">
            <Bot className="size-5" aria-hidden />
          </div>
          <span className="text-lg font-semibold tracking-tight">Personas</span>
        </div>
        <nav aria-label="Main" className="flex-1 space-y-0.5 px-3">
          {nav.map((n) => (
            <NavLink
              key={n.to}
              to={n.to}
              end={n.end}
              className={({ isActive }) =>
                cx(
                  "flex items-center gap-2.5 rounded-lg px-3 py-2 text-sm",
                  isActive
                    ? "bg-accent-50 font-medium text-accent-700 dark:bg-violet-950/60 dark:text-violet-200"
                    : "text-zinc-600 hover:bg-zinc-100 dark:text-zinc-400 dark:hover:bg-zinc-800",
                )
              }
            >
              <n.icon className="size-4" aria-hidden />
              <span className="flex-1">{n.label}</span>
              {n.badge === "unread" && unread > 0 && (
                <span className="rounded-full bg-accent-600 px-1.5 text-xs font-semibold text-white" aria-label={`${unread} unread`}>
                  {unread}
                </span>
              )}
              {n.badge === "pending" && pending > 0 && (
                <span className="rounded-full bg-amber-500 px-1.5 text-xs font-semibold text-white" aria-label={`${pending} pending`} data-pending-reviews={pending}>
                  {pending}
                </span>
              )}
            </NavLink>
          ))}
        </nav>
        <div className="flex items-center justify-between border-t border-zinc-200 px-4 py-3 text-xs text-zinc-500 dark:border-zinc-800">
          <span className="flex items-center gap-1.5" data-connection={status}>
            <span className={cx("size-2 rounded-full", status === "open" ? "bg-emerald-500" : status === "connecting" ? "bg-amber-400 animate-pulse" : "bg-red-500")} />
            {status === "open" ? "Live" : status === "connecting" ? "Connecting…" : "Offline — retrying"}
          </span>
          <button
            className="rounded-md p-1.5 hover:bg-zinc-100 dark:hover:bg-zinc-800"
            onClick={() => setTheme(dark ? "light" : "dark")}
            aria-label={dark ? "Switch to light theme" : "Switch to dark theme"}
          >
            {dark ? <Sun className="size-4" /> : <Moon className="size-4" />}
          </button>
        </div>
      </aside>
      <SidebarHandle width={sidebar} onWidth={setSidebar} />
      <main className="min-w-0 flex-1 overflow-y-auto">
        <div className="mx-auto max-w-6xl px-8 py-8">
          <Suspense fallback={<p className="text-sm text-zinc-500" role="status">Loading…</p>}>
            <Outlet />
          </Suspense>
        </div>
      </main>
    </div>
  );
}
