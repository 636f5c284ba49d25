// browse: open HTML pages in one headless Chromium over the DevTools protocol;
// report every console message, uncaught exception, log entry (CSP
// violations, blocked loads) and failed request of each page, and save a
// screenshot of it.  No npm packages: Node's WebSocket (--experimental-websocket
// on Node 20, built in from Node 22).
//
//   node --experimental-websocket tests/report/browse.mjs CHROMIUM OUT_DIR NAME=FILE.html...
//
// Writes OUT_DIR/NAME.png (1200 px wide, the first 1600 px of the page) and
// prints one line per page: "ok NAME" or "FAIL NAME: <what the page said>".
// Exit status 1 when a page failed, 2 when the browser could not be driven.
import {spawn} from 'node:child_process';
import {existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync} from 'node:fs';
import {tmpdir} from 'node:os';
import {join, resolve} from 'node:path';
import {pathToFileURL} from 'node:url';

const [chromium, outDir, ...pages] = process.argv.slice(2);
if (!chromium || !outDir || !pages.length) {
	console.error('usage: browse.mjs CHROMIUM OUT_DIR NAME=FILE.html...');
	process.exit(2);
}
if (typeof WebSocket !== 'function') {
	console.error('browse: this node has no WebSocket (Node 20 needs --experimental-websocket)');
	process.exit(2);
}

mkdirSync(outDir, {recursive: true});
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const profile = mkdtempSync(join(tmpdir(), 'mcb-chromium.'));
const browser = spawn(chromium, [
	'--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
	'--disable-background-networking', '--disable-component-update', '--disable-sync',
	'--hide-scrollbars', '--remote-debugging-port=0', `--user-data-dir=${profile}`,
	'about:blank',
], {stdio: 'ignore'});

function cleanup() {
	browser.kill('SIGKILL');
	try {
		rmSync(profile, {recursive: true, force: true});
	} catch {}
}

// Chromium writes the port it chose to DevToolsActivePort in the profile.
async function endpoint() {
	const file = join(profile, 'DevToolsActivePort');
	for (let i = 0; i < 300; i++) {
		if (existsSync(file)) {
			const [port, path] = readFileSync(file, 'utf8').split('\n');
			if (port && path)
				return `ws://127.0.0.1:${port}${path}`;
		}
		await sleep(100);
	}
	throw new Error('chromium did not open its DevTools port within 30 s');
}

// A minimal CDP client: send() returns the result; events go to on().
function connect(url) {
	const ws = new WebSocket(url);
	let next = 1;
	const pending = new Map(), listeners = [];
	ws.onmessage = (ev) => {
		const msg = JSON.parse(ev.data);
		if (msg.id && pending.has(msg.id)) {
			const {ok, fail} = pending.get(msg.id);
			pending.delete(msg.id);
			msg.error ? fail(new Error(JSON.stringify(msg.error))) : ok(msg.result);
		} else if (msg.method) {
			for (const l of listeners)
				l(msg);
		}
	};
	return new Promise((ready, broken) => {
		ws.onerror = () => broken(new Error('cannot connect to ' + url));
		ws.onopen = () => ready({
			send(method, params = {}, sessionId) {
				const id = next++;
				ws.send(JSON.stringify({id, method, params, sessionId}));
				return new Promise((ok, fail) => pending.set(id, {ok, fail}));
			},
			on(fn) {
				listeners.push(fn);
			},
			close() {
				ws.close();
			},
		});
	});
}

async function visit(cdp, name, file) {
	const problems = [];
	const {targetId} = await cdp.send('Target.createTarget', {url: 'about:blank'});
	const {sessionId} = await cdp.send('Target.attachToTarget', {targetId, flatten: true});
	let loaded;
	const load = new Promise((r) => (loaded = r));
	cdp.on((m) => {
		if (m.sessionId !== sessionId)
			return;
		const p = m.params;
		if (m.method === 'Runtime.consoleAPICalled')
			problems.push(`console.${p.type}: ` + p.args.map((a) => a.value ?? a.description).join(' '));
		else if (m.method === 'Runtime.exceptionThrown')
			problems.push('uncaught: ' + (p.exceptionDetails.exception?.description ?? p.exceptionDetails.text));
		else if (m.method === 'Log.entryAdded')
			problems.push(`${p.entry.source} ${p.entry.level}: ${p.entry.text}`);
		else if (m.method === 'Network.loadingFailed' && !p.canceled)
			problems.push(`load failed: ${p.errorText} ${p.blockedReason ?? ''}`.trim());
		else if (m.method === 'Page.loadEventFired')
			loaded();
	});
	for (const domain of ['Page', 'Runtime', 'Log', 'Network'])
		await cdp.send(`${domain}.enable`, {}, sessionId);
	await cdp.send('Emulation.setDeviceMetricsOverride',
		{width: 1200, height: 1600, deviceScaleFactor: 1, mobile: false}, sessionId);
	const nav = await cdp.send('Page.navigate', {url: pathToFileURL(resolve(file)).href}, sessionId);
	if (nav.errorText)
		problems.push('navigation failed: ' + nav.errorText);
	else
		await Promise.race([load, sleep(20000).then(() => problems.push('no load event within 20 s'))]);
	await sleep(200); // late console messages and violation reports
	const shot = await cdp.send('Page.captureScreenshot', {format: 'png'}, sessionId);
	writeFileSync(join(outDir, `${name}.png`), Buffer.from(shot.data, 'base64'));
	await cdp.send('Target.closeTarget', {targetId});
	return problems;
}

let failed = 0;
try {
	const cdp = await connect(await endpoint());
	for (const arg of pages) {
		const eq = arg.indexOf('=');
		const [name, file] = [arg.slice(0, eq), arg.slice(eq + 1)];
		const problems = await visit(cdp, name, file);
		if (problems.length) {
			failed++;
			console.log(`FAIL ${name}: ${problems.join(' | ')}`);
		} else {
			console.log(`ok ${name} (${join(outDir, name + '.png')})`);
		}
	}
	cdp.close();
} catch (e) {
	console.error('browse: ' + e.message);
	cleanup();
	process.exit(2);
}
cleanup();
process.exit(failed ? 1 : 0);
