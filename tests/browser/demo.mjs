// Drives the demo page in headless chromium: type a sentence, click Analyze, report what the page shows.
// Usage: node demo.mjs URL SCREENSHOT_PATH "sentence" ["context"]; prints one JSON object on stdout.
import { chromium } from "playwright-core";

const [url, screenshot, sentence, context] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"],
});
const pageErrors = [];
const requests = [];
try {
  const page = await browser.newPage({ viewport: { width: 900, height: 800 } });
  page.on("pageerror", err => pageErrors.push(String(err)));
  page.on("request", request => requests.push(request.url()));
  await page.goto(url);
  await page.waitForFunction(() => !document.getElementById("model").textContent.startsWith("loading"));
  await page.fill("#text", sentence);
  if (context !== undefined) await page.fill("#context", context);
  await page.click("#analyze");
  await page.waitForSelector("body[data-state]", { timeout: 15000 });
  const rows = selector => page.$$eval(selector, nodes => nodes.map(n => n.textContent));
  const result = {
    state: await page.getAttribute("body", "data-state"),
    error: await page.textContent("#error"),
    model: await page.textContent("#model"),
    labels: await rows("#classify-results .row .label"),
    probabilities: await rows("#classify-results .row .value"),
    neighbours: await rows("#search-results li"),
    answer: await rows("#qa-answer"),
    answerParagraph: await rows("#qa-results p"),
    pageErrors,
    requests,
  };
  await page.screenshot({ path: screenshot, fullPage: true });
  console.log(JSON.stringify(result));
} finally {
  await browser.close();
}
