// Drive a running JupyterLab in headless Chromium, the way a learner would: open the notebook, Run All, then
// --mode chat (lesson 03): type a reply into the chat playground and click Send;
// --mode rate (lesson 07): click "A is better" in the preference rater and see it move to the next pair;
// and take a screenshot.
//
//   node drive_lab.mjs --url http://127.0.0.1:PORT/ --notebook 03_empathy_environment.ipynb --mode chat \
//       --reply "That sounds hard." --screenshot runs/browser/03_empathy_environment.png
//
// Progress goes to stdout, one line per step; any failure exits 1 with one line saying which step and why.
// A screenshot is taken even when a step fails, so a failure can be looked at.
// Called by tests/test_browser.py, which starts and stops the Jupyter server.

import { parseArgs } from 'node:util';
import { chromium } from 'playwright-core';

const { values: opt } = parseArgs({
  options: {
    url: { type: 'string' },
    notebook: { type: 'string' },
    mode: { type: 'string', default: 'chat' }, // chat (lesson 03's playground) or rate (lesson 07's rater)
    reply: { type: 'string', default: 'That sounds really hard. I am here and listening.' },
    screenshot: { type: 'string' },
    chromium: { type: 'string', default: '/usr/bin/chromium' },
    'run-timeout': { type: 'string', default: '300' }, // s for Run All (quick mode): 60-150 s seen on 2 busy cores
  },
});
for (const name of ['url', 'notebook', 'screenshot']) {
  if (!opt[name]) throw new Error(`--${name} is required`);
}
if (!['chat', 'rate'].includes(opt.mode)) throw new Error(`--mode must be chat or rate, not ${opt.mode}`);

// Flags from /work/shared/TOOLING.md: no sandbox (root in a container), no GPU, nothing phoning home.
const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--no-first-run'];
const PLACEHOLDER = 'Type your reply and press Send'; // camp.widgets.ChatPlayground's text box
const t0 = Date.now();
const elapsed = () => ((Date.now() - t0) / 1000).toFixed(1);

// Run `fn` as one named step with its own deadline, so a hang says where it hung.
async function step(name, seconds, fn) {
  let timer;
  const deadline = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${name}: not done within ${seconds} s`)), seconds * 1000);
  });
  try {
    const result = await Promise.race([fn(), deadline]);
    console.log(`[${elapsed()} s] ok: ${name}`);
    return result;
  } finally {
    clearTimeout(timer);
  }
}

const browser = await chromium.launch({ executablePath: opt.chromium, headless: true, args: FLAGS });
const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
const pageErrors = [];
page.on('pageerror', (err) => pageErrors.push(String(err)));
page.on('console', (msg) => { if (msg.type() === 'error') pageErrors.push(msg.text()); });

let failed = false;
try {
  await step('JupyterLab loaded and opened the notebook', 60, async () => {
    await page.goto(`${opt.url}lab/tree/${encodeURIComponent(opt.notebook)}`, { waitUntil: 'domcontentloaded' });
    // Find the notebook's panel among the main-area widgets and keep it on window for later steps.
    await page.waitForFunction((path) => {
      const app = window.jupyterapp;
      if (!app?.shell) return false;
      for (const widget of app.shell.widgets('main')) {
        if (widget.context?.path === path && widget.content?.widgets?.length) {
          window.campPanel = widget;
          return true;
        }
      }
      return false;
    }, opt.notebook, { polling: 250, timeout: 0 });
  });

  await step('kernel started and idle', 60, async () => {
    await page.evaluate(async () => {
      await window.campPanel.context.ready;
      await window.campPanel.sessionContext.ready;
    });
    await page.waitForFunction(() => window.campPanel.sessionContext.session?.kernel?.status === 'idle',
      null, { polling: 250, timeout: 0 });
  });

  await step('Run All finished', Number(opt['run-timeout']), async () => {
    // The command's promise settles once every cell has run (or one has failed); record how it settled.
    await page.evaluate(() => {
      window.campRun = null;
      window.jupyterapp.commands.execute('notebook:run-all-cells').then(
        (ok) => { window.campRun = { ok }; },
        (err) => { window.campRun = { ok: false, error: String(err) }; });
    });
    await page.waitForFunction(() => window.campRun !== null, null, { polling: 500, timeout: 0 });
    await page.waitForFunction(() => window.campPanel.sessionContext.session?.kernel?.status === 'idle',
      null, { polling: 250, timeout: 0 });
    const report = await page.evaluate(() => {
      const code = window.campPanel.content.widgets.filter((cell) => cell.model.type === 'code');
      const errors = [];
      code.forEach((cell, i) => {
        for (const out of cell.model.outputs.toJSON()) {
          if (out.output_type === 'error') errors.push(`code cell ${i + 1}: ${out.ename}: ${out.evalue}`);
        }
      });
      return { run: window.campRun, cells: code.length,
        ran: code.filter((cell) => cell.model.executionCount !== null).length, errors };
    });
    if (report.errors.length) throw new Error(`a cell raised: ${report.errors.join('; ')}`);
    if (!report.run.ok || report.ran !== report.cells) {
      throw new Error(`Run All stopped: ${report.ran} of ${report.cells} code cells ran ${report.run.error ?? ''}`);
    }
    console.log(`all ${report.cells} code cells ran`);
  });

  if (opt.mode === 'rate') {
    const choose = page.getByRole('button', { name: 'A is better', exact: true });
    await step('preference rater rendered', 30, async () => {
      const broken = page.getByText('Error displaying widget');
      await choose.or(broken).first().waitFor({ state: 'visible', timeout: 0 });
      if (await broken.count()) {
        throw new Error('Lab shows "Error displaying widget": do ipywidgets and jupyterlab_widgets match?');
      }
      await choose.scrollIntoViewIfNeeded();
      await page.locator('.widget-html-content', { hasText: 'Pair 1 of' }).first().waitFor({ timeout: 0 });
    });
    await step('clicked "A is better"; the kernel saved it and showed the next pair', 60, async () => {
      await choose.click();
      // The click runs PreferenceRater.rate("a") in the kernel: one line appended, then the next pair drawn.
      const next = page.locator('.widget-html-content', { hasText: 'Pair 2 of' }).first();
      await next.waitFor({ timeout: 0 });
      console.log(`rated: ${(await next.innerText()).slice(0, 80)}`);
      await next.evaluate((el) => el.scrollIntoView({ block: 'center' })); // the rater in the shot
    });
  } else {
    const input = page.getByPlaceholder(PLACEHOLDER);
    const playground = page.locator('.widget-vbox', { has: input });
    const transcript = playground.locator('.widget-html-content').first();
    const signals = playground.locator('.widget-html-content', { hasText: 'last reply' });

    await step('chat playground rendered', 30, async () => {
      const broken = page.getByText('Error displaying widget');
      await input.or(broken).first().waitFor({ state: 'visible', timeout: 0 });
      if (await broken.count()) {
        throw new Error('Lab shows "Error displaying widget": do ipywidgets and jupyterlab_widgets match?');
      }
      await playground.scrollIntoViewIfNeeded();
      const before = await transcript.innerText();
      if (!before.startsWith('person:')) throw new Error(`transcript should open with the person, got ${before}`);
      if (before.includes('agent:')) throw new Error(`transcript has an agent turn before any click: ${before}`);
    });

    await step('typed a reply and clicked Send; the kernel answered', 60, async () => {
      await input.pressSequentially(opt.reply); // real key presses, into the focused text box
      const typed = await input.inputValue();
      if (typed !== opt.reply) throw new Error(`typing into the text box gave "${typed}"`);
      await playground.getByRole('button', { name: 'Send', exact: true }).click();
      // The click runs ChatPlayground.send in the kernel, which writes the new turn back into the widgets.
      await transcript.filter({ hasText: `agent: ${opt.reply}` }).waitFor({ timeout: 0 });
      await signals.filter({ hasText: 'recognition' }).waitFor({ timeout: 0 });
      const left = await input.inputValue();
      if (left !== '') throw new Error(`the text box should be cleared after Send, still holds "${left}"`);
      console.log(`transcript after the click:\n${await transcript.innerText()}`);
      await playground.evaluate((el) => el.scrollIntoView({ block: 'center' })); // the whole widget in the shot
    });
  }
} catch (err) {
  failed = true;
  console.error(`FAILED after ${elapsed()} s: ${err.message}`);
  if (pageErrors.length) console.error(`browser errors:\n  ${pageErrors.slice(-10).join('\n  ')}`);
} finally {
  try {
    await page.screenshot({ path: opt.screenshot });
    console.log(`screenshot: ${opt.screenshot}`);
  } catch (err) {
    console.error(`no screenshot: ${err.message}`);
  }
  await browser.close();
}
process.exit(failed ? 1 : 0);
