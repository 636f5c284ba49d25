# mcbuild: make for compressed models.  See README.md.
.SUFFIXES:

VERSION = 0.1.0
PREFIX = /usr/local
CC = cc
OPT = -O2
SAN =
BUILD = build
SHARED = $(CURDIR)/../shared
DYNAMIC = 0

-include config.mk

# OpenBLAS is linked at run time (runtime/blas.c dlopens it on first use):
# its headers and library path come from pkg-config, its -l flag is not used.
PKGS = yaml-0.1 libzstd libcrypto jansson zlib
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) openblas 2>/dev/null)
# The libraries are linked statically by default (Debian's -dev packages
# ship the archives): loading and relocating them was a quarter of a no-op
# rebuild's time.  DYNAMIC=1 (e.g. in config.mk) links them as shared objects.
ifeq ($(DYNAMIC),1)
PKG_LIBS := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -ldl
else
PKG_LIBS := -Wl,-Bstatic $(shell pkg-config --libs $(PKGS) 2>/dev/null) -Wl,-Bdynamic -ldl
endif
OPENBLAS_LIB := $(patsubst %/,%,$(shell pkg-config --variable=libdir openblas 2>/dev/null))/libopenblas.so.0

WARN = -Wall -Wextra -Wshadow -Wmissing-prototypes -Wstrict-prototypes -Wno-sign-compare
MCB_CFLAGS = -std=c11 -g $(OPT) $(SAN) $(WARN) -D_GNU_SOURCE -Iinclude $(PKG_CFLAGS) \
	-DMCB_VERSION='"$(VERSION)"' -DMCB_OPENBLAS_LIB='"$(OPENBLAS_LIB)"' $(CFLAGS)
MCB_LIBS = $(SAN) $(PKG_LIBS) -lpthread -lm $(LDFLAGS)

# Layers (README, "Architecture"): base <- cache <- runtime <- compiler <- main.
BASE_OBJ = $(BUILD)/runtime/err.o $(BUILD)/runtime/arena.o $(BUILD)/runtime/buf.o \
	$(BUILD)/runtime/hash.o $(BUILD)/runtime/os.o $(BUILD)/runtime/json.o \
	$(BUILD)/runtime/strmap.o $(BUILD)/runtime/rng.o $(BUILD)/runtime/utf8.o
CACHE_OBJ = $(BUILD)/cache/store.o $(BUILD)/cache/action.o $(BUILD)/cache/statcache.o \
	$(BUILD)/cache/stamp.o $(BUILD)/cache/gc.o
FMT_OBJ = $(BUILD)/runtime/tensor.o $(BUILD)/runtime/model.o $(BUILD)/runtime/llama2c.o \
	$(BUILD)/runtime/gguf.o $(BUILD)/runtime/safetensors.o $(BUILD)/runtime/hf.o \
	$(BUILD)/runtime/part.o
QUANT_OBJ = $(BUILD)/runtime/quant.o $(BUILD)/runtime/quant_ggml.o $(BUILD)/runtime/qtensor.o
# The readers of quantized checkpoints (GPTQ, AWQ, GGUF blocks) unpack with
# the quantization kernels: formats and kernels link together.
FMT_OBJ += $(QUANT_OBJ)
ENGINE_OBJ = $(BUILD)/runtime/blas.o $(BUILD)/runtime/engine.o $(BUILD)/runtime/kernels.o
# Compression algorithms (they use BLAS).
TECH_OBJ = $(BUILD)/runtime/calib.o $(BUILD)/runtime/awq.o $(BUILD)/runtime/prune.o \
	$(BUILD)/runtime/gptq.o $(BUILD)/runtime/lowrank.o
STATS_OBJ = $(BUILD)/runtime/stats.o
TOK_OBJ = $(BUILD)/runtime/tokenizer.o $(BUILD)/runtime/dataset.o
REPORT_OBJ = $(BUILD)/runtime/report.o
EVAL_OBJ = $(ENGINE_OBJ) $(STATS_OBJ) $(TOK_OBJ) $(REPORT_OBJ)
STEP_OBJ = $(BUILD)/runtime/step.o $(BUILD)/runtime/step_import.o \
	$(BUILD)/runtime/step_quantize.o $(BUILD)/runtime/step_export.o \
	$(BUILD)/runtime/step_bundle.o $(BUILD)/runtime/step_sample.o \
	$(BUILD)/runtime/step_evaluate.o $(BUILD)/runtime/step_measure.o \
	$(BUILD)/runtime/step_report.o $(BUILD)/runtime/step_assemble.o \
	$(BUILD)/runtime/step_calibrate.o $(BUILD)/runtime/step_prune.o $(BUILD)/runtime/wstep.o \
	$(BUILD)/runtime/step_lowrank.o
FRONT_OBJ = $(BUILD)/compiler/yaml.o $(BUILD)/compiler/diag.o $(BUILD)/compiler/schema.o \
	$(BUILD)/compiler/technique.o $(BUILD)/compiler/recipe.o $(BUILD)/gen/builtin.o
CORE_OBJ = $(BUILD)/compiler/plan.o $(BUILD)/compiler/build.o $(BUILD)/compiler/explain.o
ALL_OBJ = $(BASE_OBJ) $(CACHE_OBJ) $(FMT_OBJ) $(EVAL_OBJ) $(TECH_OBJ) $(STEP_OBJ) \
	$(FRONT_OBJ) $(CORE_OBJ)

HW_YAML = recipes/hardware/gpu-nvidia.yaml recipes/hardware/cpu.yaml

# Unit tests, grouped by the layers they link.
BASE_TESTS = test_base
CACHE_TESTS = test_store test_action test_statcache test_stamp test_gc
FMT_TESTS = test_tensor test_gguf test_safetensors test_llama2c test_model test_hf
QUANT_TESTS = test_quant test_qtensor
ENGINE_TESTS = test_engine
TECH_TESTS = test_awq test_prune test_gptq
STATS_TESTS = test_stats
TOK_TESTS = test_tokenizer test_dataset
REPORT_TESTS = test_report
FRONT_TESTS = test_yaml test_diag test_schema test_recipe
CORE_TESTS = test_plan test_steps test_calib test_export test_lowrank
UNIT_TESTS = $(BASE_TESTS) $(CACHE_TESTS) $(FMT_TESTS) $(QUANT_TESTS) $(ENGINE_TESTS) $(TECH_TESTS) \
	$(STATS_TESTS) $(TOK_TESTS) $(REPORT_TESTS) $(FRONT_TESTS) $(CORE_TESTS)
UNIT_BINS = $(UNIT_TESTS:%=$(BUILD)/tests/%)
HARNESS = $(BUILD)/tests/harness.o
STEPRUN = $(BUILD)/tests/steprun.o # step runs for the tests that link every object

all: mcbuild

mcbuild: $(BUILD)/mcbuild
	cp $(BUILD)/mcbuild $@

$(BUILD)/mcbuild: $(BUILD)/compiler/main.o $(ALL_OBJ)
	$(CC) -o $@ $(BUILD)/compiler/main.o $(ALL_OBJ) $(MCB_LIBS)

$(BUILD)/%.o: %.c include/mcb/*.h Makefile
	@mkdir -p $(@D)
	$(CC) $(MCB_CFLAGS) -c -o $@ $<

# Built-in hardware profiles, compiled into the binary as C string literals.
$(BUILD)/gen/builtin.c: $(HW_YAML) Makefile
	@mkdir -p $(@D)
	{ echo '#include "mcb/builtin.h"'; \
	  echo 'const struct mcb_builtin_file mcb_builtin_files[] = {'; \
	  for f in $(HW_YAML); do \
	    echo "{\"$$f\","; \
	    sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/^/"/' -e 's/$$/\\n"/' $$f; \
	    echo '},'; \
	  done; \
	  echo '{0, 0}};'; } > $@

$(BUILD)/gen/builtin.o: $(BUILD)/gen/builtin.c
	$(CC) $(MCB_CFLAGS) -c -o $@ $<

$(BUILD)/tests/%.o: tests/unit/%.c tests/unit/harness.h tests/unit/steprun.h include/mcb/*.h
	@mkdir -p $(@D)
	$(CC) $(MCB_CFLAGS) -Itests/unit -c -o $@ $<

$(BASE_TESTS:%=$(BUILD)/tests/%): $(BUILD)/tests/%: $(BUILD)/tests/%.o $(HARNESS) $(BASE_OBJ)
	$(CC) -o $@ $^ $(MCB_LIBS)
$(CACHE_TESTS:%=$(BUILD)/tests/%): $(BUILD)/tests/%: $(BUILD)/tests/%.o $(HARNESS) $(BASE_OBJ) $(CACHE_OBJ)
	$(CC) -o $@ $^ $(MCB_LIBS)
$(FMT_TESTS:%=$(BUILD)/tests/%): $(BUILD)/tests/%: $(BUILD)/tests/%.o $(HARNESS) $(BASE_OBJ) $(FMT_OBJ)
	$(CC) -o $@ $^ $(MCB_LIBS)
$(QUANT_TESTS:%=$(BUILD)/tests/%): $(BUILD)/tests/%: $(BUILD)/tests/%.o $(HARNESS) $(BASE_OBJ) $(FMT_OBJ) $(QUANT_OBJ)
	$(CC) -o $@ $^ $(MCB_LIBS)
$(ENGINE_TESTS:%=$(BUILD)/tests/%): $(BUILD)/tests/%: $(BUILD)/tests/%.o $(HARNESS) $(BASE_OBJ) $(FMT_OBJ) $(QUANT_OBJ) $(ENGINE_OBJ)
	$(CC) -o $@ $^ $(MCB_LIBS)
$(TECH_TESTS:%=$(BUILD)/tests/%): $(BUILD)/tests/%: $(BUILD)/tests/%.o $(HARNESS) $(BASE_OBJ) $(FMT_OBJ) $(QUANT_OBJ) $(ENGINE_OBJ) $(TECH_OBJ)
	$(CC) -o $@ $^ $(MCB_LIBS)
$(STATS_TESTS:%=$(BUILD)/tests/%): $(BUILD)/tests/%: $(BUILD)/tests/%.o $(HARNESS) $(BASE_OBJ) $(STATS_OBJ)
	$(CC) -o $@ $^ $(MCB_LIBS)
$(TOK_TESTS:%=$(BUILD)/tests/%): $(BUILD)/tests/%: $(BUILD)/tests/%.o $(HARNESS) $(BASE_OBJ) $(FMT_OBJ) $(TOK_OBJ)
	$(CC) -o $@ $^ $(MCB_LIBS)
$(REPORT_TESTS:%=$(BUILD)/tests/%): $(BUILD)/tests/%: $(BUILD)/tests/%.o $(HARNESS) $(BASE_OBJ) $(REPORT_OBJ)
	$(CC) -o $@ $^ $(MCB_LIBS)
$(FRONT_TESTS:%=$(BUILD)/tests/%): $(BUILD)/tests/%: $(BUILD)/tests/%.o $(HARNESS) $(BASE_OBJ) $(FRONT_OBJ)
	$(CC) -o $@ $^ $(MCB_LIBS)
$(CORE_TESTS:%=$(BUILD)/tests/%): $(BUILD)/tests/%: $(BUILD)/tests/%.o $(HARNESS) $(STEPRUN) $(ALL_OBJ)
	$(CC) -o $@ $^ $(MCB_LIBS)

$(HARNESS): tests/unit/harness.c tests/unit/harness.h
	@mkdir -p $(@D)
	$(CC) $(MCB_CFLAGS) -Itests/unit -c -o $@ tests/unit/harness.c

unit: $(UNIT_BINS)
	@fail=0; for t in $(UNIT_BINS); do \
	  MCB_SHARED=$(SHARED) MCB_TESTDATA=tests/data $$t || fail=1; \
	done; exit $$fail

golden: $(BUILD)/mcbuild
	MCB_SHARED=$(SHARED) sh tests/cli/run.sh $(BUILD)/mcbuild

# Drivers the compatibility tests run next to llama.cpp.
COMPAT_BINS = $(BUILD)/tests/tokenize_driver $(BUILD)/tests/engine_logits $(BUILD)/tests/test_export \
	$(BUILD)/tests/ggml_export $(BUILD)/tests/ggml_oracle

$(BUILD)/tests/ggml_export $(BUILD)/tests/ggml_oracle: $(BUILD)/tests/%: tests/compat/%.c include/mcb/*.h $(BASE_OBJ) $(FMT_OBJ) $(ENGINE_OBJ)
	@mkdir -p $(@D)
	$(CC) $(MCB_CFLAGS) -o $@ $< $(BASE_OBJ) $(FMT_OBJ) $(ENGINE_OBJ) $(MCB_LIBS)

$(BUILD)/tests/engine_logits: tests/compat/engine_logits.c include/mcb/*.h $(BASE_OBJ) $(FMT_OBJ) $(ENGINE_OBJ)
	@mkdir -p $(@D)
	$(CC) $(MCB_CFLAGS) -o $@ tests/compat/engine_logits.c $(BASE_OBJ) $(FMT_OBJ) $(ENGINE_OBJ) $(MCB_LIBS)

$(BUILD)/tests/tokenize_driver: tests/compat/tokenize_driver.c include/mcb/*.h $(BASE_OBJ) $(FMT_OBJ) $(TOK_OBJ)
	@mkdir -p $(@D)
	$(CC) $(MCB_CFLAGS) -o $@ tests/compat/tokenize_driver.c $(BASE_OBJ) $(FMT_OBJ) $(TOK_OBJ) $(MCB_LIBS)

compat: $(BUILD)/mcbuild $(COMPAT_BINS)
	MCB_SHARED=$(SHARED) sh tests/compat/run.sh $(BUILD)/mcbuild

# The report renderers from the command line (tests/report/run.sh drives them).
$(BUILD)/report/render: tests/report/render.c include/mcb/*.h $(BASE_OBJ) $(REPORT_OBJ)
	@mkdir -p $(@D)
	$(CC) $(MCB_CFLAGS) -o $@ tests/report/render.c $(BASE_OBJ) $(REPORT_OBJ) $(MCB_LIBS)

# Rendered reports in headless Chromium (no console errors, screenshots in
# build/report/) and every example report.json against the schema.
report-test: $(BUILD)/report/render
	sh tests/report/run.sh $(BUILD)/report/render

test: all unit golden compat report-test

# The same tests (without the third-party runtimes) under ASan and UBSan.
check:
	$(MAKE) BUILD=build/san OPT=-O1 \
		SAN='-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined' \
		unit golden

BENCH_BINS = $(BUILD)/bench/bench_hash $(BUILD)/bench/bench_quant $(BUILD)/bench/bench_engine \
	$(BUILD)/bench/bench_gptq $(BUILD)/bench/bench_hessian
TECH_LINK = $(BASE_OBJ) $(FMT_OBJ) $(ENGINE_OBJ) $(TECH_OBJ)

$(BUILD)/bench/bench_gptq $(BUILD)/bench/bench_hessian: $(BUILD)/bench/%: bench/%.c include/mcb/*.h $(TECH_LINK)
	@mkdir -p $(@D)
	$(CC) $(MCB_CFLAGS) -o $@ $< $(TECH_LINK) $(MCB_LIBS)

$(BUILD)/bench/bench_engine: bench/bench_engine.c include/mcb/*.h $(BASE_OBJ) $(FMT_OBJ) $(ENGINE_OBJ)
	@mkdir -p $(@D)
	$(CC) $(MCB_CFLAGS) -o $@ bench/bench_engine.c $(BASE_OBJ) $(FMT_OBJ) $(ENGINE_OBJ) $(MCB_LIBS)

$(BUILD)/bench/bench_hash: bench/bench_hash.c $(BASE_OBJ)
	@mkdir -p $(@D)
	$(CC) $(MCB_CFLAGS) -o $@ bench/bench_hash.c $(BASE_OBJ) $(MCB_LIBS)

$(BUILD)/bench/bench_quant: bench/bench_quant.c include/mcb/quant.h $(BASE_OBJ) $(FMT_OBJ)
	@mkdir -p $(@D)
	$(CC) $(MCB_CFLAGS) -o $@ bench/bench_quant.c $(BASE_OBJ) $(FMT_OBJ) $(MCB_LIBS)

bench: $(BUILD)/mcbuild $(BENCH_BINS)
	MCB_SHARED=$(SHARED) sh bench/run.sh $(BUILD)

DEB_PKGS = build-essential pkg-config libyaml-dev liblua5.4-dev libzstd-dev zstd \
	libopenblas-dev libprotobuf-c-dev protobuf-c-compiler libonnx-dev libssl-dev openssl \
	libcurl4-openssl-dev libjansson-dev zlib1g-dev python3 python3-numpy python3-jsonschema \
	chromium dataset-fashion-mnist

deps:
	apt-get update
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $(DEB_PKGS)
	command -v npm >/dev/null 2>&1 || DEBIAN_FRONTEND=noninteractive apt-get install -y nodejs npm
	cd tests/compat && npm install --omit=optional --no-audit --no-fund

install: mcbuild
	mkdir -p $(DESTDIR)$(PREFIX)/bin
	cp mcbuild $(DESTDIR)$(PREFIX)/bin/mcbuild
	chmod 755 $(DESTDIR)$(PREFIX)/bin/mcbuild

clean:
	rm -rf build mcbuild

.PHONY: all test unit golden compat report-test check bench deps install clean
