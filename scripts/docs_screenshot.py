"""The built docs site (_docs/) rendered in a headless Chromium from file://, checked after its JavaScript ran, and
screenshots of it saved as PNG.

Pages: the landing page, the module page that documents `gumbel_sample` (its API entry), a page with math, a page
with a stored figure, and the search page with a query. Checked in the rendered DOM (Chrome DevTools protocol over a
pipe, no extra package): the sidebar is shown and lists every page; the title and content are there; the API entry is
on screen; MathJax typeset the math from _static (no error, its fonts loaded, nothing from the network); the figure's
image loaded; the offline search found the page; and every screenshot is not blank.

Usage: python scripts/docs_screenshot.py [--docs _docs] [--out DIR]   (screenshots into DIR; default: a temp folder)
Exit status: 0 when every check passes, 1 when one fails, 77 when no Chromium is installed (CHROME=path picks one;
Debian: `apt-get install chromium-headless-shell` or `chromium`).
"""
import argparse, fcntl, json, os, re, select, shutil, subprocess, sys, tempfile, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT/'docs'))
from check_site import API_NAME, Page  # noqa: E402

BROWSERS = ('chromium-headless-shell', 'chromium', 'chromium-browser', 'google-chrome', 'google-chrome-stable')
WIDTH, HEIGHT = 1400, 1000


def find_browser():
    if os.environ.get('CHROME'): return shutil.which(os.environ['CHROME']) or os.environ['CHROME']
    return next((p for p in map(shutil.which, BROWSERS) if p), None)


class Chrome:
    "A headless Chromium driven through the DevTools protocol on a pipe (--remote-debugging-pipe: fds 3 and 4)."
    def __init__(self, exe, timeout=30):
        self.timeout, self.n, self.events = timeout, 0, []
        to_chrome_r, self.to_chrome = os.pipe()
        self.from_chrome, from_chrome_w = os.pipe()
        self.profile = tempfile.mkdtemp(prefix='docs-chrome-')
        args = [exe, '--headless', '--remote-debugging-pipe', '--no-sandbox', '--disable-gpu', '--hide-scrollbars',
                '--no-first-run', '--no-default-browser-check', '--disable-extensions', '--mute-audio',
                f'--user-data-dir={self.profile}', f'--window-size={WIDTH},{HEIGHT}', 'about:blank']
        # the browser reads the protocol on fd 3 and writes on fd 4. The pipe's ends are copied above fd 9 (close-on-exec)
        # first, so that putting them on 3 and 4 in the child cannot overwrite one with the other; every other fd of this
        # process is close-on-exec (Python's default), so close_fds=False passes only 0-4.
        r, w = (fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in (to_chrome_r, from_chrome_w))
        def to_3_and_4(): os.dup2(r, 3); os.dup2(w, 4)
        self.proc = subprocess.Popen(args, preexec_fn=to_3_and_4, close_fds=False, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for fd in (r, w, to_chrome_r, from_chrome_w): os.close(fd)
        self.buf = b''
        targets = self.call('Target.getTargets')['targetInfos']
        page = next(t for t in targets if t['type'] == 'page')
        self.session = self.call('Target.attachToTarget', targetId=page['targetId'], flatten=True)['sessionId']
        for domain in ('Page', 'Runtime', 'Network'): self.call(f'{domain}.enable', session=True)
        self.call('Emulation.setDeviceMetricsOverride', session=True, width=WIDTH, height=HEIGHT, deviceScaleFactor=1,
                  mobile=False)

    def _read(self, deadline):
        while b'\0' not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.from_chrome], [], [], left)[0]:
                raise TimeoutError('the browser did not answer')
            chunk = os.read(self.from_chrome, 1 << 20)
            if not chunk: raise RuntimeError('the browser exited')
            self.buf += chunk
        msg, _, self.buf = self.buf.partition(b'\0')
        return json.loads(msg)

    def call(self, method, session=False, **params):
        self.n += 1
        msg = {'id': self.n, 'method': method, 'params': params}
        if session: msg['sessionId'] = self.session
        os.write(self.to_chrome, json.dumps(msg).encode() + b'\0')
        deadline = time.monotonic() + self.timeout
        while True:
            m = self._read(deadline)
            if m.get('id') == self.n:
                if 'error' in m: raise RuntimeError(f'{method}: {m["error"]}')
                return m.get('result', {})
            self.events.append(m)

    def wait_event(self, method):
        deadline = time.monotonic() + self.timeout
        while True:
            for i, m in enumerate(self.events):
                if m.get('method') == method: return self.events.pop(i)
            self.events.append(self._read(deadline))

    def open(self, url):
        self.events.clear()
        self.call('Page.navigate', session=True, url=url)
        self.wait_event('Page.loadEventFired')

    def js(self, expr):
        r = self.call('Runtime.evaluate', session=True, expression=expr, awaitPromise=True, returnByValue=True)
        if 'exceptionDetails' in r: raise RuntimeError(f'{expr[:60]}...: {r["exceptionDetails"]}')
        return r['result'].get('value')

    def screenshot(self, path):
        import base64
        data = self.call('Page.captureScreenshot', session=True, format='png')['data']
        Path(path).write_bytes(base64.b64decode(data))
        return path

    def requests(self):
        return [m['params']['request']['url'] for m in self.events if m.get('method') == 'Network.requestWillBeSent']

    def close(self):
        try: self.call('Browser.close')
        except Exception: pass
        try: self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired: self.proc.kill(); self.proc.wait()
        os.close(self.to_chrome); os.close(self.from_chrome)
        shutil.rmtree(self.profile, ignore_errors=True)


def not_blank(png) -> str:
    "'' when the screenshot shows something (several shades, some dark pixels); else why not."
    from PIL import Image
    im = Image.open(png).convert('L')
    hist = im.histogram()
    dark = sum(hist[:128]) / (im.width * im.height)
    shades = sum(1 for h in hist if h)
    return '' if shades > 16 and dark > 0.003 else f'{Path(png).name} looks blank ({shades} shades, {dark:.2%} dark)'


# evaluated in the page after load: waits for MathJax's typesetting when the page loads it
SETTLE = '''(async () => {
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) await MathJax.startup.promise;
  await document.fonts.ready; return true; })()'''
STATE = '''(() => {
  const nav = document.querySelector('nav.bd-docs-nav');
  const visible = e => !!e && e.getBoundingClientRect().width > 0 && getComputedStyle(e).visibility !== 'hidden';
  const art = document.querySelector('article');
  return {
    sidebar: nav ? [...nav.querySelectorAll('a.reference')].map(a => a.getAttribute('href')) : [],
    sidebar_visible: visible(nav),
    h1: (document.querySelector('article h1') || {}).textContent || '',
    text: art ? art.innerText.length : 0,
    math: art ? art.querySelectorAll('.math').length : 0,
    mjx: document.querySelectorAll('mjx-container').length,
    merror: document.querySelectorAll('mjx-merror').length,
    mjfonts: [...document.fonts].filter(f => f.family.includes('MJX') && f.status === 'loaded').length,
    images: art ? [...art.querySelectorAll('img')].map(i => ({src: i.getAttribute('src'), w: i.naturalWidth})) : [],
  }; })()'''


def pages_to_show(docs):
    "index, the page of API_NAME's entry, a page with math, a page with a stored figure (from the built site)."
    found = {'index': 'index.html'}
    for p in Page(Path(docs)/'index.html').sidebar()[1:]:
        if not (Path(docs)/p).exists(): continue
        page = Page(Path(docs)/p)
        if 'api' not in found and page.entry(API_NAME): found['api'] = p
        if 'math' not in found and page.math: found['math'] = p
        if 'figure' not in found and any(i.startswith('_images/') for i in page.images): found['figure'] = p
    return found


def run(docs, out, exe, kinds=('index', 'api', 'math', 'figure', 'search')):
    "Render and check the pages of `kinds` of the site in `docs`; (problems, screenshot paths, {kind: page})."
    docs, out = Path(docs).resolve(), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    problems, shots = [], []
    want = Page(docs/'index.html').sidebar()
    found = pages_to_show(docs)
    show = {k: p for k, p in found.items() if k in kinds}
    chrome = Chrome(exe)
    try:
        for kind, page in show.items():
            chrome.open((docs/page).as_uri())
            chrome.js(SETTLE)
            st = chrome.js(STATE)
            side = [h.split('#')[0] or page for h in st['sidebar']]
            side = list(dict.fromkeys('index.html' if h == '#' else h for h in side))
            if not st['sidebar_visible']: problems.append(f'{page}: the sidebar is not shown')
            if len(side) != len(want): problems.append(f'{page}: the rendered sidebar has {len(side)} pages, not {len(want)}')
            if not st['h1'].strip() or st['text'] < 200: problems.append(f'{page}: no title or content rendered')
            if kind == 'api':
                y = chrome.js(f'''(() => {{ const e = document.getElementById({json.dumps(API_NAME)});
                    if (!e) return null; e.scrollIntoView(); window.scrollBy(0, -80); return e.getBoundingClientRect().top; }})()''')
                if y is None or not 0 <= y < HEIGHT: problems.append(f'{page}: the entry {API_NAME} is not on screen')
            if kind == 'math':
                if st['mjx'] < st['math'] or st['mjx'] == 0:
                    problems.append(f'{page}: MathJax typeset {st["mjx"]} of {st["math"]} formulas')
                if st['merror']: problems.append(f'{page}: {st["merror"]} MathJax errors')
                if not st['mjfonts']: problems.append(f'{page}: no MathJax font loaded')
                chrome.js('''(() => { const m = document.querySelector('article mjx-container, article .math');
                    if (m) { m.scrollIntoView(); window.scrollBy(0, -300); } })()''')
            if kind == 'figure':
                figs = [i for i in st['images'] if (i['src'] or '').startswith('_images/')]
                if not figs or any(i['w'] == 0 for i in figs): problems.append(f'{page}: a figure did not load: {figs}')
                chrome.js('''(() => { const i = [...document.querySelectorAll('article img')]
                    .find(i => i.getAttribute('src').startsWith('_images/'));
                    if (i) { i.scrollIntoView(); window.scrollBy(0, -120); } })()''')
            time.sleep(0.2)
            shots.append(chrome.screenshot(out/f'{kind}_{Path(page).stem}.png'))
            net = [u for u in chrome.requests() if re.match(r'^(https?|wss?):', u)]
            if net: problems.append(f'{page}: requests to the network: {net[:3]}')
        # the offline search: the page that documents API_NAME is found
        api = found.get('api')
        if 'search' in kinds and api:
            chrome.open((docs/'search.html').as_uri() + f'?q={API_NAME}')
            hits = chrome.js('''new Promise(res => { const t0 = Date.now(); (function poll() {
                const r = document.querySelector('#search-results');
                const done = r && /Search finished|found/i.test(r.innerText);
                if (done || Date.now() - t0 > 10000) return res(r ? [...r.querySelectorAll('a')].map(a => a.getAttribute('href')) : []);
                setTimeout(poll, 100); })(); })''')
            if not any(h.split('#')[0].split('?')[0] == api for h in hits):
                problems.append(f'search.html?q={API_NAME} does not find {api} (found {hits})')
            shots.append(chrome.screenshot(out/'search.png'))
    finally:
        chrome.close()
    problems += [p for p in map(not_blank, shots) if p]
    return problems, shots, show


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--docs', default=str(ROOT/'_docs'))
    ap.add_argument('--out', default=None)
    a = ap.parse_args(argv)
    exe = find_browser()
    if exe is None:
        print('docs_screenshot: no Chromium on this machine (' + ', '.join(BROWSERS) + '); nothing checked')
        return 77
    if not (Path(a.docs)/'index.html').exists():
        print(f'docs_screenshot: no built site in {a.docs}: run scripts/build_docs.sh first'); return 1
    out = a.out or tempfile.mkdtemp(prefix='docs-shots-')
    t0 = time.monotonic()
    problems, shots, show = run(a.docs, out, exe)
    for s in shots: print(f'docs_screenshot: {s}')
    if problems:
        print('docs_screenshot: FAILED\n  ' + '\n  '.join(problems)); return 1
    print(f'docs_screenshot: {", ".join(f"{k} {v}" for k, v in show.items())} and search rendered in '
          f'{Path(exe).name}: sidebar, content, API entry, math, figure, search ok ({time.monotonic() - t0:.1f} s)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
