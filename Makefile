# qlab build. `make run` and `make test` do all the set-up on a fresh Debian 12.
CC       ?= gcc
PKGS     := lua5.4 libcjson openblas
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
WARN     := -Wall -Wextra -Wshadow -Wmissing-prototypes -Wstrict-prototypes -Wno-unused-parameter
OPT      ?= -O2 -g
CFLAGS   += -std=gnu11 $(OPT) -ffp-contract=off $(WARN) -fopenmp -Iinclude -Isrc $(PKG_CFLAGS) -MMD -MP
LDLIBS   += $(PKG_LIBS) -ldnnl -lprotobuf-c -lncursesw -lz -lm -fopenmp
BUILD    ?= build
# ONNX: protobuf-c code generated from Debian's onnx.proto (libonnx-dev) into the build tree.
ONNX_PROTO ?= /usr/include/onnx/onnx.proto
GEN      := $(BUILD)/gen
CFLAGS   += -I$(GEN)
ONNX_TESTDATA ?= /usr/share/libonnx-testdata/data/node

ENGINE_SRC := $(wildcard src/core/*.c src/ops/*.c src/qops/*.c src/graph/*.c src/quant/*.c \
                         src/train/*.c src/io/*.c src/bench/*.c)
FRONT_SRC  := $(wildcard src/lua/*.c src/tui/*.c) src/main.c
TEST_SRC   := $(wildcard tests/c/*.c)
ENGINE_OBJ := $(ENGINE_SRC:%.c=$(BUILD)/%.o) $(GEN)/onnx.pb-c.o
FRONT_OBJ  := $(FRONT_SRC:%.c=$(BUILD)/%.o)
TEST_OBJ   := $(TEST_SRC:%.c=$(BUILD)/%.o)

.PHONY: all run test asan asan-build clean setup bench bench-qgemm fuzz fuzz-setup fuzz-smoke onnx-conformance ort
all: qlab

qlab: $(FRONT_OBJ) $(BUILD)/libqlab.a
	$(CC) $(CFLAGS) -o $@ $(FRONT_OBJ) $(BUILD)/libqlab.a $(LDLIBS)

$(BUILD)/libqlab.a: $(ENGINE_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/test_c: $(TEST_OBJ) $(BUILD)/libqlab.a
	$(CC) $(CFLAGS) -o $@ $(TEST_OBJ) $(BUILD)/libqlab.a $(LDLIBS)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(GEN)/onnx.pb-c.c $(GEN)/onnx.pb-c.h: $(ONNX_PROTO)
	@mkdir -p $(GEN)
	protoc-c --c_out=$(GEN) -I$(dir $(ONNX_PROTO)) $(ONNX_PROTO)

$(GEN)/onnx.pb-c.o: $(GEN)/onnx.pb-c.c
	$(CC) $(filter-out -Wmissing-prototypes,$(CFLAGS)) -c $< -o $@

# Sources that include the generated header wait for it.
$(filter $(BUILD)/src/io/onnx_%.o,$(ENGINE_OBJ)): | $(GEN)/onnx.pb-c.h

setup:
	@scripts/setup.sh

# Opens the workbench on the shipped ResNet-18.
run: setup
	@$(MAKE) --no-print-directory qlab
	./qlab

# The suite twice: the normal build, then under AddressSanitizer + UBSan
# (build-asan/); the last line sums both. QLAB_TEST_ASAN=0 skips the second.
test: setup
	@$(MAKE) --no-print-directory qlab $(BUILD)/test_c $(FUZZ_REPLAY)
	@if [ "$${QLAB_TEST_ASAN:-1}" = 0 ]; then tests/run.sh $(BUILD)/test_c ./qlab; \
	 else $(MAKE) --no-print-directory asan-build && tests/run.sh $(BUILD)/test_c ./qlab build-asan/test_c ./qlab-asan; fi

ASAN_OPT := -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
asan-build:
	@$(MAKE) --no-print-directory BUILD=build-asan OPT="$(ASAN_OPT)" build-asan/test_c qlab-asan \
	   $(FUZZERS:%=build-asan/fuzz_replay_%)

# The whole suite under AddressSanitizer + UBSan alone.
asan: setup asan-build
	@tests/run.sh build-asan/test_c ./qlab-asan

qlab-asan: $(FRONT_OBJ) $(BUILD)/libqlab.a
	$(CC) $(CFLAGS) -o $@ $(FRONT_OBJ) $(BUILD)/libqlab.a $(LDLIBS)

# INT8 GEMM vs sgemm on ResNet-18's shapes (a benchmark, not a test).
$(BUILD)/bench_qgemm: $(BUILD)/scripts/bench_qgemm.o $(BUILD)/libqlab.a
	$(CC) $(CFLAGS) -o $@ $< $(BUILD)/libqlab.a $(LDLIBS)

bench-qgemm: $(BUILD)/bench_qgemm
	$(BUILD)/bench_qgemm

# ---- fuzzing: libFuzzer harnesses (tests/fuzz/) for every reader ----------------
# `make fuzz` runs each for FUZZ_S seconds (clang, ASan + UBSan), reading the
# committed seeds in tests/fuzz/corpus/<reader> and writing what it finds to
# build-fuzz/corpus/<reader>; a crash leaves crash-* in build-fuzz/ (commit it
# under tests/fuzz/regress/<reader>/ once fixed). `make test` replays seeds and
# regressions through the same harnesses built with $(CC) (tests/sh/test_fuzz_replay.sh).
FUZZERS     := qlm graph_json idx cifar onnx
FUZZ_S      ?= 60
FUZZ_OPT    := -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -Wno-pass-failed
FUZZ_COMMON := tests/fuzz/fuzz_file.c
FUZZ_REPLAY := $(FUZZERS:%=$(BUILD)/fuzz_replay_%)

$(BUILD)/fuzz_replay_%: tests/fuzz/fuzz_%.c tests/fuzz/driver.c $(FUZZ_COMMON) tests/fuzz/fuzz.h $(BUILD)/libqlab.a
	$(CC) $(CFLAGS) -o $@ $(filter %.c,$^) $(BUILD)/libqlab.a $(LDLIBS)

build-fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_COMMON) tests/fuzz/fuzz.h
	@$(MAKE) --no-print-directory CC=clang BUILD=build-fuzz OPT="$(FUZZ_OPT) -fsanitize=fuzzer-no-link" build-fuzz/libqlab.a
	clang -std=gnu11 $(FUZZ_OPT) -fsanitize=fuzzer -fopenmp -Iinclude -Isrc $(PKG_CFLAGS) -o $@ $(filter %.c,$^) \
	    build-fuzz/libqlab.a $(LDLIBS)

fuzz-setup:
	@scripts/setup.sh --fuzz

fuzz: fuzz-setup $(FUZZERS:%=build-fuzz/fuzz_%)
	@for f in $(FUZZERS); do \
	    mkdir -p build-fuzz/corpus/$$f; \
	    echo "== fuzz $$f for $(FUZZ_S) s"; \
	    ( cd build-fuzz && ASAN_OPTIONS=detect_leaks=1 ./fuzz_$$f -max_total_time=$(FUZZ_S) -print_final_stats=1 \
	        -dict=../tests/fuzz/dict/$$f.dict -rss_limit_mb=2048 corpus/$$f ../tests/fuzz/corpus/$$f 2>&1 ) | \
	      grep -E "^stat::number_of_executed_units|^stat::peak_rss|ERROR|SUMMARY|^artifact|Done " || exit 1; \
	done

# A few seconds per reader, for CI.
fuzz-smoke:
	@$(MAKE) --no-print-directory fuzz FUZZ_S=5

# ONNX's own backend node tests (libonnx-testdata): pass / fail / unsupported per test.
$(BUILD)/onnx_conformance: $(BUILD)/scripts/onnx_conformance.o $(BUILD)/libqlab.a
	$(CC) $(CFLAGS) -o $@ $< $(BUILD)/libqlab.a $(LDLIBS)

onnx-conformance: $(BUILD)/onnx_conformance
	$(BUILD)/onnx_conformance $(ONNX_TESTDATA)

# ONNX Runtime (npm's onnxruntime-node) under .ort/, for scripts/ort_compare.
ort:
	@scripts/setup.sh --ort

clean:
	rm -rf build build-asan build-fuzz qlab qlab-asan

-include $(ENGINE_OBJ:.o=.d) $(FRONT_OBJ:.o=.d) $(TEST_OBJ:.o=.d)
