# qlab build. `make run` and `make test` do all the set-up on a fresh Debian 12.
CC       ?= gcc
PKGS     := lua5.4 libcjson openblas
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
WARN     := -Wall -Wextra -Wshadow -Wmissing-prototypes -Wstrict-prototypes -Wno-unused-parameter
OPT      ?= -O2 -g
CFLAGS   += -std=gnu11 $(OPT) -ffp-contract=off $(WARN) -fopenmp -Iinclude -Isrc $(PKG_CFLAGS) -MMD -MP
LDLIBS   += $(PKG_LIBS) -lprotobuf-c -lncursesw -lz -lm -fopenmp
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

.PHONY: all run test asan clean setup bench bench-qgemm onnx-conformance ort
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

# Opens the workbench (headless demo until the TUI lands).
run: setup
	@$(MAKE) --no-print-directory qlab
	./qlab

test: setup
	@$(MAKE) --no-print-directory qlab $(BUILD)/test_c
	@tests/run.sh $(BUILD)/test_c ./qlab

# The whole suite under AddressSanitizer + UBSan, in a separate build tree.
asan: setup
	@$(MAKE) --no-print-directory BUILD=build-asan OPT="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" \
	   build-asan/test_c qlab-asan
	@ASAN_OPTIONS=detect_leaks=1 tests/run.sh build-asan/test_c ./qlab-asan

qlab-asan: $(FRONT_OBJ) $(BUILD)/libqlab.a
	$(CC) $(CFLAGS) -o $@ $(FRONT_OBJ) $(BUILD)/libqlab.a $(LDLIBS)

# INT8 GEMM vs sgemm on ResNet-18's shapes (a benchmark, not a test).
$(BUILD)/bench_qgemm: $(BUILD)/scripts/bench_qgemm.o $(BUILD)/libqlab.a
	$(CC) $(CFLAGS) -o $@ $< $(BUILD)/libqlab.a $(LDLIBS)

bench-qgemm: $(BUILD)/bench_qgemm
	$(BUILD)/bench_qgemm

# ONNX's own backend node tests (libonnx-testdata): pass / fail / unsupported per test.
$(BUILD)/onnx_conformance: $(BUILD)/scripts/onnx_conformance.o $(BUILD)/libqlab.a
	$(CC) $(CFLAGS) -o $@ $< $(BUILD)/libqlab.a $(LDLIBS)

onnx-conformance: $(BUILD)/onnx_conformance
	$(BUILD)/onnx_conformance $(ONNX_TESTDATA)

# ONNX Runtime (npm's onnxruntime-node) under .ort/, for scripts/ort_compare.
ort:
	@scripts/setup.sh --ort

clean:
	rm -rf build build-asan qlab qlab-asan

-include $(ENGINE_OBJ:.o=.d) $(FRONT_OBJ:.o=.d) $(TEST_OBJ:.o=.d)
