// Can the UI keep up with WSE speed? A synthetic server streams 2,000 tokens/s of mixed text
// and math into three candidate panes (the page is the real built UI, in real Chromium), while
// the test keeps typing into the problem box. Measured in the page: input latency (Event
// Timing API: from the key event to the next frame painted after it) and how long after
// being sent the last token is on screen.
// Usage: node ui_speed.mjs UI_DIR [SECONDS=60] [TOKENS_PER_S=2000]
import { chromium } from "playwright-core";
import { createServer } from "node:http";
import { readFileSync, existsSync } from "node:fs";
import { join, extname } from "node:path";

const [uiDir, secondsArg, rateArg] = process.argv.slice(2);
const seconds = Number(secondsArg || 60);
const rate = Number(rateArg || 2000);
const token = "speed-test-token";
const tickMs = 10;
const MARKER = "ENDMARKER";

// Tokens as a model writes them: words, numbers, inline and display math, paragraph breaks.
const pieces = ["The ", "sum ", "of ", "$x^2$ ", "and ", "$\\frac{a}{b}$ ", "is ", "12 ", "so ",
  "we ", "get ", "$\\sqrt{2}\\,\\pi$ ", "then ", "\n\n", "$$\\int_0^1 t\\,dt = \\tfrac12$$\n\n",
  "check: ", "$(a+b)^2 = a^2 + 2ab + b^2$. "];
let sentMarkerAt = 0;

function streamRun(response) {
  response.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
  let seq = 0;
  const send = (kind) => {
    const event = { seq: seq++, elapsed_ms: 0, ...kind };
    response.write(`event: ${event.type}\ndata: ${JSON.stringify(event)}\n\n`);
  };
  send({ type: "started", request: { problem: "speed", settings: { candidates: 3, plan: false } } });
  send({ type: "stage", stage: "solving" });
  let sent = 0;
  let piece = 0;
  const started = Date.now();
  const timer = setInterval(() => {
    const due = Math.floor(((Date.now() - started) / 1000) * rate);
    for (let c = 0; c < 3; c++) {
      let text = "";
      for (let k = c; k < due - sent; k += 3) text += pieces[piece++ % pieces.length];
      if (text) send({ type: "candidate_delta", candidate: c, part: "answer", text });
    }
    sent = due;
    if (Date.now() - started >= seconds * 1000) {
      clearInterval(timer);
      sentMarkerAt = Date.now();
      send({ type: "candidate_delta", candidate: 2, part: "answer", text: ` ${MARKER}` });
      for (let c = 0; c < 3; c++) {
        send({ type: "candidate_finished", candidate: c, answer: "12", finish: "complete", tokens: sent / 3, seconds });
      }
      send({ type: "final_answer", candidate: 0, answer: "12", method: "unanimous" });
      send({ type: "stats", prompt_tokens: 1, generated_tokens: sent, plan_tokens: 0, judge_tokens: 0,
             wall_seconds: seconds, decode_tokens_per_s: rate });
      response.end();
    }
  }, tickMs);
}

const types = { ".html": "text/html", ".js": "text/javascript", ".wasm": "application/wasm", ".css": "text/css" };
const server = createServer((request, response) => {
  if (request.method === "POST" && request.url === "/v1/k2/runs") {
    request.resume();
    return streamRun(response);
  }
  const path = join(uiDir, request.url === "/" ? "index.html" : request.url.split("?")[0]);
  if (!existsSync(path)) { response.writeHead(404); return response.end(); }
  response.writeHead(200, { "content-type": types[extname(path)] || "application/octet-stream" });
  response.end(readFileSync(path));
});
await new Promise((r) => server.listen(0, "127.0.0.1", r));
const origin = `http://127.0.0.1:${server.address().port}`;

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run"],
});
const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
await page.goto(`${origin}/#token=${token}`);
await page.waitForSelector("#solve");
await page.evaluate((marker) => {
  window.__latencies = [];
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      if (["keydown", "keyup", "keypress", "input", "beforeinput"].includes(e.name)) {
        window.__latencies.push(e.duration);
      }
    }
  }).observe({ type: "event", durationThreshold: 16, buffered: true });
  window.__markerSeenAt = 0;
  // Only what changed is searched: reading the whole page's text on every mutation would put
  // the harness's own O(text) work on the main thread each frame and inflate the latencies.
  const holds = (node) => (node.textContent || "").includes(marker);
  new MutationObserver((records) => {
    if (window.__markerSeenAt) return;
    const seen = records.some((r) => r.type === "characterData" ? holds(r.target)
      : [...r.addedNodes].some(holds));
    if (seen) window.__markerSeenAt = Date.now();
  }).observe(document.body, { subtree: true, childList: true, characterData: true });
}, MARKER);

await page.fill("#problem", "speed");
// TRACE=FILE records a Chromium performance trace of the run (for finding where frames go).
if (process.env.TRACE) await browser.startTracing(page, { path: process.env.TRACE, screenshots: false });
await page.click("#solve");
// Keep typing while the stream runs, as a student would: raw key events into the focused
// box. (`page.type(selector)` would run Playwright's actionability checks in the page before
// every key, which cost 200-270 ms of the page's main thread each once the DOM is large, and
// delayed the page's own frames: harness work, not the app's.)
await page.focus("#problem");
const typingUntil = Date.now() + seconds * 1000;
let keys = 0;
while (Date.now() < typingUntil) {
  await page.keyboard.type("x");
  keys += 1;
  await page.waitForTimeout(250);
}
await page.waitForFunction(() => window.__markerSeenAt > 0, null, { timeout: 60000 });
if (process.env.TRACE) await browser.stopTracing();
const result = await page.evaluate(() => ({
  latencies: window.__latencies, markerSeenAt: window.__markerSeenAt,
  characters: [...document.querySelectorAll(".candidate .answer")].map((a) => a.textContent.length),
  problem: document.querySelector("#problem").value,
}));
// Every key must have landed in the problem box (nothing took the focus away).
const typed = result.problem.length - "speed".length;
if (typed !== keys) throw new Error(`typed ${keys} keys but the problem box got ${typed}`);
const sorted = [...result.latencies].sort((a, b) => a - b);
const summary = {
  seconds, tokens_per_s: rate, keys_typed: keys,
  // Event Timing reports only events over 16 ms; the rest were faster.
  slow_input_events: sorted.length,
  input_latency_max_ms: sorted.length ? sorted[sorted.length - 1] : "< 16",
  input_latency_p95_ms: sorted.length ? sorted[Math.floor(sorted.length * 0.95)] : "< 16",
  last_token_on_screen_after_ms: result.markerSeenAt - sentMarkerAt,
  characters_per_pane: result.characters,
};
console.log(JSON.stringify(summary, null, 2));
await browser.close();
server.close();
