// UI benchmarks for the closing note, in Chromium against `personas up`:
//
// 1. stream: a run whose CLI (the stand-in `personas-fake-claude`, paced by
//    PERSONAS_FAKE_LINES_PER_SEC) writes N stream-json lines at R lines/s into the real engine;
//    the execution view is open before the first paced line (the CLI waits on a gate file the
//    benchmark creates once the view shows the run). Reports lines stored by the runtime, output
//    events the page received over the WebSocket, lines the view's model holds (rendered rows
//    come from it; the list is virtualised), gap refills from the store (a dropped live update
//    would cause one), DOM rows, how long the view took to catch up, and frame times while
//    streaming.
// 2. paint: first meaningful paint of the dashboard (its data shown) from the spawn of
//    `personas up`, over a data dir with history, the browser already running. Median of K.
//
// Usage: node apps/ui/e2e/bench.mjs [--lines 30000] [--rate 10000] [--paints 5] [--no-ws-count]
// Needs: /usr/bin/chromium, target/debug/{personas,personas-fake-claude} (cargo build --bins);
// PERSONAS_BENCH_BIN_DIR=target/release to measure release builds. Prints a JSON summary last.
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");
const arg = (name, def) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : def;
};
const LINES = arg("lines", 30000);
const RATE = arg("rate", 10000);
const PAINTS = arg("paints", 5);
const binDir = process.env.PERSONAS_BENCH_BIN_DIR ? resolve(process.env.PERSONAS_BENCH_BIN_DIR) : join(root, "target/debug");
const WAIT_MS = 120_000;

const tmp = mkdtempSync(join(tmpdir(), "personas-bench-"));
const children = new Set();
process.on("exit", () => {
  for (const c of children) if (c.exitCode === null) c.kill("SIGTERM");
});

/** Starts `personas up`; resolves with the child and the printed app URL. */
function up(dataDir) {
  return new Promise((resolveUp, reject) => {
    const child = spawn(join(binDir, "personas"), ["up", "--listen", "127.0.0.1:0"], {
      env: { ...process.env, PERSONAS_DATA_DIR: dataDir, RUST_LOG: "warn", PERSONAS_VAULT_PASSPHRASE: "bench", PERSONAS_VAULT_KEYCHAIN: "off" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    children.add(child);
    let err = "";
    child.stderr.on("data", (d) => (err = (err + d).slice(-4000)));
    child.on("exit", (code) => reject(new Error(`personas up exited (${code}): ${err}`)));
    const timer = setTimeout(() => reject(new Error("personas up printed no URL")), WAIT_MS);
    createInterface({ input: child.stdout }).on("line", (line) => {
      const m = /Open the app: (\S+)/.exec(line);
      if (m) {
        clearTimeout(timer);
        resolveUp({ child, url: m[1] });
      }
    });
  });
}

function stop(child) {
  return new Promise((r) => {
    if (child.exitCode !== null) return r();
    child.removeAllListeners("exit");
    child.on("exit", () => r());
    child.kill("SIGTERM");
  });
}

const pct = (xs, p) => {
  if (!xs.length) return null;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};

// The transcript: the recorded init line, N assistant text lines, the recorded result.
const fixture = readFileSync(join(root, "fixtures/claude-code/01-text.stdout.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l));
const [init, assistant, result] = [fixture.find((l) => l.type === "system"), fixture.find((l) => l.type === "assistant"), fixture.find((l) => l.type === "result")];
const lines = [JSON.stringify(init)];
for (let i = 1; i <= LINES; i++) {
  const a = structuredClone(assistant);
  a.message.id = `msg_bench_${i}`;
  a.message.content = [{ type: "text", text: `Line ${i} of ${LINES}: the quick brown fox jumps over the lazy dog.` }];
  lines.push(JSON.stringify(a));
}
lines.push(JSON.stringify(result));
const transcript = join(tmp, "transcript.jsonl");
writeFileSync(transcript, lines.join("\n") + "\n");
const gate = join(tmp, "gate");

const dataDir = join(tmp, "data");
mkdirSync(dataDir, { recursive: true });
writeFileSync(
  join(dataDir, "config.toml"),
  `claude_path = ${JSON.stringify(join(binDir, "personas-fake-claude"))}
[env]
PERSONAS_FAKE_TRANSCRIPT = ${JSON.stringify(transcript)}
PERSONAS_FAKE_LINES_PER_SEC = "${RATE}"
PERSONAS_FAKE_GATE = ${JSON.stringify(gate)}
`,
);

const context = await chromium.launchPersistentContext(join(tmp, "profile"), {
  executablePath: process.env.PERSONAS_E2E_CHROMIUM ?? "/usr/bin/chromium",
  headless: true,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  viewport: { width: 1400, height: 900 },
});
context.setDefaultTimeout(WAIT_MS);
const page = context.pages()[0] ?? (await context.newPage());
const summary = { lines: LINES, rate: RATE, bin_dir: binDir };

try {
  // ---- 1. the stream ----
  let { child, url } = await up(dataDir);
  const base = url.split("/#")[0];
  const token = url.split("#token=")[1];
  const call = async (op, body = {}) => {
    const r = await fetch(`${base}/api/${op}`, { method: "POST", headers: { authorization: `Bearer ${token}`, "content-type": "application/json" }, body: JSON.stringify(body) });
    const v = await r.json();
    if (!r.ok) throw new Error(`${op}: ${JSON.stringify(v)}`);
    return v;
  };
  await page.goto(url);
  await call("create_persona", { spec: { name: "Streamer", instructions: "Stream a lot." } });
  const exec = await call("run_persona", { persona: "Streamer" });

  // Output events for this run that reach the page over the WebSocket, and refills.
  let wsLines = 0;
  let refills = 0;
  // Counting frames makes the browser forward every WebSocket frame over CDP; --no-ws-count
  // leaves that out to see the page's frame times without it.
  if (!process.argv.includes("--no-ws-count")) page.on("websocket", (ws) =>
    ws.on("framereceived", ({ payload }) => {
      if (typeof payload !== "string" || !payload.includes('"output"')) return;
      for (const f of JSON.parse(payload)) if (f.kind === "event" && f.event.type === "output" && f.event.line.execution_id === exec.id) wsLines++;
    }),
  );
  await page.goto(`${base}/executions/${exec.id}`);
  const view = '[data-page="execution"]';
  await page.waitForSelector(`${view}[data-execution-status="running"]`);
  await page.waitForFunction((sel) => Number(document.querySelector(sel)?.getAttribute("data-line-count")) >= 1, view);
  page.on("request", (r) => r.url().endsWith("/api/execution_output") && refills++);
  const before = Number(await page.getAttribute(view, "data-line-count"));
  const wsBefore = wsLines;

  // Frame times and long tasks while streaming; the time the line count last changed.
  await page.evaluate((sel) => {
    const w = window;
    w.__bench = { frames: [], longTasks: 0, lastChange: 0, running: true };
    let prev = performance.now();
    const tick = (t) => {
      w.__bench.frames.push(t - prev);
      prev = t;
      if (w.__bench.running) requestAnimationFrame(tick);
    };
    requestAnimationFrame(tick);
    try {
      new PerformanceObserver((l) => (w.__bench.longTasks += l.getEntries().length)).observe({ type: "longtask", buffered: false });
    } catch {}
    new MutationObserver(() => (w.__bench.lastChange = performance.now())).observe(document.querySelector(sel), { attributes: true, attributeFilter: ["data-line-count"] });
    w.__bench.t0 = performance.now();
  }, view);
  writeFileSync(gate, "go");
  const t0 = Date.now();
  await page.waitForSelector(`${view}[data-execution-status="completed"]`);
  const runDone = Date.now();
  // Everything the runtime stored for the run.
  let stored = 0;
  for (let after = 0, more = true; more; ) {
    const p = await call("execution_output", { id: exec.id, after, limit: 5000 });
    stored += p.lines.length;
    after = p.last_seq;
    more = p.more;
  }
  await page.waitForFunction(([sel, n]) => Number(document.querySelector(sel)?.getAttribute("data-line-count")) >= n, [view, stored]);
  const bench = await page.evaluate(() => {
    const b = window.__bench;
    b.running = false;
    return { frames: b.frames, longTasks: b.longTasks, caughtUpMs: b.lastChange - b.t0 };
  });
  const rendered = Number(await page.getAttribute(view, "data-line-count"));
  const domRows = await page.locator("[data-index]").count();
  const lastText = await page.locator('[data-kind="assistant-text"]').last().innerText();
  const e = await call("get_execution", { id: exec.id });
  summary.stream = {
    sent_by_cli: lines.length,
    stored_by_runtime: stored,
    in_view_before_stream: before,
    ws_output_events_during_stream: process.argv.includes("--no-ws-count") ? null : wsLines - wsBefore,
    rendered_in_view: rendered,
    dropped: stored - rendered,
    gap_refills_from_store: refills,
    dom_rows: domRows,
    last_row_shows_last_line: lastText.includes(`Line ${LINES} of ${LINES}`),
    paced_stream_seconds: +(LINES / RATE).toFixed(2),
    run_wall_seconds: +((runDone - t0) / 1000).toFixed(2),
    view_caught_up_seconds: +(bench.caughtUpMs / 1000).toFixed(2),
    achieved_lines_per_sec: Math.round(rendered / Math.max(bench.caughtUpMs / 1000, LINES / RATE)),
    frame_ms_p50: +pct(bench.frames, 50).toFixed(1),
    frame_ms_p95: +pct(bench.frames, 95).toFixed(1),
    frame_ms_max: +Math.max(...bench.frames).toFixed(1),
    long_tasks: bench.longTasks,
    execution_status: e.status,
  };
  console.log("stream", JSON.stringify(summary.stream));
  await page.screenshot({ path: join(root, "target/ui-screenshots/bench-stream.png") });

  // ---- 2. first meaningful paint of the dashboard ----
  await page.evaluate(() => localStorage.setItem("personas.welcomed", "1"));
  await stop(child);
  const paints = [];
  const ready = [];
  for (let k = 0; k < PAINTS; k++) {
    await page.goto("about:blank");
    const s0 = Date.now();
    ({ child, url } = await up(dataDir));
    ready.push(Date.now() - s0);
    await page.goto(url);
    await page.waitForSelector('[data-page="dashboard"]');
    paints.push(Date.now() - s0);
    await stop(child);
  }
  summary.paint = { runs: PAINTS, up_ready_ms_median: pct(ready, 50), dashboard_paint_ms_median: pct(paints, 50), dashboard_paint_ms_all: paints };
  console.log("paint", JSON.stringify(summary.paint));
} finally {
  await context.close();
  for (const c of children) await stop(c);
  rmSync(tmp, { recursive: true, force: true });
}
console.log(JSON.stringify(summary, null, 2));
const ok = summary.stream && summary.stream.dropped === 0 && summary.stream.gap_refills_from_store === 0 && summary.stream.last_row_shows_last_line;
process.exit(ok ? 0 : 1);
