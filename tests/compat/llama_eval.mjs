// llama_eval: evaluate token ids with llama.cpp (node-llama-cpp 3.22.1, CPU).
//
//   node llama_eval.mjs [--tokens] MODEL.gguf IDS.json OUT.json
//
// --tokens feeds the ids one token per llama_decode call (decode through the
// KV cache) instead of one batch.  ggml's kernels differ for one token and
// for a batch (tinyBLAS vs ggml_vec_dot, the repacked GEMM vs GEMV and their
// activation quantizers), so llama.cpp's own logits differ between the two
// feeds; mcbuild's engine in GGML mode follows either (engine_logits
// --tokens).
//
// IDS.json is a JSON array of token ids (or an object with an "ids" array).
// OUT.json gets, for every position i (after feeding ids[0..i]):
//   {"model": path, "n_vocab": V, "ids": [...],
//    "logits": [[V raw logits], ...]   one row per position,
//    "next": [greedy next token, ...]  llama.cpp's own pick (temperature 0)}
// Logits are float32 values printed exactly (shortest round-trip form).
//
// Settings for exact comparisons (../shared/ref/ORACLE.md): one sequence,
// one thread, no flash attention, F32 KV cache; the defaults (F16 KV cache,
// flash attention) move logits by ~3e-2.
//
// Exit status: 0 on success; 1 with a "llama_eval: ..." message when the
// model cannot be loaded or evaluated; 2 on bad usage or input.

import fs from "node:fs";
import process from "node:process";

function die(code, msg) {
	process.stderr.write(`llama_eval: ${msg}\n`);
	process.exit(code);
}

const args = process.argv.slice(2);
const oneByOne = args[0] === "--tokens";
const [modelPath, idsPath, outPath] = oneByOne ? args.slice(1) : args;
if (!outPath || args.length !== (oneByOne ? 4 : 3))
	die(2, "usage: node llama_eval.mjs [--tokens] MODEL.gguf IDS.json OUT.json");

let ids;
try {
	const parsed = JSON.parse(fs.readFileSync(idsPath, "utf8"));
	ids = Array.isArray(parsed) ? parsed : parsed.ids;
} catch (e) {
	die(2, `cannot read token ids from '${idsPath}': ${e.message}`);
}
if (!Array.isArray(ids) || ids.length === 0 || ids.length > 512 ||
    !ids.every((t) => Number.isInteger(t) && t >= 0))
	die(2, `'${idsPath}' must hold 1..512 non-negative integer token ids`);
if (!fs.existsSync(modelPath))
	die(1, `cannot load '${modelPath}': no such file`);

let getLlama, LlamaLogLevel;
try {
	({ getLlama, LlamaLogLevel } = await import("node-llama-cpp"));
} catch (e) {
	die(1, `node-llama-cpp is not installed (run make deps): ${e.message}`);
}

// llama.cpp's own error lines, kept for the failure message
const logLines = [];
let llama, model, context;
try {
	llama = await getLlama({
		gpu: false,
		build: "never",
		logLevel: LlamaLogLevel.warn,
		logger: (level, message) => {
			logLines.push(String(message).trim());
		},
	});
} catch (e) {
	die(1, `cannot start llama.cpp (prebuilt CPU binary missing? run make deps): ${e.message}`);
}
try {
	model = await llama.loadModel({ modelPath, gpuLayers: 0 });
} catch (e) {
	const tail = logLines.slice(-5).join(" | ");
	die(1, `cannot load '${modelPath}': ${e.message}${tail ? ` (llama.cpp: ${tail})` : ""}`);
}

try {
	context = await model.createContext({
		contextSize: 512,
		sequences: 1,
		threads: 1,
		flashAttention: false,
		experimentalKvCacheKeyType: "F32",
		experimentalKvCacheValueType: "F32",
	});
	const seq = context.getSequence();
	const step = (t) => [t, { generateNext: { logits: true, token: true } }];
	let res;
	if (oneByOne) {
		res = [];
		for (const t of ids)
			res.push((await seq.controlledEvaluate([step(t)]))[0]);
	} else {
		res = await seq.controlledEvaluate(ids.map(step));
	}
	const logits = [];
	const next = [];
	let nVocab = -1;
	for (let i = 0; i < ids.length; i++) {
		const r = res[i];
		if (!r || !r.next || !r.next.logits)
			throw new Error(`no logits for position ${i}`);
		const m = r.next.logits;
		if (nVocab < 0)
			nVocab = m.size;
		if (m.size !== nVocab)
			throw new Error(`position ${i} has ${m.size} logits, expected ${nVocab}`);
		const row = new Array(nVocab);
		for (const [tok, v] of m) {
			if (tok < 0 || tok >= nVocab)
				throw new Error(`token id ${tok} outside the vocabulary`);
			row[tok] = v;
		}
		logits.push(row);
		next.push(r.next.token ?? -1);
	}
	fs.writeFileSync(outPath, JSON.stringify({ model: modelPath, n_vocab: nVocab, ids, logits, next }));
} catch (e) {
	die(1, `evaluating '${modelPath}' failed: ${e.message}`);
} finally {
	await context?.dispose();
	await model?.dispose();
	await llama?.dispose();
}
