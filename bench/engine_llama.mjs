// engine_llama: llama.cpp's prompt and decode throughput (node-llama-cpp
// 3.22.1 from tests/compat/node_modules, CPU), measured as bench_engine run
// measures mcbuild's engine, for bench/engine.sh.
//
//   node bench/engine_llama.mjs MODEL.gguf [--threads N] [--prompt P] [--gen G] [--reps R]
//
// Context settings as tests/compat/llama_eval.mjs (ORACLE.md) except the
// thread count: context 512, one sequence, no flash attention, F32 KV cache.
// The prompt is the same token ids bench_engine uses (BOS, then an LCG),
// evaluated in one batch (llama.cpp computes the last position's logits);
// then G steps of one token each, each feeding the greedy pick of the last.
// One warm-up step first (page faults).  Prints each repetition and
// "RESULT prompt_tps=X decode_tps=Y" (best of R).  Exit 1 on errors.

import path from "node:path";
import process from "node:process";
import { fileURLToPath, pathToFileURL } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const modelPath = args[0];
const opt = { threads: 2, prompt: 64, gen: 32, reps: 3 };
for (let i = 1; i + 1 < args.length; i += 2) {
	const k = args[i].replace(/^--/, "");
	if (!(k in opt)) {
		process.stderr.write(`engine_llama: unknown option ${args[i]}\n`);
		process.exit(2);
	}
	opt[k] = Number(args[i + 1]);
}
if (!modelPath) {
	process.stderr.write("usage: node engine_llama.mjs MODEL.gguf [--threads N] [--prompt P] [--gen G] [--reps R]\n");
	process.exit(2);
}

const lib = path.join(here, "..", "tests", "compat", "node_modules", "node-llama-cpp", "dist", "index.js");
const { getLlama, LlamaLogLevel } = await import(pathToFileURL(lib).href);
const now = () => Number(process.hrtime.bigint()) / 1e9;

const llama = await getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error });
const model = await llama.loadModel({ modelPath, gpuLayers: 0 });
const context = await model.createContext({
	contextSize: 512,
	sequences: 1,
	threads: { ideal: opt.threads, min: opt.threads },
	flashAttention: false,
	experimentalKvCacheKeyType: "F32",
	experimentalKvCacheValueType: "F32",
});
const seq = context.getSequence();
const vocab = model.tokens.count ?? 32000;

// the prompt bench_engine uses: BOS, then x = x * 1103515245 + 12345 (mod 2^32)
const ids = [1];
let x = 12345;
while (ids.length < opt.prompt) {
	x = (Math.imul(x, 1103515245) + 12345) >>> 0;
	ids.push(3 + ((x >>> 8) % (vocab - 3)));
}

async function step(tok) {
	const res = await seq.controlledEvaluate([[tok, { generateNext: { token: true } }]]);
	return res[0]?.next?.token ?? 1;
}

await step(1); // warm-up
let bestP = Infinity, bestD = Infinity;
for (let r = 0; r < opt.reps; r++) {
	await seq.clearHistory();
	const t0 = now();
	const res = await seq.controlledEvaluate(
		ids.map((t, i) => (i === ids.length - 1 ? [t, { generateNext: { token: true } }] : t)));
	const t1 = now();
	let tok = res[ids.length - 1]?.next?.token ?? 1;
	for (let i = 0; i < opt.gen; i++)
		tok = await step(tok);
	const t2 = now();
	console.log(`llama.cpp: rep ${r + 1}: prompt ${opt.prompt} tokens ${(t1 - t0).toFixed(3)} s ` +
		`(${(opt.prompt / (t1 - t0)).toFixed(2)} tok/s), decode ${opt.gen} tokens ` +
		`${(t2 - t1).toFixed(3)} s (${(opt.gen / (t2 - t1)).toFixed(2)} tok/s)`);
	bestP = Math.min(bestP, t1 - t0);
	bestD = Math.min(bestD, t2 - t1);
}
console.log(`RESULT prompt_tps=${(opt.prompt / bestP).toFixed(3)} decode_tps=${(opt.gen / bestD).toFixed(3)}`);
await context.dispose();
await model.dispose();
await llama.dispose();
