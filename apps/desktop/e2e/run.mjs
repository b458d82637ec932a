// End-to-end test of the desktop app under Xvfb: the real app binary (engine in-process, UI over
// Tauri IPC) driven through tauri-driver + WebKitWebDriver, with the REAL Claude Code CLI
// talking to the scripted Messages API. Every external process runs in its own process group
// and the whole group is killed at the end; every step is bounded by a timeout.
//
// Needs: the app built with its UI (`make desktop-test` builds target/debug/personas-desktop),
// target/debug/{personas,personas-scripted-api}, the pinned CLI in .tools/, tauri-driver in
// .tools/tauri-driver, Xvfb, dbus-daemon, WebKitWebDriver, python3-xlib
// (scripts/install-desktop-deps.sh). Prints "N passed, N failed"; exits non-zero on failure.
// Screenshots: target/desktop-screenshots/*.png. With PERSONAS_DESKTOP_BENCH=1 it also waits
// 30 s idle and prints the memory (PSS) of the app's processes.
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { STEP_MS, deadline, desktopSession, firstLine, group, logs, pssTree, waitFor } from "./lib.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, "../../..");
const appBin = process.env.PERSONAS_DESKTOP_APP ?? join(root, "target/debug/personas-desktop");
const cliBin = join(root, "target/debug/personas");
const apiBin = join(root, "target/debug/personas-scripted-api");
const driverBin = process.env.TAURI_DRIVER ?? join(root, ".tools/tauri-driver/bin/tauri-driver");
const claude = process.env.PERSONAS_TEST_CLAUDE ?? join(root, ".tools/claude-code/node_modules/.bin/claude");
const shots = join(root, "target/desktop-screenshots");
const TITLE = "Personas";
mkdirSync(shots, { recursive: true });

for (const [what, p] of [["app", appBin], ["personas", cliBin], ["scripted API", apiBin], ["tauri-driver", driverBin], ["claude", claude]])
  if (!existsSync(p)) {
    console.error(`desktop e2e: the ${what} binary is missing at ${p} (run \`make desktop-test\`)`);
    process.exit(2);
  }

const tmp = mkdtempSync(join(tmpdir(), "personas-desktop-e2e-"));
let passed = 0;
let failed = 0;
deadline(600_000, "desktop e2e");

async function step(name, fn) {
  const t0 = Date.now();
  try {
    await Promise.race([fn(), new Promise((_, no) => setTimeout(() => no(new Error(`step over ${STEP_MS * 2} ms`)), STEP_MS * 2))]);
    passed++;
    console.log(`ok   ${name} (${Date.now() - t0} ms)`);
  } catch (e) {
    failed++;
    console.log(`FAIL ${name}: ${e.stack ?? e}`);
  }
}

function assert(cond, msg) {
  if (!cond) throw new Error(`assertion failed: ${msg}`);
}

const freePort = () =>
  new Promise((ok) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => {
      const p = s.address().port;
      s.close(() => ok(p));
    });
  });

const { DISPLAY: display, DBUS_SESSION_BUS_ADDRESS: busAddress } = await desktopSession();

// --- the scripted model API and the app's data dir ---
const script = {
  scripts: [
    {
      key: "",
      steps: [
        { tool_use: { text: "Let me look at the files first.", calls: [{ id: "toolu_desk_1", name: "Glob", input: { pattern: "*" } }] } },
        { slow: { text: "## Docs check\n\nAll docs look **fine** from the desktop.", chunks: 4, delay_ms: 150 } },
      ],
    },
  ],
};
writeFileSync(join(tmp, "script.json"), JSON.stringify(script));
// Its stdin stays open: it serves until that closes (this process going away).
const api = group("api", apiBin, ["--script", join(tmp, "script.json")], {}, ["pipe", "pipe", "pipe"]);
const apiUrl = (await firstLine(api, /^listening (\S+)/, "scripted API"))[1];

const dataDir = join(tmp, "data");
const home = join(tmp, "home");
mkdirSync(dataDir, { recursive: true });
mkdirSync(home, { recursive: true });
writeFileSync(
  join(dataDir, "config.toml"),
  `claude_path = ${JSON.stringify(claude)}
[env]
ANTHROPIC_BASE_URL = ${JSON.stringify(apiUrl)}
ANTHROPIC_API_KEY = "test-key"
HOME = ${JSON.stringify(join(tmp, "claude-home"))}
DISABLE_TELEMETRY = "1"
DISABLE_AUTOUPDATER = "1"
CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC = "1"
CLAUDE_CODE_MAX_RETRIES = "0"
`,
);
mkdirSync(join(tmp, "claude-home"), { recursive: true });
const appEnv = {
  DISPLAY: display,
  DBUS_SESSION_BUS_ADDRESS: busAddress,
  HOME: home,
  XDG_DATA_HOME: join(home, ".local/share"),
  XDG_CONFIG_HOME: join(home, ".config"),
  XDG_CACHE_HOME: join(home, ".cache"),
  PERSONAS_DATA_DIR: dataDir,
  PERSONAS_LISTEN: "127.0.0.1:0",
  PERSONAS_LOG: "info",
  PERSONAS_VAULT_PASSPHRASE: "desktop e2e passphrase",
  PERSONAS_VAULT_KEYCHAIN: "off",
  // Nothing to update from here: the check fails fast and the app says nothing.
  PERSONAS_UPDATE_FEED: "http://127.0.0.1:9/latest.json",
  WEBKIT_DISABLE_COMPOSITING_MODE: "1",
  LIBGL_ALWAYS_SOFTWARE: "1",
};
const cli = (...args) => {
  const r = spawnSync(cliBin, args, { env: { ...process.env, ...appEnv }, encoding: "utf8", timeout: STEP_MS });
  if (r.status !== 0) throw new Error(`personas ${args.join(" ")} failed (${r.status}): ${r.stderr}`);
  return r.stdout;
};
const x11 = (...args) => {
  const r = spawnSync("/usr/bin/python3", [join(here, "x11.py"), ...args], { env: { ...process.env, DISPLAY: display }, encoding: "utf8", timeout: 20_000 });
  if (r.status !== 0) throw new Error(`x11.py ${args.join(" ")} failed: ${r.stderr}`);
  return r.stdout.trim();
};

// --- tauri-driver → WebKitWebDriver → the app ---
const port = await freePort();
const nativePort = await freePort();
group("driver", driverBin, ["--port", String(port), "--native-port", String(nativePort), "--native-driver", "/usr/bin/WebKitWebDriver"], appEnv);
const wd = `http://127.0.0.1:${port}`;
await waitFor("tauri-driver to listen", async () => (await fetch(`${wd}/status`)).ok, 30_000);

async function w(method, path, body) {
  const r = await fetch(`${wd}${path}`, { method, headers: { "content-type": "application/json" }, body: body === undefined ? undefined : JSON.stringify(body), signal: AbortSignal.timeout(STEP_MS) });
  const j = await r.json();
  if (!r.ok) throw new Error(`WebDriver ${method} ${path}: ${JSON.stringify(j.value ?? j).slice(0, 500)}`);
  return j.value;
}

const launchedAt = Date.now();
const session = await w("POST", "/session", { capabilities: { alwaysMatch: { "tauri:options": { application: appBin } } } });
const sid = session.sessionId;
const s = (p) => `/session/${sid}${p}`;
const js = (script, ...args) => w("POST", s("/execute/sync"), { script, args });
const exists = (css) => js("return !!document.querySelector(arguments[0])", css);
const waitCss = (css, ms) => waitFor(css, () => exists(css), ms);
const clickButton = (label) =>
  waitFor(`a button "${label}"`, () =>
    js(
      `const want = arguments[0];
       const b = [...document.querySelectorAll("button, a")].find((e) => (e.getAttribute("aria-label") ?? e.textContent ?? "").trim() === want && !e.disabled);
       if (!b) return false; b.click(); return true;`,
      label,
    ),
  );
// The window as painted on the X server (WebKitWebDriver's own screenshot hangs under Xvfb).
const shot = async (name) => x11("shot", TITLE, join(shots, `${name}.png`));
const appPath = () => js("return location.pathname");

// The app's own HTTP listener (webhooks, the CLI) and its token, as `personas up` publishes them.
const runtime = () => JSON.parse(readFileSync(join(dataDir, "daemon.json"), "utf8"));
const apiCall = async (op, body = {}) => {
  const token = readFileSync(join(dataDir, "api-token"), "utf8").trim();
  const r = await fetch(`${runtime().url}/api/${op}`, { method: "POST", headers: { authorization: `Bearer ${token}`, "content-type": "application/json" }, body: JSON.stringify(body) });
  return r.json();
};

let executionId = null;
try {
  await step("the app launches and paints its first page", async () => {
    await waitCss('[data-page="onboarding"], [data-page="dashboard"]');
    const cold = await waitFor("the app's cold-start line", () => /cold start: the window rendered its first page ms=(\d+)/.exec(logs.driver));
    console.log(`bench: cold start to first rendered window ${cold[1]} ms (process start → UI's first IPC call); ${Date.now() - launchedAt} ms including WebDriver's launch`);
    assert(existsSync(join(dataDir, "daemon.json")), "the in-app runtime holds the data dir and says where it listens");
  });

  await step("first launch runs the system check and offers the templates (desktop backend)", async () => {
    await waitCss('[data-page="onboarding"]');
    await waitCss('[data-check="claude version"][data-check-status="ok"]');
    await waitCss('[data-template="docs-checker"]');
    assert((await js("return '__TAURI_INTERNALS__' in window")) === true, "running inside Tauri");
    assert((await js("return localStorage.getItem('personas.token')")) === null, "no HTTP token is used in the desktop app");
    await shot("onboarding");
  });

  await step("a template creates a persona in one click", async () => {
    await clickButton("Create Docs checker");
    await waitCss('[data-page="persona-editor"]');
    const list = await apiCall("list_personas");
    assert(list.personas.some((p) => p.name === "Docs checker"), "persona stored");
  });

  await step("a run streams live through IPC with the real CLI: tool call, text, cost", async () => {
    await clickButton("Run now");
    await waitCss('[data-page="execution"]');
    await waitCss('[data-kind="tool-call"][data-tool="Glob"]');
    await waitCss('[data-page="execution"][data-execution-status="completed"]');
    const text = await js("return document.querySelector('[data-page=execution]').innerText");
    assert(text.includes("All docs look"), "streamed assistant text shown");
    await waitCss('[data-kind="result"] [data-cost]');
    executionId = (await appPath()).split("/").pop();
    await shot("main-window");
  });

  await step("the run's end raises a desktop notification", async () => {
    await waitFor("the notification log line", () => /notification.*Docs checker finished/.test(logs.driver));
  });

  await step("closing the window keeps the app in the tray and the scheduler fires while hidden", async () => {
    // As a person would: click close, and once more if the first click went unnoticed.
    let hidden = false;
    for (let attempt = 0; attempt < 4 && !hidden; attempt++) {
      console.log(`     ${x11("close", TITLE)} (attempt ${attempt + 1})`);
      hidden = await waitFor("the window to hide", () => x11("state", TITLE) === "unmapped", 5_000).catch(() => false);
    }
    assert(hidden, "the window hid on close");
    await waitFor("the app to say it stays in the tray", () => /still running in the tray/.test(logs.driver), 5_000);
    // The CLI finds the app through the data dir (as it finds `personas up`) and wakes its scheduler.
    cli("trigger", "add", "Docs checker", "--cron", "* * * * * *");
    const run = await waitFor("a scheduled run while hidden", async () => {
      const list = await apiCall("list_executions", { persona: "Docs checker" });
      return list.executions.find((e) => e.trigger === "schedule" && e.status === "completed");
    });
    assert(x11("state", TITLE) === "unmapped", "still hidden while it ran");
    // `trigger list --json` is `list_triggers`' answer: views, each holding its trigger row.
    const { triggers } = JSON.parse(cli("trigger", "list", "--json"));
    for (const view of triggers) cli("trigger", "remove", view.trigger.id);
    assert(run.persona_name === "Docs checker", "the scheduled run is the persona's");
  });

  await step("a second launch with a deep link focuses the first and opens the execution", async () => {
    assert(executionId, "an execution id from the run step");
    const second = spawnSync(appBin, [`personas://execution/${executionId}`], { env: { ...process.env, ...appEnv }, timeout: 30_000, encoding: "utf8" });
    assert(second.status === 0, `the second instance exits at once (status ${second.status}, ${second.stderr?.slice(-500)})`);
    await waitFor("the window to show again", () => x11("state", TITLE) === "viewable", 20_000);
    await waitFor("the execution page", async () => (await appPath()) === `/executions/${executionId}`, 20_000);
    await waitCss(`[data-page="execution"][data-execution-status="completed"]`);
    await shot("deep-link");
  });

  if (process.env.PERSONAS_DESKTOP_BENCH === "1") {
    await step("bench: idle memory after 30 s", async () => {
      await new Promise((r) => setTimeout(r, 30_000));
      const parts = pssTree(runtime().pid);
      for (const p of parts) console.log(`bench:   ${p.name} (${p.pid}) ${(p.kb / 1024).toFixed(1)} MB PSS`);
      const total = parts.reduce((a, p) => a + p.kb, 0);
      console.log(`bench: idle PSS of the app and its webview processes ${(total / 1024).toFixed(1)} MB`);
    });
  }
} finally {
  try {
    await w("DELETE", s(""));
  } catch {}
  console.log(`${passed} passed, ${failed} failed`);
  if (failed) {
    writeFileSync(join(shots, "driver.log"), logs.driver ?? "");
    console.log(`(app and driver output: ${join(shots, "driver.log")})`);
  }
  process.exit(failed ? 1 : 0);
}

