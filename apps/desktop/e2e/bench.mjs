// Desktop benchmark: cold start and idle memory of the app against a blank Tauri 2 window built
// the same way (the `blank` example: same Tauri, features and profile), both under a private
// Xvfb. Memory is PSS summed over each app's process tree (the webview's processes included),
// after 30 s idle. Usage (release builds, as shipped):
//   cargo build --release -p personas-desktop --features tauri/custom-protocol --example blank
//   make desktop   # or: cd apps/desktop && npx tauri build --bundles deb
//   node apps/desktop/e2e/bench.mjs [IDLE_SECONDS]
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { deadline, desktopSession, group, logs, pssTree, waitFor } from "./lib.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, "../../..");
const profile = process.env.PROFILE ?? "release";
const app = join(root, `target/${profile}/personas-desktop`);
const blank = join(root, `target/${profile}/examples/blank`);
const idle = Number(process.argv[2] ?? 30);
for (const p of [app, blank]) if (!existsSync(p)) throw new Error(`missing ${p}; see the usage at the top of bench.mjs`);
deadline(300_000, "desktop bench");

const session = await desktopSession();
const tmp = mkdtempSync(join(tmpdir(), "personas-desktop-bench-"));
const x11 = (...args) => spawnSync("/usr/bin/python3", [join(here, "x11.py"), ...args], { env: { ...process.env, DISPLAY: session.DISPLAY }, encoding: "utf8" }).stdout.trim();
const mb = (kb) => `${(kb / 1024).toFixed(1)} MB`;

async function measure(name, bin, title, ready) {
  const home = join(tmp, name);
  mkdirSync(home, { recursive: true });
  const env = { ...session, HOME: home, XDG_DATA_HOME: join(home, "share"), XDG_CONFIG_HOME: join(home, "config"), XDG_CACHE_HOME: join(home, "cache"), PERSONAS_DATA_DIR: join(home, "data"), PERSONAS_LISTEN: "127.0.0.1:0", PERSONAS_VAULT_KEYCHAIN: "off", PERSONAS_UPDATE_FEED: "http://127.0.0.1:9/latest.json", PERSONAS_LOG: "info" };
  const t0 = Date.now();
  const child = group(name, bin, [], env);
  await waitFor(`${name}'s window`, () => x11("state", title) === "viewable", 60_000);
  const shown = Date.now() - t0;
  const rendered = ready ? await waitFor(`${name} ready`, () => ready(logs[name]), 60_000) : null;
  await new Promise((r) => setTimeout(r, idle * 1000));
  const parts = pssTree(child.pid);
  const total = parts.reduce((a, p) => a + p.kb, 0);
  console.log(`${name}: window mapped ${shown} ms after exec${rendered ? `, UI rendered ${rendered} ms after process start` : ""}; idle PSS after ${idle} s ${mb(total)}`);
  for (const p of parts) console.log(`  ${p.name} (${p.pid}) ${mb(p.kb)}`);
  process.kill(-child.pid, "SIGTERM");
  return { total, main: parts[0].kb };
}

const b = await measure("blank", blank, "Blank");
const a = await measure("personas", app, "Personas", (log) => /cold start: the window rendered its first page ms=(\d+)/.exec(log)?.[1]);
console.log(`ratio: Personas / blank Tauri window = ${(a.total / b.total).toFixed(2)}×`);
console.log(`engine and plugins' share (app process PSS − blank process PSS): ${mb(a.main - b.main)}`);
const bundles = join(root, `target/${profile}/bundle`);
if (existsSync(bundles))
  for (const kind of readdirSync(bundles))
    for (const f of readdirSync(join(bundles, kind)).filter((f) => /\.(deb|AppImage)$/.test(f)))
      console.log(`installer: ${f} ${(statSync(join(bundles, kind, f)).size / 1048576).toFixed(1)} MB`);
process.exit(0);
