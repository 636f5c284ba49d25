// tokenize: llama.cpp's tokenizer (node-llama-cpp 3.22.1, CPU) on a GGUF
// model, compared with mcbuild's (tokenize_driver).
//
//   node tokenize.mjs [--decode] MODEL.gguf STRINGS.json OUT.json [OURS.json]
//   node tokenize.mjs [--decode] MODEL.gguf STRINGS.json OUT.json OURS.json \
//        STRINGS2.json OUT2.json OURS2.json ...
//
// STRINGS.json is a JSON array of strings.  Each is tokenized with
// model.tokenize(text, false): llama_tokenize with add_special = false (no
// BOS) and parse_special = false (text that looks like a control token is
// text; user-defined tokens are still split out, as llama.cpp always does).
// OUT.json gets {"model": path, "ids": [[id, ...], ...], "text": [llama.cpp's
// detokenization of the ids, ...]}.  Several sets of strings share one load
// of the model (llama.cpp's start-up is most of the time).
//
// With OURS.json (tokenize_driver's output for the same strings), every
// string's ids must be identical, and with --decode also the decoded texts
// (llama.cpp's detokenize(ids, false) and mcbuild's decode; meaningful for
// SentencePiece vocabularies: for gpt2 ones llama.cpp also applies its
// clean-up of spaces before punctuation, which mcbuild's decode does not).
// The differences are printed and the exit status is 1.
//
// Exit status: 0 when every string matched (or no OURS.json); 1 on a
// mismatch or when llama.cpp cannot load the model; 2 on bad usage or input.

import fs from "node:fs";
import path from "node:path";
import process from "node:process";

function die(code, msg) {
	process.stderr.write(`tokenize: ${msg}\n`);
	process.exit(code);
}

const usage = "usage: node tokenize.mjs [--decode] MODEL.gguf STRINGS.json OUT.json [OURS.json] ...";
const args = process.argv.slice(2);
const decode = args[0] === "--decode";
if (decode)
	args.shift();
const modelPath = args.shift();
if (!modelPath || !(args.length === 2 || (args.length >= 3 && args.length % 3 === 0)))
	die(2, usage);

// the sets: {stringsPath, outPath, oursPath?, strings, ours?, oursText?}
const sets = [];
for (let i = 0; i < args.length; i += 3) {
	const set = { stringsPath: args[i], outPath: args[i + 1], oursPath: args[i + 2] };
	try {
		set.strings = JSON.parse(fs.readFileSync(set.stringsPath, "utf8"));
		if (set.oursPath)
			({ ids: set.ours, text: set.oursText } =
				JSON.parse(fs.readFileSync(set.oursPath, "utf8")));
	} catch (e) {
		die(2, `cannot read the input: ${e.message}`);
	}
	const n = Array.isArray(set.strings) ? set.strings.length : -1;
	if (n < 0 || !set.strings.every((s) => typeof s === "string"))
		die(2, `'${set.stringsPath}' must hold a JSON array of strings`);
	if (set.oursPath && (!Array.isArray(set.ours) || set.ours.length !== n ||
	    (decode && (!Array.isArray(set.oursText) || set.oursText.length !== n))))
		die(2, `'${set.oursPath}' must hold "ids"${decode ? ' and "text"' : ""} for each of ` +
			`the ${n} strings of '${set.stringsPath}'`);
	sets.push(set);
}
if (!fs.existsSync(modelPath))
	die(1, `cannot load '${modelPath}': no such file`);

let getLlama, LlamaLogLevel;
try {
	({ getLlama, LlamaLogLevel } = await import("node-llama-cpp"));
} catch (e) {
	die(1, `node-llama-cpp is not installed (run make deps): ${e.message}`);
}

const logLines = [];
let llama, model;
try {
	llama = await getLlama({
		gpu: false,
		build: "never",
		logLevel: LlamaLogLevel.warn,
		logger: (level, message) => {
			logLines.push(String(message).trim());
		},
	});
	model = await llama.loadModel({ modelPath, gpuLayers: 0 });
} catch (e) {
	const tail = logLines.slice(-5).join(" | ");
	die(1, `cannot load '${modelPath}': ${e.message}${tail ? ` (llama.cpp: ${tail})` : ""}`);
}

const show = (s) => JSON.stringify(s);
let failed = false;
try {
	for (const set of sets) {
		const { strings, ours, oursText } = set;
		const ids = [];
		const text = [];
		let nbad = 0;
		for (let i = 0; i < strings.length; i++) {
			const got = Array.from(model.tokenize(strings[i], false));
			ids.push(got);
			text.push(model.detokenize(got, false));
			if (ours && show(ours[i]) !== show(got)) {
				nbad++;
				process.stdout.write(`tokenize: string ${i} ${show(strings[i])}\n` +
					`  llama.cpp ${show(got)}\n  mcbuild   ${show(ours[i])}\n`);
			} else if (ours && decode && oursText[i] !== text[i]) {
				nbad++;
				process.stdout.write(`tokenize: string ${i} ${show(strings[i])} decodes ` +
					`to\n  llama.cpp ${show(text[i])}\n  mcbuild   ${show(oursText[i])}\n`);
			}
		}
		fs.writeFileSync(set.outPath, JSON.stringify({ model: modelPath, ids, text }));
		const ntok = ids.reduce((a, v) => a + v.length, 0);
		let verdict = "";
		if (ours)
			verdict = nbad ? `: ${nbad} differ from llama.cpp` : ": all identical to llama.cpp" +
				(decode ? " (ids and decoded text)" : "");
		process.stdout.write(`tokenize: ${path.basename(set.stringsPath)}: ${strings.length} strings ` +
			`(${ntok} tokens)${verdict}\n`);
		failed ||= nbad > 0;
	}
} catch (e) {
	die(1, `tokenizing with '${modelPath}' failed: ${e.message}`);
} finally {
	await model?.dispose();
	await llama?.dispose();
}
process.exit(failed ? 1 : 0);
