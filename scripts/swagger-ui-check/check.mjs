// Opens Swagger UI at BASE_URL/docs/ in Debian's Chromium, authorizes with ADMIN_KEY, runs
// "list keys" (GET /admin/keys) and checks what the page renders: status 200 and the JSON,
// which must contain a key named EXPECT_NAME. Saves a screenshot to SCREENSHOT and fails if the
// page requested anything from another host (Swagger UI must work with no network).
//
// Started by scripts/swagger-ui-check.sh, which provides the server and the environment.

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

const { BASE_URL, ADMIN_KEY, EXPECT_NAME, SCREENSHOT } = process.env;
const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const OPERATION = "#operations-keys-listKeys";

function fail(message) {
  console.error(`swagger-ui-check: FAIL: ${message}`);
  process.exitCode = 1;
}

const profile = mkdtempSync(join(tmpdir(), "seadragon-chromium-"));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: CHROMIUM,
  headless: true,
  viewport: { width: 1280, height: 1000 },
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});
const foreign = [];
try {
  const page = context.pages()[0] ?? (await context.newPage());
  const origin = new URL(BASE_URL).origin;
  page.on("request", (request) => {
    const url = request.url();
    if (!url.startsWith(origin) && !url.startsWith("data:")) foreign.push(url);
  });
  page.setDefaultTimeout(15_000);

  await page.goto(`${BASE_URL}/docs/`);
  await page.locator(".swagger-ui .info .title", { hasText: "Seadragon" }).waitFor();

  // Authorize: the bearer field of the modal takes the key alone, without "Bearer ".
  await page.locator(".auth-wrapper button.authorize").click();
  const modal = page.locator(".modal-ux");
  await modal.locator("input").first().fill(ADMIN_KEY);
  await modal.locator(".auth-btn-wrapper button.authorize").click();
  await modal.locator("button.btn-done").click();

  // "List keys": expand it, Try it out, Execute.
  const operation = page.locator(OPERATION);
  await operation.locator(".opblock-summary").click();
  await operation.locator("button.try-out__btn").click();
  await operation.locator("button.execute").click();

  const live = operation.locator(".live-responses-table");
  const status = (await live.locator(".response .response-col_status").first().innerText()).trim();
  const shown = await live.locator(".response-col_description .highlight-code pre").first().innerText();
  const curl = await operation.locator(".curl-command").innerText();
  await operation.scrollIntoViewIfNeeded();
  await page.screenshot({ path: SCREENSHOT, fullPage: false });
  await operation.screenshot({ path: SCREENSHOT.replace(/\.png$/, "-operation.png") });

  console.log(`swagger-ui-check: status shown: ${status}`);
  console.log(`swagger-ui-check: body shown: ${shown.replace(/\s+/g, " ").slice(0, 300)}`);
  if (status !== "200") fail(`expected status 200, the page shows ${status}`);
  if (!curl.includes("Authorization: Bearer")) fail("the request carried no bearer key");
  let body;
  try {
    body = JSON.parse(shown);
  } catch (e) {
    fail(`the page does not show JSON: ${e.message}`);
  }
  if (body && !(body.object === "list" && body.data.some((k) => k.name === EXPECT_NAME))) {
    fail(`the list shown does not contain the key "${EXPECT_NAME}"`);
  }
  if (foreign.length > 0) fail(`the page requested other hosts: ${foreign.join(", ")}`);
} catch (e) {
  fail(e.stack ?? String(e));
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
if (!process.exitCode) console.log(`swagger-ui-check: OK (screenshot: ${SCREENSHOT})`);
