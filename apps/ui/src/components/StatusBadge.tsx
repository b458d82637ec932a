import { CheckCircle2, CircleDashed, Clock, Loader2, OctagonX, PauseCircle, TimerOff, XCircle } from "lucide-react";
import type { ExecutionStatus } from "../generated";
import { Badge } from "./ui";

const look: Record<ExecutionStatus, { tone: "zinc" | "green" | "red" | "amber" | "blue" | "violet"; icon: typeof Clock; label: string }> = {
  queued: { tone: "zinc", icon: Clock, label: "Queued" },
  running: { tone: "blue", icon: Loader2, label: "Running" },
  awaiting_review: { tone: "violet", icon: PauseCircle, label: "Awaiting review" },
  completed: { tone: "green", icon: CheckCircle2, label: "Completed" },
  failed: { tone: "red", icon: XCircle, label: "Failed" },
  incomplete: { tone: "amber", icon: CircleDashed, label: "Incomplete" },
  cancelled: { tone: "zinc", icon: OctagonX, label: "Cancelled" },
  timed_out: { tone: "red", icon: TimerOff, label: "Timed out" },
};

export function StatusBadge({ status }: { status: ExecutionStatus }) {
  const l = look[status];
  const Icon = l.icon;
  return (
    <Badge tone={l.tone}>
      <Icon className={status === "running" ? "size-3 animate-spin" : "size-3"} aria-hidden />
      <span data-status={status}>{l.label}</span>
    </Badge>
  );
}
