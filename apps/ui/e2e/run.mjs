// End-to-end test of the app in Chromium against `personas up`, with the REAL Claude Code CLI
// talking to the scripted Messages API (personas-scripted-api). Saves a screenshot of each main
// page to target/ui-screenshots/. Prints "N passed, N failed" and exits non-zero on failure.
//
// Needs: /usr/bin/chromium (Debian), target/debug/{personas,personas-scripted-api}, the pinned
// CLI in .tools/ — `make test` provides all three.
import { spawn } from "node:child_process";
import { createServer } from "node:http";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");
const bin = (name) => process.env[`PERSONAS_E2E_${name.toUpperCase().replace(/-/g, "_")}`] ?? join(root, "target/debug", name);
const claude = process.env.PERSONAS_TEST_CLAUDE ?? join(root, ".tools/claude-code/node_modules/.bin/claude");
const shots = join(root, "target/ui-screenshots");
const STEP_MS = 60_000;
mkdirSync(shots, { recursive: true });

const children = [];
const tmp = mkdtempSync(join(tmpdir(), "personas-e2e-"));
let passed = 0;
let failed = 0;
let skipped = 0;
// PERSONAS_E2E_ONLY=<regex>: run only the steps whose names match (to check one view quickly);
// the steps a matching one builds on (the persona it runs, say) must match too.
const only = process.env.PERSONAS_E2E_ONLY ? new RegExp(process.env.PERSONAS_E2E_ONLY) : null;

function cleanup() {
  for (const c of children) if (c.exitCode === null) c.kill("SIGTERM");
}
process.on("exit", cleanup);

/** Starts a process and resolves with the first stdout line matching `re`. */
function start(cmd, args, env, re) {
  return new Promise((resolveLine, reject) => {
    const child = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ["pipe", "pipe", "pipe"] });
    children.push(child);
    const timer = setTimeout(() => reject(new Error(`${cmd} printed no ${re} within ${STEP_MS} ms`)), STEP_MS);
    let err = "";
    child.stderr.on("data", (d) => (err += d).length > 20000 && (err = err.slice(-10000)));
    child.on("exit", (code) => reject(new Error(`${cmd} exited (${code}) early: ${err.slice(-2000)}`)));
    createInterface({ input: child.stdout }).on("line", (line) => {
      const m = re.exec(line);
      if (m) {
        clearTimeout(timer);
        resolveLine({ child, match: m });
      }
    });
  });
}

async function step(name, fn) {
  if (only && !only.test(name)) {
    skipped++;
    return;
  }
  const t0 = Date.now();
  try {
    await fn();
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

// A credential value that must never reach the page: only its redaction marker may.
const TOKEN = "ghp_E2eSecretNeverShown0123456789abcd";
const MARKER = "[redacted:github.token]";

const script = {
  scripts: [
    {
      key: "SCRIPT-vault-e2e",
      steps: [
        { tool_use: { text: "Checking the token variable.", calls: [{ id: "toolu_e2e_env", name: "Bash", input: { command: "printenv GITHUB_TOKEN", description: "print the token variable" } }] } },
        { text: `The token is ${TOKEN}. Done.` },
      ],
    },
    { key: "SCRIPT-healing-e2e", steps: [{ error: 400 }] },
    {
      key: "SCRIPT-review-e2e",
      steps: [
        { text: 'Release notes are ready.\n{"manual_review": {"title": "Publish v2 release notes?", "description": "Draft attached in the run.", "severity": "high", "suggested_actions": ["publish"]}}' },
        { text: "Published v2 release notes as approved." },
      ],
    },
    {
      key: "SCRIPT-bus-emit",
      steps: [
        { tool_use: { text: "Announcing that I am done.", calls: [{ id: "toolu_e2e_emit", name: "mcp__personas__emit_event", input: { type: "emitter.done", data: { n: 1 } } }] } },
        { text: "Emitted." },
      ],
    },
    {
      key: "SCRIPT-bus-sleepy",
      steps: [{ text: "Awake now." }],
    },
    {
      key: "SCRIPT-bus-listen",
      steps: [{ text: "Heard emitter.done." }],
    },
    {
      key: "",
      steps: [
        { tool_use: { text: "Let me look at the files first.", calls: [{ id: "toolu_e2e_1", name: "Glob", input: { pattern: "*" } }] } },
        {
          slow: {
            text:
              "## Docs check\n\nAll docs look **fine**.\n\n" +
              '{"user_message": {"title": "Docs checked", "content": "No problems found", "priority": "normal"}}\n' +
              '{"agent_memory": {"title": "Docs layout", "content": "Docs live in the workspace root", "category": "fact", "importance": 3}}',
            chunks: 6,
            delay_ms: 250,
          },
        },
      ],
    },
  ],
};
const scriptFile = join(tmp, "script.json");
writeFileSync(scriptFile, JSON.stringify(script));

const upStarted = Date.now();
const api = await start(bin("personas-scripted-api"), ["--script", scriptFile], {}, /^listening (\S+)/);
const apiUrl = api.match[1];
const dataDir = join(tmp, "data");
const home = join(tmp, "home");
mkdirSync(dataDir, { recursive: true });
mkdirSync(home, { recursive: true });
writeFileSync(
  join(dataDir, "config.toml"),
  `claude_path = ${JSON.stringify(claude)}
# One delivery attempt: an undeliverable event is dead-lettered at once (the retry step).
bus_max_attempts = 1
[env]
ANTHROPIC_BASE_URL = ${JSON.stringify(apiUrl)}
ANTHROPIC_API_KEY = "test-key"
HOME = ${JSON.stringify(home)}
DISABLE_TELEMETRY = "1"
DISABLE_AUTOUPDATER = "1"
CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC = "1"
CLAUDE_CODE_MAX_RETRIES = "0"
`,
);
const upT0 = Date.now();
// No OS keychain on CI: the vault is opted into a passphrase (and the keychain is not probed).
const upEnv = { PERSONAS_DATA_DIR: dataDir, RUST_LOG: "warn", PERSONAS_VAULT_PASSPHRASE: "e2e vault passphrase", PERSONAS_VAULT_KEYCHAIN: "off" };
const up = await start(bin("personas"), ["up", "--listen", "127.0.0.1:0"], upEnv, /Open the app: (\S+)/);
const appUrl = up.match[1];
const base = appUrl.split("/#")[0];
const token = appUrl.split("#token=")[1];
const call = async (op, body = {}) => {
  const r = await fetch(`${base}/api/${op}`, { method: "POST", headers: { authorization: `Bearer ${token}`, "content-type": "application/json" }, body: JSON.stringify(body) });
  return r.json();
};

// GitHub-like: GET /user answers 200 only with the right bearer token.
const github = createServer((req, res) => {
  const ok = req.url === "/user" && req.headers.authorization === `Bearer ${TOKEN}`;
  res.writeHead(ok ? 200 : 401, { "content-type": "application/json" });
  res.end(ok ? '{"login": "octo"}' : '{"message": "Bad credentials"}');
});
await new Promise((r) => github.listen(0, "127.0.0.1", r));
const githubUrl = `http://127.0.0.1:${github.address().port}`;

const profile = join(tmp, "chromium-profile");
const context = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.PERSONAS_E2E_CHROMIUM ?? "/usr/bin/chromium",
  headless: true,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  viewport: { width: 1400, height: 900 },
});
context.setDefaultTimeout(STEP_MS);
const page = context.pages()[0] ?? (await context.newPage());
const consoleErrors = [];
page.on("pageerror", (e) => consoleErrors.push(String(e)));
const shot = (name) => page.screenshot({ path: join(shots, `${name}.png`), fullPage: false });

try {
  await step("the printed link opens the app, keeps the token and strips it from the address", async () => {
    await page.goto(appUrl);
    await page.waitForSelector('[data-page="onboarding"]');
    const paintMs = Date.now() - upT0;
    console.log(`bench: first meaningful paint (onboarding, empty data dir) ${paintMs} ms after \`personas up\` was started`);
    assert(!page.url().includes("token="), `token still in the URL: ${page.url()}`);
    assert((await page.evaluate(() => localStorage.getItem("personas.token"))) === token, "token stored");
  });

  await step("the system check shows the real CLI and its version", async () => {
    await page.waitForSelector('[data-check="claude version"][data-check-status="ok"]');
    await page.waitForSelector('[data-template="docs-checker"]');
    await shot("onboarding");
  });

  await step("a template creates a working persona in one click", async () => {
    await page.getByRole("button", { name: "Create Docs checker" }).click();
    await page.waitForSelector('[data-page="persona-editor"]');
    await page.getByRole("heading", { name: "Docs checker" }).waitFor();
    await shot("persona-editor");
  });

  await step("creating the same template again shows an inline name error", async () => {
    await page.goto(`${base}/welcome`);
    await page.getByRole("button", { name: "Create Docs checker" }).click();
    const err = page.locator('[data-template="docs-checker"]').locator("..").locator("[data-field-error]");
    await err.waitFor();
    assert(/already exists/.test(await err.innerText()), "duplicate name message");
    assert((await call("list_personas")).personas.length === 1, "no second persona stored");
  });

  await step("a new persona with a taken name shows the error under Name", async () => {
    await page.goto(`${base}/personas/new`);
    await page.getByLabel("Name", { exact: true }).fill("docs checker");
    await page.getByLabel("Instructions").fill("Check things.");
    await page.getByRole("button", { name: "Create" }).click();
    const err = page.locator("[data-field-error]").first();
    await err.waitFor();
    assert(/already exists/.test(await err.innerText()), `got ${await err.innerText()}`);
  });

  await step("malformed JSON input is refused inline and sends nothing", async () => {
    await page.goto(`${base}/personas/Docs%20checker`);
    await page.getByLabel("Input (JSON, optional)").fill("{oops");
    await page.getByRole("button", { name: "Run now" }).click();
    const err = page.locator("[data-field-error]").first();
    await err.waitFor();
    assert(/not valid JSON/.test(await err.innerText()), "JSON error shown");
    assert((await call("list_executions")).executions.length === 0, "no execution was queued");
  });

  await step("a run streams live: tool call, text, cost", async () => {
    await page.getByLabel("Input (JSON, optional)").fill('{"focus": "readme"}');
    await page.getByRole("button", { name: "Run now" }).click();
    await page.waitForSelector('[data-page="execution"]');
    await page.waitForSelector('[data-kind="tool-call"][data-tool="Glob"]');
    const statusAtTool = await page.getAttribute('[data-page="execution"]', "data-execution-status");
    assert(statusAtTool === "running" || statusAtTool === "queued", `tool call seen while ${statusAtTool}`);
    await page.waitForSelector('[data-kind="assistant-text"]:has-text("All docs look")');
    await page.waitForSelector('[data-page="execution"][data-execution-status="completed"]');
    await page.waitForSelector('[data-kind="result"] [data-cost]');
    await page.waitForSelector('[data-kind="protocol"]:has-text("Docs checked")');
    const cost = await page.getByTestId("execution-cost").innerText();
    assert(/^\$\d/.test(cost), `cost shown: ${cost}`);
    await page.locator('[data-kind="tool-call"] button').first().click();
    await shot("execution");
  });


  let reviewRun = null;
  await step("a persona asks for review and the request appears in the open inbox live", async () => {
    await call("create_persona", { spec: { name: "Publisher", instructions: "Follow script SCRIPT-review-e2e." } });
    await page.goto(`${base}/reviews`);
    await page.waitForSelector('[data-page="reviews"]');
    await page.getByText("Nothing to review").waitFor();
    reviewRun = await call("run_persona", { persona: "Publisher" });
    assert(reviewRun.id, `run queued: ${JSON.stringify(reviewRun)}`);
    // No reload: the request arrives over the event stream.
    const item = page.locator('[data-review-status="pending"]', { hasText: "Publish v2 release notes?" });
    await item.waitFor();
    await page.waitForSelector('[data-pending-reviews="1"]');
    await shot("reviews-pending");
    // The request is stored before the CLI process ends; the run then pauses for the decision.
    const st = (await call("get_execution", { id: reviewRun.id })).status;
    assert(st === "running" || st === "awaiting_review", `the run waits for the decision (${st})`);
  });

  await step("Approve with a note in the inbox resumes the run to completion", async () => {
    const item = page.locator('[data-review-status="pending"]', { hasText: "Publish v2 release notes?" });
    await page.goto(`${base}/executions/${reviewRun.id}`);
    await page.waitForSelector('[data-page="execution"][data-execution-status="awaiting_review"]');
    await page.goto(`${base}/reviews`);
    await item.getByLabel("Note for the agent").fill("Ship it, mention the migration guide.");
    await item.getByRole("button", { name: /^Approve/ }).click();
    await item.waitFor({ state: "detached" });
    await page.waitForSelector("[data-pending-reviews]", { state: "detached" });
    await page.getByRole("tab", { name: "approved" }).click();
    const decided = page.locator('[data-review-status="approved"]', { hasText: "Publish v2 release notes?" });
    await decided.getByText("Ship it, mention the migration guide.").waitFor();
    await decided.getByRole("link", { name: "View the run" }).click();
    await page.waitForSelector(`[data-page="execution"][data-execution-status="completed"]`);
    await page.waitForSelector('[data-kind="assistant-text"]:has-text("Published v2 release notes as approved.")');
    const reviews = (await call("list_reviews", { status: "approved" })).reviews;
    assert(reviews.length === 1 && reviews[0].decision_note === "Ship it, mention the migration guide.", `stored decision: ${JSON.stringify(reviews)}`);
    assert((await call("get_execution", { id: reviewRun.id })).status === "completed", "completed in the API too");
    await shot("execution-after-review");
  });

  await step("the persona editor manages channels, budgets and shows memories", async () => {
    await page.goto(`${base}/personas/Publisher`);
    await page.waitForSelector('[data-section="policy"]');
    await page.getByLabel("Daily cap (USD)").fill("-3");
    await page.getByRole("button", { name: "Save policy" }).click();
    const budgetErr = page.locator("#policy-daily_budget_usd").locator("..").locator("[data-field-error]");
    await budgetErr.waitFor();
    assert(/positive amount/.test(await budgetErr.innerText()), `budget error: ${await budgetErr.innerText()}`);
    await page.getByLabel("Daily cap (USD)").fill("2.5");
    await page.getByRole("button", { name: "Save policy" }).click();
    await page.locator('[data-section="policy"]').locator("..").getByText("Saved").waitFor();
    assert((await call("get_policy", { persona: "Publisher" })).policy.daily_budget_usd === 2.5, "budget stored");

    await page.getByRole("button", { name: "Add channel" }).click();
    const form = page.locator('[data-form="channel"]');
    await form.getByLabel("Channel name").fill("team slack");
    await form.getByLabel("Settings (JSON)").fill('{"webhook_url": "https://hooks.slack.com/services/PLAIN"}');
    await form.getByRole("button", { name: "Add channel" }).click();
    const cfgErr = form.locator("#channel-config").locator("..").locator("[data-field-error]");
    await cfgErr.waitFor();
    assert(/env:NAME/.test(await cfgErr.innerText()), `secret refused: ${await cfgErr.innerText()}`);
    await form.getByLabel("Type").selectOption("desktop");
    await form.getByLabel("Channel name").fill("desk");
    await form.getByRole("button", { name: "Add channel" }).click();
    await form.waitFor({ state: "detached" });
    await page.getByRole("button", { name: "Test channel desk" }).click();
    await page.waitForSelector('[data-channel="desk"] [data-channel-test="ok"]');
    const channels = (await call("list_channels", { persona: "Publisher" })).channels;
    assert(channels.length === 1 && channels[0].kind === "desktop", `channels: ${JSON.stringify(channels)}`);
    await page.locator('[data-section="channels"]').scrollIntoViewIfNeeded();
    await shot("persona-editor-oversight");
  });

  await step("a failure that pauses a persona shows live on Observability; Resolve and Resume fix it", async () => {
    await call("create_persona", { spec: { name: "Fragile", instructions: "Follow script SCRIPT-healing-e2e." } });
    await call("update_policy", { persona: "Fragile", policy: { failure_threshold: 1, max_retries: 0 } });
    await page.goto(`${base}/observability`);
    await page.waitForSelector('[data-section="healing"]');
    await call("run_persona", { persona: "Fragile" });
    const breaker = page.locator('[data-breaker-scope^="persona:"]', { hasText: "Fragile" });
    await breaker.waitFor();
    const issue = page.locator('[data-issue-status="open"]', { hasText: "Fragile" }).first();
    await issue.waitFor();
    assert((await call("get_policy", { persona: "Fragile" })).paused === true, "paused in the API");
    await page.locator('[data-section="healing"]').scrollIntoViewIfNeeded();
    await shot("observability-healing");
    await issue.getByRole("button", { name: /^Resolve/ }).click();
    await issue.waitFor({ state: "detached" });
    await breaker.getByRole("button", { name: "Resume" }).click();
    await breaker.waitFor({ state: "detached" });
    assert((await call("get_policy", { persona: "Fragile" })).paused === false, "resumed in the API");
    const open = (await call("list_healing")).issues.filter((i) => i.persona_name === "Fragile");
    assert(open.length === 0, `no open issue left: ${JSON.stringify(open)}`);
  });

  await step("the credentials page says where secrets are kept", async () => {
    await page.goto(`${base}/credentials`);
    await page.waitForSelector('[data-page="credentials"]');
    await page.waitForSelector('[data-vault-banner="ok"]');
    await page.getByText("No credentials yet").waitFor();
  });

  const form = page.locator('[data-form="credential"]');
  const fieldError = (id) => form.locator(`#${id}`).locator("..").locator("[data-field-error]");
  await step("bad credential input shows inline errors and stores nothing", async () => {
    await page.getByRole("button", { name: "Add credential" }).click();
    await form.getByLabel("Type").selectOption("github");
    assert((await form.getByLabel("Name", { exact: true }).inputValue()) === "github", "the name follows the type");
    assert((await form.locator("#cred-field-token").getAttribute("type")) === "password", "a secret is a password field");
    await form.locator("#cred-field-api_url").fill(githubUrl);
    await form.getByRole("button", { name: "Add credential" }).click();
    await fieldError("cred-field-token").waitFor();
    assert(/required/.test(await fieldError("cred-field-token").innerText()), "missing token named");
    await page.getByRole("button", { name: "Cancel" }).click();
    await page.goto(`${base}/credentials?add=gitlab`);
    await form.waitFor();
    await form.getByLabel("Name", { exact: true }).fill("gitlab");
    await form.getByRole("button", { name: "Add credential" }).click();
    await fieldError("cred-kind").waitFor();
    assert(/unknown credential type/.test(await fieldError("cred-kind").innerText()), "unknown type named");
    await page.getByRole("button", { name: "Cancel" }).click();
    assert((await call("list_credentials")).credentials.length === 0, "nothing stored");
  });

  await step("a credential with a secret is added and listed without its value", async () => {
    await page.getByRole("button", { name: "Add credential" }).click();
    await form.getByLabel("Type").selectOption("github");
    await form.locator("#cred-field-token").fill(TOKEN);
    await form.locator("#cred-field-api_url").fill(githubUrl);
    await form.getByRole("button", { name: "Add credential" }).click();
    await form.waitFor({ state: "detached" });
    const row = page.locator('[data-credential="github"]');
    await row.waitFor();
    assert((await row.innerText()).includes("GITHUB_TOKEN = ••••••"), "the variable is listed, its value masked");
    assert(!(await page.content()).includes(TOKEN), "the value is nowhere in the page");
    const listed = JSON.stringify(await call("list_credentials"));
    assert(listed.includes("github") && !listed.includes(TOKEN), "the API lists it without the value");
  });

  await step("a duplicate name is refused inline", async () => {
    await page.getByRole("button", { name: "Add credential" }).click();
    await form.getByLabel("Type").selectOption("github");
    await form.locator("#cred-field-token").fill(TOKEN);
    await form.getByRole("button", { name: "Add credential" }).click();
    await fieldError("cred-name").waitFor();
    assert(/already exists/.test(await fieldError("cred-name").innerText()), "duplicate named");
    await page.keyboard.press("Escape");
    await form.waitFor({ state: "detached" });
    assert((await call("list_credentials")).credentials.length === 1, "still one credential");
  });

  await step("Test checks the credential against a local server, live", async () => {
    await page.getByRole("button", { name: "Test github" }).click();
    await page.waitForSelector('[data-credential="github"] [data-test-result="ok"]');
    await page.locator('[data-credential="github"]').getByText("Healthy").waitFor();
    await shot("credentials");
  });

  await step("full trust is a warned, explicit choice", async () => {
    await page.goto(`${base}/personas/Docs%20checker`);
    page.once("dialog", (d) => d.accept());
    await page.locator('[data-permission-template="full-trust"]').click();
    await page.waitForSelector("[data-full-trust-warning]");
    await page.locator('[data-permission-template="read-only"]').click();
    await page.waitForSelector("[data-full-trust-warning]", { state: "detached" });
  });

  await step("a persona given the credential runs, and only the redaction marker is shown", async () => {
    await page.goto(`${base}/personas/new`);
    await page.getByLabel("Name", { exact: true }).fill("Vault tester");
    await page.getByLabel("Instructions").fill("Follow script SCRIPT-vault-e2e.");
    await page.locator("#allow").fill("Bash");
    await page.locator("#allow").press("Enter");
    await page.getByLabel("Give credential github").check();
    await page.getByRole("button", { name: "Create" }).click();
    await page.getByRole("heading", { name: "Vault tester" }).waitFor();
    const links = await call("get_persona_links", { persona: "Vault tester" });
    assert(JSON.stringify(links.credentials) === '["github"]', `linked: ${JSON.stringify(links)}`);
    await page.getByRole("button", { name: "Run now" }).click();
    await page.waitForSelector('[data-page="execution"]');
    await page.waitForSelector('[data-page="execution"][data-execution-status="completed"]');
    await page.waitForSelector('[data-kind="tool-call"][data-tool="Bash"]');
    await page.locator('[data-kind="tool-call"][data-tool="Bash"] button').first().click();
    await page.getByText(MARKER).first().waitFor();
    const html = await page.content();
    assert(html.includes(MARKER), "the marker is shown");
    assert(!html.includes(TOKEN), "the value is not in the execution view");
    await shot("execution-redacted");
  });

  const triggerForm = page.locator('[data-form="trigger"]');
  const cronError = triggerForm.locator("#trigger-cron").locator("..").locator("[data-field-error]");
  await step("an invalid cron shows an inline error naming the problem and creates nothing", async () => {
    await page.goto(`${base}/personas/Docs%20checker`);
    await page.waitForSelector('[data-section="triggers"]');
    await triggerForm.getByRole("radio", { name: "Schedule" }).click();
    await triggerForm.locator("#trigger-cron").fill("61 * * * *");
    await cronError.waitFor();
    const live = await cronError.innerText();
    assert(/61|minute|range|invalid/i.test(live), `cron error names the problem: ${live}`);
    await triggerForm.getByRole("button", { name: "Add trigger" }).click();
    await cronError.waitFor();
    assert((await call("list_triggers", { persona: "Docs checker" })).triggers.length === 0, "no trigger stored");
  });

  await step("a valid schedule previews its next fires and is added; a webhook shows its URL, its secret once, and again on Reveal", async () => {
    await triggerForm.locator("#trigger-tz").fill("Europe/Prague");
    await triggerForm.locator("#trigger-cron").fill("0 8 * * 1-5");
    await cronError.waitFor({ state: "detached" });
    await triggerForm.getByText(/^Next: .*08:00:00/).waitFor();
    await triggerForm.getByRole("button", { name: "Add trigger" }).click();
    await page.waitForSelector('[data-trigger="cron"]');
    const [cron] = (await call("list_triggers", { persona: "Docs checker" })).triggers;
    assert(cron.trigger.config.expr === "0 8 * * 1-5" && cron.trigger.config.tz === "Europe/Prague", JSON.stringify(cron.trigger.config));
    assert(cron.next_fires.length === 3, "next fires previewed");
    await triggerForm.getByRole("radio", { name: "Webhook" }).click();
    await triggerForm.getByRole("button", { name: "Add trigger" }).click();
    const url = page.locator("[data-webhook-url]");
    await url.waitFor();
    const hook = (await call("list_triggers", { persona: "Docs checker" })).triggers.find((t) => t.trigger.kind === "webhook");
    assert((await url.innerText()) === hook.webhook.url && hook.webhook.url.endsWith(`/webhooks/${hook.trigger.id}`), `url ${hook.webhook.url}`);
    assert(!JSON.stringify(hook).includes("secret\":"), "a listing never carries the secret");
    // Shown once right after adding (with a copy button), then gone once hidden.
    const { secret } = await call("reveal_webhook_secret", { id: hook.trigger.id });
    await page.locator("[data-webhook-secret]", { hasText: secret }).waitFor();
    await shot("persona-triggers");
    await page.getByRole("button", { name: "Hide", exact: true }).click();
    await page.locator("[data-webhook-secret]").waitFor({ state: "detached" });
    assert(!(await page.content()).includes(secret), "hidden means gone from the page");
    await page.getByRole("button", { name: `Reveal secret of ${hook.summary}` }).click();
    await page.locator("[data-webhook-secret]", { hasText: secret }).waitFor();
    await page.getByRole("button", { name: `Remove ${hook.summary}` }).click();
    await page.waitForSelector('[data-trigger="webhook"]', { state: "detached" });
    await page.getByRole("button", { name: `Remove ${cron.summary}` }).click();
    await page.waitForSelector('[data-trigger="cron"]', { state: "detached" });
    assert((await call("list_triggers", { persona: "Docs checker" })).triggers.length === 0, "both removed");
  });

  const busRow = (type, status) => page.locator(`tr[data-event-type="${type}"]${status ? `[data-event-status="${status}"]` : ""}`);
  /** Follows the first run an event caused to its execution page and waits for it to complete. */
  const runOf = async (type, persona) => {
    const link = busRow(type, "delivered").locator("[data-event-execution]").first();
    await link.waitFor();
    const execId = await link.getAttribute("data-event-execution");
    await link.click();
    await page.waitForSelector('[data-page="execution"][data-execution-status="completed"]');
    const exec = await call("get_execution", { id: execId });
    assert(exec.persona_name === persona, `run of ${persona}: ${JSON.stringify(exec).slice(0, 300)}`);
    return exec;
  };

  await step("drawing a canvas edge subscribes the target, and the source's event runs it", async () => {
    const emitter = await call("create_persona", { spec: { name: "Emitter", instructions: "Follow script SCRIPT-bus-emit." } });
    const listener = await call("create_persona", { spec: { name: "Listener", instructions: "Follow script SCRIPT-bus-listen." } });
    assert(emitter.id && listener.id, `created: ${JSON.stringify([emitter, listener]).slice(0, 300)}`);
    await page.goto(`${base}/canvas`);
    await page.waitForSelector(`.react-flow__node[data-id="${listener.id}"]`);
    const from = await page.locator(`.react-flow__node[data-id="${emitter.id}"] .react-flow__handle.source`).boundingBox();
    const to = await page.locator(`.react-flow__node[data-id="${listener.id}"] .react-flow__handle.target`).boundingBox();
    await page.mouse.move(from.x + from.width / 2, from.y + from.height / 2);
    await page.mouse.down();
    await page.mouse.move((from.x + to.x) / 2, (from.y + to.y) / 2 + 40, { steps: 8 });
    await page.mouse.move(to.x + to.width / 2, to.y + to.height / 2, { steps: 8 });
    await page.mouse.up();
    const dialog = page.locator('[data-form="connect"]');
    await dialog.waitFor();
    assert((await dialog.locator("#connect-event").inputValue()) === "emitter.done", "the event type defaults to the source's");
    await dialog.getByRole("button", { name: "Connect" }).click();
    await dialog.waitFor({ state: "detached" });
    await page.waitForSelector('[data-connection="event"]');
    await page.locator(".react-flow__edge").first().waitFor();
    const subs = (await call("list_triggers", { persona: "Listener" })).triggers;
    assert(subs.length === 1, `one trigger: ${JSON.stringify(subs).slice(0, 400)}`);
    const c = subs[0].trigger.config;
    assert(c.kind === "event" && c.pattern === "emitter.done" && c.source?.kind === "persona" && c.source?.id === emitter.id, JSON.stringify(c));
    await shot("canvas-connected");

    await page.goto(`${base}/bus`);
    await page.waitForSelector('[data-page="bus"]');
    const run = await call("run_persona", { persona: "Emitter" });
    assert(run.id, `run: ${JSON.stringify(run).slice(0, 300)}`);
    await busRow("emitter.done", "delivered").waitFor({ timeout: 90_000 });
    await page.locator('[data-lane="persona"] button', { hasText: "emitter.done" }).waitFor();
    await shot("bus");
    const exec = await runOf("emitter.done", "Listener");
    assert(exec.trigger === "event", `started by the event: ${exec.trigger}`);
  });

  await step("the emit form refuses bad JSON inline; a dead letter is retried and then runs", async () => {
    await call("create_persona", { spec: { name: "Sleepy", instructions: "Follow script SCRIPT-bus-sleepy.", enabled: false } });
    await page.goto(`${base}/bus`);
    const emit = page.locator('[data-form="emit-event"]');
    await emit.waitFor();
    const before = (await call("list_events", {})).events.length;
    await emit.getByLabel("Event type").fill("nudge");
    await emit.getByLabel("Payload (JSON)").fill("{oops");
    await emit.getByLabel("Deliver to").selectOption({ label: "Only Sleepy" });
    await emit.getByRole("button", { name: "Emit" }).click();
    const err = emit.locator("#emit-payload").locator("..").locator("[data-field-error]");
    await err.waitFor();
    assert(/not valid JSON/.test(await err.innerText()), "payload error shown");
    assert((await call("list_events", {})).events.length === before, "nothing emitted");
    await emit.getByLabel("Payload (JSON)").fill('{"wake": true}');
    await emit.getByRole("button", { name: "Emit" }).click();
    const dead = page.locator('[data-dead-letter="nudge"]');
    await dead.waitFor();
    assert(/Sleepy is disabled/.test(await dead.innerText()), `dead letter says why: ${await dead.innerText()}`);
    await shot("bus-dead-letter");
    await call("update_persona", { persona: "Sleepy", spec: { name: "Sleepy", instructions: "Follow script SCRIPT-bus-sleepy.", enabled: true } });
    await page.getByRole("button", { name: "Retry nudge" }).click();
    await dead.waitFor({ state: "detached" });
    await busRow("nudge", "delivered").waitFor({ timeout: 90_000 });
    await runOf("nudge", "Sleepy");
  });

  const pages = [
    ["dashboard", "/"],
    ["personas", "/personas"],
    ["executions", "/executions"],
    ["messages", "/messages"],
    ["reviews", "/reviews"],
    ["memories", "/memories"],
    ["tools", "/tools"],
    ["observability", "/observability"],
    ["bus", "/bus"],
    ["canvas", "/canvas"],
    ["settings", "/settings"],
  ];
  for (const [name, path] of pages)
    await step(`page ${name} renders`, async () => {
      await page.goto(`${base}${path}`);
      await page.waitForSelector(`[data-page="${name}"]`);
      await page.waitForLoadState("networkidle");
      if (name === "messages") await page.getByText("No problems found").waitFor();
      if (name === "memories") await page.getByText("Docs live in the workspace root").waitFor();
      if (name === "observability") await page.locator(".recharts-surface").first().waitFor();
      if (name === "canvas") await page.locator(".react-flow__edge").first().waitFor();
      if (name === "bus") await page.locator('tr[data-event-type="emitter.done"]').first().waitFor();
      await shot(name);
    });

  await step("deleting a canvas edge removes its subscription", async () => {
    await page.goto(`${base}/canvas`);
    const edge = page.locator(".react-flow__edge").first();
    await edge.waitFor();
    // By keyboard (focus, Enter selects, Delete removes): other personas' nodes may lie over the
    // edge's line, and the keyboard path is the one that must always work.
    await edge.focus();
    await page.keyboard.press("Enter");
    await page.locator(".react-flow__edge.selected").waitFor();
    await page.keyboard.press("Delete");
    await page.waitForSelector('[data-connection="event"]', { state: "detached" });
    await edge.waitFor({ state: "detached" });
    assert((await call("list_triggers", { persona: "Listener" })).triggers.length === 0, "the subscription is gone");
  });

  await step("dark theme", async () => {
    await page.goto(`${base}/`);
    await page.getByRole("button", { name: /Switch to dark theme/ }).click();
    await page.waitForSelector("html.dark");
    await page.waitForSelector('[data-page="dashboard"]');
    await shot("dashboard-dark");
    for (const [name, path] of [["bus", "/bus"], ["canvas", "/canvas"]]) {
      await page.goto(`${base}${path}`);
      await page.waitForSelector(`[data-page="${name}"]`);
      await page.waitForLoadState("networkidle");
      await shot(`${name}-dark`);
    }
  });

  await step("no uncaught errors in the page", async () => {
    assert(consoleErrors.length === 0, consoleErrors.join("\n"));
  });
} finally {
  await context.close();
  github.close();
  cleanup();
  rmSync(tmp, { recursive: true, force: true });
}
console.log(`ui e2e: ${passed} passed, ${failed} failed${only ? `, ${skipped} skipped (PERSONAS_E2E_ONLY)` : ""} (screenshots in ${shots}; personas up started ${upT0 - upStarted} ms after the API)`);
process.exit(failed === 0 ? 0 : 1);
