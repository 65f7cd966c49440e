// Drives the admin dashboard at BASE_URL/dashboard in Debian's Chromium, as an admin would:
// a user key is refused with "not an admin key", the admin key signs in, the queued and running
// counts shown match GET /admin/queue, the free tier is cleared, a key is created (and used for
// a chat), edited and revoked, the default model is switched, the admin signs out, and
// Swagger UI at /docs links to the page.
// Fails on any console error, page error, or request to another host than the server.
// Screenshots of the overview at 1280 and 390 px, and of the keys and models tabs, go to
// SCREENSHOT_DIR.
//
// Started by tests/api/dashboard.rs, which provides the server, its jobs and the environment.
// Prints `DEFAULT=<model>` (the model it made the default) for the test to check.

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

const { BASE_URL, ADMIN_KEY, USER_KEY, SCREENSHOT_DIR } = process.env;
const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const origin = new URL(BASE_URL).origin;
const started = Date.now();

const log = (message) => console.log(`dashboard-check: ${((Date.now() - started) / 1000).toFixed(1)} s: ${message}`);
function check(condition, message) {
  if (!condition) throw new Error(message);
}

async function admin(method, path, body) {
  const response = await fetch(`${BASE_URL}${path}`, {
    method,
    headers: { Authorization: `Bearer ${ADMIN_KEY}`, "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: response.status, body: await response.json() };
}

async function chat(key, prompt) {
  const response = await fetch(`${BASE_URL}/v1/chat/completions`, {
    method: "POST",
    headers: { Authorization: `Bearer ${key}`, "Content-Type": "application/json" },
    body: JSON.stringify({ model: "llama3.2", messages: [{ role: "user", content: prompt }] }),
  });
  return { status: response.status, body: await response.json() };
}

const profile = mkdtempSync(join(tmpdir(), "seadragon-dashboard-"));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: CHROMIUM,
  headless: true,
  viewport: { width: 1280, height: 900 },
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync"],
});
const problems = [];
// The refused sign-ins (and the injected 500) make Chromium log their status as errors; those,
// and only those, are expected while this is set.
let refusalsExpected = false;
try {
  await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin });
  const page = context.pages()[0] ?? (await context.newPage());
  page.setDefaultTimeout(20_000);
  page.on("request", (request) => {
    const url = request.url();
    if (!url.startsWith(origin) && !url.startsWith("data:")) problems.push(`request to another host: ${url}`);
  });
  page.on("console", (message) => {
    if (message.type() !== "error") return;
    if (refusalsExpected && /status of (401|403|500)/.test(message.text())) return;
    problems.push(`console error: ${message.text()}`);
  });
  page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
  page.on("dialog", (dialog) => dialog.accept());
  const assets = [];
  page.on("response", (response) => {
    if (/\/dashboard\/(app|style)\.[0-9a-f]+\.(js|css)$/.test(response.url())) assets.push(response);
  });

  // The page and its headers.
  const response = await page.goto(`${BASE_URL}/dashboard`);
  const headers = response.headers();
  check(response.status() === 200, `GET /dashboard answered ${response.status()}`);
  check(headers["content-security-policy"]?.includes("default-src 'self'"), `CSP: ${headers["content-security-policy"]}`);
  check(headers["x-content-type-options"] === "nosniff", "no nosniff on the page");
  check(headers["cache-control"] === "no-cache", `page cache-control: ${headers["cache-control"]}`);
  await page.locator("#signin-form").waitFor();
  check(assets.length === 2, `expected the versioned script and stylesheet, got ${assets.map((r) => r.url())}`);
  for (const asset of assets) {
    check(asset.headers()["cache-control"]?.includes("immutable"), `${asset.url()} is not cached long`);
  }

  // A user key is refused with a clear message.
  refusalsExpected = true;
  await page.fill("#signin-key", USER_KEY);
  await page.click("#signin-form button[type=submit]");
  await page.locator("#signin-error", { hasText: "not an admin key" }).waitFor();
  await page.fill("#signin-key", "sk-sd-no-such-key");
  await page.click("#signin-form button[type=submit]");
  await page.locator("#signin-error", { hasText: "unknown, revoked or expired" }).waitFor();
  refusalsExpected = false;
  log("a user key is refused as not an admin key, an unknown key as unknown");

  await page.fill("#signin-key", ADMIN_KEY);
  await page.click("#signin-form button[type=submit]");
  await page.locator("#overview").waitFor();
  check((await page.evaluate(() => sessionStorage.getItem("seadragon.adminKey"))) === ADMIN_KEY, "the key is not in sessionStorage");
  check((await page.evaluate(() => localStorage.length)) === 0, "something was written to localStorage");
  log("signed in");

  // The counts shown match the admin API's, read just before and just after (they move).
  let matched = null;
  for (let i = 0; i < 40 && !matched; i += 1) {
    const before = (await admin("GET", "/admin/queue")).body;
    const shown = {
      queued: await page.locator("#sum-queued").innerText(),
      running: await page.locator("#sum-running").innerText(),
      free: await page.locator('td.queued[data-tier="free"]').innerText(),
    };
    const after = (await admin("GET", "/admin/queue")).body;
    const same = (q) => `${q.queued}` === shown.queued && `${q.running.length}` === shown.running
      && shown.free.startsWith(`${q.tiers.find((t) => t.tier === "free").queued} /`);
    if (same(before) && same(after)) matched = { shown, api: after };
    else await page.waitForTimeout(250);
  }
  check(matched, "the queued and running counts shown never matched GET /admin/queue");
  check(matched.api.queued > 0 && matched.api.running.length > 0, `expected jobs queued and running: ${JSON.stringify(matched.shown)}`);
  log(`shown ${JSON.stringify(matched.shown)}, as GET /admin/queue says`);
  await page.locator("#running-table tbody td", { hasText: "tok/s" }).first().waitFor();

  // Let the charts gather a few points, then take the screenshots.
  await page.waitForTimeout(5000);
  await page.screenshot({ path: `${SCREENSHOT_DIR}/dashboard-1280.png`, fullPage: true });
  await page.setViewportSize({ width: 390, height: 844 });
  await page.waitForTimeout(300);
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth);
  check(overflow <= 390, `at 390 px the page is ${overflow} px wide`);
  await page.screenshot({ path: `${SCREENSHOT_DIR}/dashboard-390.png`, fullPage: true });
  await page.setViewportSize({ width: 1280, height: 900 });
  log("screenshots taken");

  // Clear the free tier (the confirmation is accepted).
  const freeQueued = (await admin("GET", "/admin/queue")).body.tiers.find((t) => t.tier === "free").queued;
  check(freeQueued > 0, "nothing is queued in the free tier to clear");
  await page.click('button[data-clear="free"]');
  await page.locator(".message.notice", { hasText: "from free" }).waitFor();
  const freeAfter = (await admin("GET", "/admin/queue")).body.tiers.find((t) => t.tier === "free").queued;
  check(freeAfter === 0, `the free tier still has ${freeAfter} queued`);
  log(`cleared the free tier (${await page.locator(".message.notice").innerText()})`);

  // Keys: create one, copy and use its secret, change its tier, revoke it.
  await page.click('#tabs a[data-tab="keys"]');
  await page.fill("#create-name", "made-by-dashboard");
  await page.selectOption("#create-tier", "enterprise");
  await page.click("#create-form button[type=submit]");
  await page.locator("#secret").waitFor();
  const secret = await page.locator("#secret-value").innerText();
  check(secret.startsWith("sk-sd-"), `the secret shown is ${secret}`);
  await page.click("#secret-copy");
  await page.locator("#secret-copy", { hasText: "Copied" }).waitFor();
  check((await page.evaluate(() => navigator.clipboard.readText())) === secret, "the clipboard does not hold the secret");
  const row = page.locator("#keys-table tbody tr", { hasText: "made-by-dashboard" });
  await row.waitFor();
  const id = await row.getAttribute("data-key");
  await page.screenshot({ path: `${SCREENSHOT_DIR}/dashboard-keys.png`, fullPage: true });
  const answer = await chat(secret, "hi");
  check(answer.status === 200 && answer.body.choices?.[0]?.message?.content === "Hello from the fake Ollama.",
    `the new key's chat answered ${answer.status} ${JSON.stringify(answer.body)}`);
  log(`created ${id}; its chat was answered`);

  await row.locator("button", { hasText: "Edit" }).click();
  const editing = page.locator("#keys-table tbody tr", { hasText: "editing" });
  await editing.locator("select").selectOption("pro");
  await editing.locator("button", { hasText: "Save" }).click();
  await page.locator(`#keys-table tbody tr[data-key="${id}"]`, { hasText: "pro" }).waitFor();
  check((await admin("GET", `/admin/keys/${id}`)).body.tier === "pro", "the tier change did not reach the API");
  await page.click(`button[data-revoke="${id}"]`);
  await page.locator(`#keys-table tbody tr[data-key="${id}"]`, { hasText: "revoked" }).waitFor();
  check((await admin("GET", `/admin/keys/${id}`)).body.revoked_at != null, "the key is not revoked");
  check((await chat(secret, "hi")).status === 401, "the revoked key still works");
  await page.selectOption("#filter-revoked", "true");
  await page.waitForFunction(() => [...document.querySelectorAll("#keys-table tbody tr")].every((r) => r.textContent.includes("revoked")));
  log("changed its tier, revoked it, filtered the revoked keys");

  // Models: make another model the default.
  await page.click('#tabs a[data-tab="models"]');
  const before = await page.locator("#default-model").innerText();
  const options = await page.locator("#default-select option").allInnerTexts();
  const next = options.find((m) => m !== before && !m.startsWith("all-minilm"));
  check(next, `no other model to select among ${options}`);
  await page.selectOption("#default-select", next);
  await page.click("#default-form button[type=submit]");
  await page.locator("#default-model", { hasText: next }).waitFor();
  await page.locator("#models-table tbody tr", { hasText: next }).locator(".badge").waitFor();
  console.log(`DEFAULT=${next}`);
  await page.screenshot({ path: `${SCREENSHOT_DIR}/dashboard-models.png`, fullPage: true });
  log(`the default model was ${before}, now ${next}`);

  // The fields GET /admin/queue is gaining (starvation, rescues, scheduling) are shown when
  // present, and an API error is shown in the page: both injected by rewriting answers.
  await page.route("**/admin/queue", async (route) => {
    const real = await route.fetch();
    const body = await real.json();
    for (const t of body.tiers) Object.assign(t, { starving: t.tier === "free" ? 2 : 0, rescues: 7, starvation_secs: 120 });
    body.scheduling = { rescue_share: 0.1, recent_rescue_share: 0.04, throughput_per_sec: 9.8 };
    await route.fulfill({ response: real, json: body });
  });
  await page.route("**/admin/stats", (route) => route.fulfill({
    status: 500, contentType: "application/json",
    json: { error: { message: "injected failure", type: "server_error", param: null, code: null } },
  }));
  refusalsExpected = true; // the injected 500 is logged like the refusals
  await page.click('#tabs a[data-tab="overview"]');
  const free = page.locator("#tiers-table tbody tr", { hasText: "free" });
  await free.locator("td", { hasText: "2 min 0 s" }).waitFor();
  check((await free.locator("td").nth(3).innerText()) === "2", "starving jobs are not shown");
  check((await free.locator("td").nth(4).innerText()) === "7", "rescues are not shown");
  await page.locator(".stat", { hasText: "10.0 %" }).locator(".detail", { hasText: "recently 4.0 %" }).waitFor();
  await page.locator(".stat .value", { hasText: "9.8 jobs/s" }).waitFor();
  await page.locator(".message.error", { hasText: "GET /admin/stats failed (500): injected failure" }).waitFor();
  await page.unrouteAll();
  await page.locator(".message.error").waitFor({ state: "detached" });
  refusalsExpected = false;
  log("starvation, rescues and scheduling are shown when present; an API error is shown, then cleared");

  // Sign out: the key leaves the tab.
  await page.click("#sign-out");
  await page.locator("#signin").waitFor();
  check((await page.evaluate(() => sessionStorage.length)) === 0, "sessionStorage still holds something");
  check(!(await page.locator("#overview").isVisible()), "the overview is still shown");
  log("signed out");

  // Swagger UI links to the dashboard (its own console is not this test's concern).
  const docs = await context.newPage();
  await docs.goto(`${BASE_URL}/docs/`);
  await docs.locator('.swagger-ui .info a[href="/dashboard"]').waitFor();
  await docs.close();
  log("/docs links to the dashboard");
} catch (e) {
  problems.push(e.stack ?? String(e));
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
for (const problem of problems) console.error(`dashboard-check: FAIL: ${problem}`);
process.exitCode = problems.length ? 1 : 0;
if (!problems.length) log("OK");
