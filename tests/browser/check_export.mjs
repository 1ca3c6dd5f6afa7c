// Opens exported HTML files in headless Chromium and checks that each renders its math with
// no script errors and no network requests. Usage: node check_export.mjs FILE...
// Prints "N passed, N failed" last and exits non-zero on any failure.
import { chromium } from "playwright-core";
import { pathToFileURL } from "node:url";

const files = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run"],
});
let passed = 0;
let failed = 0;
for (const file of files) {
  const url = pathToFileURL(file).href;
  const page = await browser.newPage();
  const problems = [];
  page.on("request", (request) => {
    if (request.url() !== url) problems.push(`request: ${request.url()}`);
  });
  page.on("console", (message) => {
    if (message.type() === "error" || message.type() === "warning") {
      problems.push(`console ${message.type()}: ${message.text()}`);
    }
  });
  page.on("pageerror", (error) => problems.push(`script error: ${error.message}`));
  await page.goto(url, { waitUntil: "load" });
  const seen = await page.evaluate(() => ({
    math: document.querySelectorAll("math").length,
    blockMath: document.querySelectorAll('math[display="block"]').length,
    tables: document.querySelectorAll("table").length,
    code: document.querySelectorAll("pre code").length,
    scripts: document.querySelectorAll("script").length,
    // MathML laid out by the browser has a real size.
    mathHeight: Math.max(0, ...[...document.querySelectorAll("math")].map((m) => m.getBoundingClientRect().height)),
  }));
  if (seen.math < 2 || seen.blockMath < 1) problems.push(`math not rendered: ${JSON.stringify(seen)}`);
  if (seen.tables < 1 || seen.code < 1) problems.push(`table or code missing: ${JSON.stringify(seen)}`);
  if (seen.scripts > 0) problems.push(`the page contains ${seen.scripts} script element(s)`);
  if (!(seen.mathHeight > 5)) problems.push(`math has no layout: ${JSON.stringify(seen)}`);
  await page.close();
  if (problems.length === 0) {
    passed += 1;
    console.log(`ok ${file} ${JSON.stringify(seen)}`);
  } else {
    failed += 1;
    console.log(`FAIL ${file}\n  ${problems.join("\n  ")}`);
  }
}
await browser.close();
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 && passed > 0 ? 0 : 1);
