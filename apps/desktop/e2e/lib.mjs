// Process plumbing shared by the desktop e2e and benchmark: every process in its own group
// (killed as a group on exit), output kept per name, an X server and a session bus of our own.
import { spawn, spawnSync } from "node:child_process";
import { readFileSync, readdirSync } from "node:fs";
import { createInterface } from "node:readline";

export const STEP_MS = 60_000;
const groups = [];
export const logs = {};

/** Kills every process group started through `group` (drivers, the app, Xvfb, the bus). */
function cleanup() {
  for (const g of groups.reverse()) {
    try {
      process.kill(-g.pid, "SIGTERM");
    } catch {}
  }
  const deadline = Date.now() + 3000;
  for (const g of groups) {
    while (g.exitCode === null && g.signalCode === null && Date.now() < deadline) spawnSync("sleep", ["0.05"]);
    try {
      process.kill(-g.pid, "SIGKILL");
    } catch {}
  }
}
process.on("exit", cleanup);
for (const sig of ["SIGINT", "SIGTERM"]) process.on(sig, () => process.exit(130));

/** Bounds the whole script: a hung GUI must not hold CI. */
export function deadline(ms, what) {
  setTimeout(() => {
    console.error(`${what}: over ${ms / 60000} minutes; giving up`);
    process.exit(1);
  }, ms).unref();
}

/** Starts a process in its own group; its output is kept (last 200 kB) under `logs[name]`. */
export function group(name, cmd, args, env = {}, stdio = ["ignore", "pipe", "pipe"]) {
  const child = spawn(cmd, args, { env: { ...process.env, ...env }, stdio, detached: true });
  groups.push(child);
  logs[name] = "";
  const keep = (d) => {
    logs[name] += d;
    if (logs[name].length > 200_000) logs[name] = logs[name].slice(-100_000);
  };
  child.stdout?.on("data", keep);
  child.stderr?.on("data", keep);
  return child;
}

/** Resolves with the first stdout line of `child` matching `re`. */
export function firstLine(child, re, what) {
  return new Promise((ok, fail) => {
    const timer = setTimeout(() => fail(new Error(`${what}: nothing matching ${re} within ${STEP_MS} ms`)), STEP_MS);
    child.on("exit", (code) => fail(new Error(`${what} exited (${code})`)));
    createInterface({ input: child.stdout }).on("line", (line) => {
      const m = re.exec(line);
      if (m) {
        clearTimeout(timer);
        ok(m);
      }
    });
  });
}

/** Polls `fn` until it returns something truthy (or throws the last error after `ms`). */
export async function waitFor(what, fn, ms = STEP_MS) {
  const end = Date.now() + ms;
  let last;
  while (Date.now() < end) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${last.message}` : ""}`);
}

/** A private X server (Xvfb picks a free display) and session bus; the env to run apps in. */
export async function desktopSession() {
  const xvfb = group("xvfb", "Xvfb", ["-displayfd", "3", "-screen", "0", "1400x900x24", "-nolisten", "tcp"], {}, ["ignore", "pipe", "pipe", "pipe"]);
  const display = await new Promise((ok, fail) => {
    const t = setTimeout(() => fail(new Error("Xvfb gave no display")), 20_000);
    xvfb.stdio[3].on("data", (d) => {
      clearTimeout(t);
      ok(`:${String(d).trim()}`);
    });
    xvfb.on("exit", (c) => fail(new Error(`Xvfb exited (${c}): ${logs.xvfb}`)));
  });
  const dbus = group("dbus", "dbus-daemon", ["--session", "--nofork", "--nopidfile", "--print-address=1"]);
  const bus = (await firstLine(dbus, /^(unix:\S+)/, "dbus-daemon"))[1];
  return { DISPLAY: display, DBUS_SESSION_BUS_ADDRESS: bus };
}

/** Proportional set size (kB) of a process and all its descendants, by process. */
export function pssTree(pid) {
  const kids = (p) => {
    const out = [];
    for (const d of readdirSync("/proc")) {
      if (!/^\d+$/.test(d)) continue;
      try {
        const stat = readFileSync(`/proc/${d}/stat`, "utf8");
        if (Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]) === p) out.push(Number(d), ...kids(Number(d)));
      } catch {}
    }
    return out;
  };
  return [pid, ...kids(pid)].map((p) => ({
    pid: p,
    name: readFileSync(`/proc/${p}/comm`, "utf8").trim(),
    kb: Number(/^Pss:\s+(\d+)/m.exec(readFileSync(`/proc/${p}/smaps_rollup`, "utf8"))?.[1] ?? 0),
  }));
}
