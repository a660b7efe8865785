# garlic — plain GNU Makefile.
#   make              build ./garlic (and the test binaries' library)
#   make test         unit, fidelity and CLI tests, then a short fuzz run
#   make test-asan    the same suite built with ASan + UBSan
#   make fuzz         run every libFuzzer target (FUZZ_TIME seconds each, default 600)
#   make fuzz-smoke   a short run of every fuzz target (part of make test)
#   make bench        benchmarks (reported, never asserted)
#   make unicode-tables / unicode-check   regenerate / verify src/tokenizer/unicode_tables.c
#   make format / format-check / tidy
#   make cuda-check   compile the CUDA backend, its tests and bench into build/cuda (needs nvcc)
#   make test-cuda    cuda-check, then run the CUDA tests (needs a GPU; see docs/cuda.md)

CC        ?= cc
CLANG     ?= clang-14
BUILD     ?= build
OPT       ?= -O2
WERROR    ?= -Werror
SHARED    ?= ../shared

WARN      := -Wall -Wextra -Wshadow -Wvla $(WERROR)
CPPFLAGS  += -Isrc -D_GNU_SOURCE
SAN       ?=
ALL_CFLAGS = -std=c17 $(OPT) -g $(WARN) -fno-strict-aliasing $(SAN) $(CFLAGS)
LDLIBS    += -lcjson -lpcre2-8 -lcurl -lcrypto -lm -lpthread
TEST_LIBS := -lcmocka

# Open MPI for tensor parallelism (src/dist/): found through pkg-config (ompi-c) or mpicc;
# only dist.c is compiled with its flags. Without it (or with MPI=0) dist.c builds its
# one-process fallback. (Switching MPI on or off needs `make clean`.)
MPI ?= $(shell (pkg-config --exists ompi-c || command -v mpicc) >/dev/null 2>&1 && echo 1 || echo 0)
ifeq ($(MPI),1)
MPI_CFLAGS := -DGARLIC_MPI $(shell pkg-config --cflags ompi-c 2>/dev/null || mpicc --showme:compile)
LDLIBS     += $(shell pkg-config --libs ompi-c 2>/dev/null || mpicc --showme:link)
endif

# Per-ISA flags: a file named *_avx2.c or *_avx512.c gets its ISA's flags; nothing else does,
# so the binary runs on any x86-64 and picks the path from cpuid at run time.
# On other architectures these files compile to nothing (they are guarded by __x86_64__).
ifeq ($(shell uname -m),x86_64)
AVX2_FLAGS   := -mavx2 -mfma -mf16c
AVX512_FLAGS := -mavx2 -mfma -mf16c -mavx512f -mavx512bw -mavx512dq -mavx512vl -mavx512vnni -mavx512bf16
endif

LIB_SRC   := $(filter-out src/cli/main.c,$(wildcard src/*/*.c))
CLI_SRC   := src/cli/main.c
# tests/cuda/ and bench/bench_cuda.c need the CUDA backend: only `make GARLIC_CUDA=1` builds them.
TEST_SRC  := $(filter-out tests/cuda/%,$(wildcard tests/*/test_*.c))
TEST_UTIL := tests/util.c

BENCH_SRC := $(filter-out bench/bench_cuda.c,$(wildcard bench/bench_*.c))

# The CUDA backend (src/backend/cuda/): `make GARLIC_CUDA=1 BUILD=build/cuda` compiles its .cu
# files with nvcc for sm_80, sm_86, sm_89 and sm_90 (plus PTX of compute_90, which the driver
# compiles for newer GPUs), its .c file with the C flags, defines GARLIC_CUDA for every C file
# and links cuBLAS and the CUDA runtime. Without it nothing here needs nvcc.
comma       := ,
GARLIC_CUDA ?=
CUDA_HOME   ?= /usr/local/cuda
NVCC        ?= $(CUDA_HOME)/bin/nvcc
CUDA_BUILD  ?= build/cuda
CUDA_ARCHS  ?= -gencode arch=compute_80,code=sm_80 -gencode arch=compute_86,code=sm_86 \
               -gencode arch=compute_89,code=sm_89 -gencode arch=compute_90,code=sm_90 \
               -gencode arch=compute_90,code=compute_90
NVCC_FLAGS  := -O2 -std=c++17 -Isrc $(CUDA_ARCHS) -Werror all-warnings \
               -Xcompiler -Wall,-Wextra,-Wshadow$(if $(WERROR),$(comma)-Werror)
CUDA_OBJ    :=
ifeq ($(GARLIC_CUDA),1)
CPPFLAGS    += -DGARLIC_CUDA -I$(CUDA_HOME)/include
LIB_SRC     += $(wildcard src/backend/cuda/*.c)
CUDA_OBJ    := $(patsubst %.cu,$(BUILD)/%.o,$(wildcard src/backend/cuda/*.cu))
LDLIBS      += -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcublas -lcudart -lstdc++
endif
# The pages of src/web/static/ become a C file of byte arrays (tools/embed_files.sh).
WEB_FILES := $(sort $(notdir $(wildcard src/web/static/*)))
WEB_GEN   := $(BUILD)/gen/web_files.c
LIB_OBJ   := $(LIB_SRC:%.c=$(BUILD)/%.o) $(WEB_GEN:.c=.o) $(CUDA_OBJ)
BENCH_BIN := $(patsubst %.c,$(BUILD)/%,$(BENCH_SRC))
TEST_BIN  := $(patsubst %.c,$(BUILD)/%,$(TEST_SRC))

.PHONY: all test test-asan check-tests fuzz fuzz-smoke bench format format-check tidy clean \
	unicode-tables unicode-check cuda-check test-cuda

# A CUDA build stays in its BUILD folder: ./garlic is the CPU build's.
ifeq ($(GARLIC_CUDA),1)
all: $(BUILD)/garlic
else
all: garlic
endif

garlic: $(BUILD)/garlic
	cp $< $@

$(BUILD)/garlic: $(BUILD)/src/cli/main.o $(BUILD)/libgarlic.a
	$(CC) $(SAN) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/libgarlic.a: $(LIB_OBJ)
	rm -f $@
	ar rcs $@ $^

$(WEB_GEN): $(addprefix src/web/static/,$(WEB_FILES)) tools/embed_files.sh
	@mkdir -p $(dir $@)
	tools/embed_files.sh $@ /static src/web/static $(WEB_FILES)

$(WEB_GEN:.c=.o): $(WEB_GEN)
	$(CC) $(CPPFLAGS) $(ALL_CFLAGS) -c -o $@ $<

$(BUILD)/%_avx2.o: %_avx2.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(ALL_CFLAGS) $(AVX2_FLAGS) -MMD -MP -c -o $@ $<

$(BUILD)/%_avx512.o: %_avx512.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(ALL_CFLAGS) $(AVX512_FLAGS) -MMD -MP -c -o $@ $<

$(BUILD)/src/dist/%.o: src/dist/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(ALL_CFLAGS) $(MPI_CFLAGS) -MMD -MP -c -o $@ $<

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(ALL_CFLAGS) -MMD -MP -c -o $@ $<

$(BUILD)/src/backend/cuda/%.o: src/backend/cuda/%.cu src/backend/cuda/internal.h \
		src/backend/cuda/common.cuh
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCC_FLAGS) -c -o $@ $<

# The CUDA backend, its kernel tests and its benchmark, compiled (not run) in $(CUDA_BUILD).
cuda-check:
	@test -x $(NVCC) || { echo "cuda-check: $(NVCC) not found (set CUDA_HOME)"; exit 1; }
	$(MAKE) --no-print-directory GARLIC_CUDA=1 BUILD=$(CUDA_BUILD) $(CUDA_BUILD)/garlic \
	  $(CUDA_BUILD)/tests/cuda/test_cuda_kernels $(CUDA_BUILD)/bench/bench_cuda

# Runs them on the GPU: every kernel against the CPU, then the forward pass's logits of the
# shared and synthesized models against the CPU's (tests/cuda/forward.sh; the CUDA build runs
# both, with --device cpu and --device cuda).
test-cuda: cuda-check
	$(CUDA_BUILD)/tests/cuda/test_cuda_kernels
	GARLIC=$(CUDA_BUILD)/garlic SHARED=$(SHARED) tests/cuda/forward.sh

$(BUILD)/tests/%: tests/%.c $(BUILD)/tests/util.o $(BUILD)/libgarlic.a
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) -Itests $(ALL_CFLAGS) -o $@ $< $(BUILD)/tests/util.o $(BUILD)/libgarlic.a $(TEST_LIBS) $(LDLIBS)

$(BUILD)/tests/util.o: tests/util.c tests/util.h
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) -Itests $(ALL_CFLAGS) -MMD -MP -c -o $@ $<

# The suite: every test binary (cmocka counts failures and skips), then a short fuzz run.
# tests/run.sh prints one closing line "N passed, N failed, N skipped" and exits non-zero on
# any failure.
test: garlic $(TEST_BIN)
	GARLIC=./garlic BUILD=$(BUILD) SHARED=$(SHARED) tests/run.sh $(TEST_BIN)
	$(MAKE) --no-print-directory unicode-check
	$(MAKE) --no-print-directory fuzz-smoke

check-tests: $(BUILD)/garlic $(TEST_BIN)
	GARLIC=./$(BUILD)/garlic BUILD=$(BUILD) SHARED=$(SHARED) tests/run.sh $(TEST_BIN)

SAN_FLAGS := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
test-asan:
	$(MAKE) --no-print-directory BUILD=build/asan OPT=-O1 SAN="$(SAN_FLAGS)" check-tests

# libFuzzer targets: fuzz/fuzz_<name>.c, linked with the library built by clang with
# coverage instrumentation and ASan+UBSan (in build/fuzz, so normal objects are untouched).
FUZZ_SAN    := -fsanitize=address,undefined -fno-sanitize-recover=all
FUZZ_TIME   ?= 600
FUZZ_SMOKE  ?= 20
FUZZ_TARGETS := $(patsubst fuzz/%.c,build/fuzz/%,$(wildcard fuzz/fuzz_*.c))

fuzz-lib:
	$(MAKE) --no-print-directory BUILD=build/fuzz CC=$(CLANG) OPT=-O1 \
	  SAN="-fsanitize=fuzzer-no-link $(FUZZ_SAN)" build/fuzz/libgarlic.a

build/fuzz/fuzz_%: fuzz/fuzz_%.c fuzz-lib
	$(CLANG) $(CPPFLAGS) -std=c17 -g -O1 $(WARN) -fsanitize=fuzzer $(FUZZ_SAN) -o $@ $< build/fuzz/libgarlic.a $(LDLIBS)

.PHONY: fuzz-lib

fuzz: $(FUZZ_TARGETS)
	tools/fuzz.sh $(SHARED) -max_total_time=$(FUZZ_TIME)

fuzz-smoke: $(FUZZ_TARGETS)
	tools/fuzz.sh $(SHARED) -max_total_time=$(FUZZ_SMOKE)

$(BUILD)/bench/%: bench/%.c $(BUILD)/libgarlic.a
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(ALL_CFLAGS) -o $@ $< $(BUILD)/libgarlic.a $(LDLIBS)

bench: garlic $(BENCH_BIN)
	BUILD=$(BUILD) SHARED=$(SHARED) bench/run.sh

# The Unicode tables WordPiece and NFC normalize with are generated from the Unicode Character
# Database of Debian's unicode-data package (UCD). unicode-tables rewrites them; unicode-check
# (part of make test) writes them afresh and fails when the committed file differs, and says
# it skipped when the data or python3 is not installed.
UCD           ?= /usr/share/unicode
UNICODE_TABLE := src/tokenizer/unicode_tables.c

unicode-tables:
	tools/gen_unicode_tables.py --ucd $(UCD) --output $(UNICODE_TABLE)

unicode-check:
	@if [ ! -f $(UCD)/UnicodeData.txt ] || ! command -v python3 >/dev/null; then \
	  echo "unicode-check: skipped ($(UCD)/UnicodeData.txt or python3 missing;" \
	       "install Debian's unicode-data)"; \
	else \
	  mkdir -p $(BUILD) && \
	  tools/gen_unicode_tables.py --ucd $(UCD) --output $(BUILD)/unicode_tables.c && \
	  if cmp -s $(UNICODE_TABLE) $(BUILD)/unicode_tables.c; then \
	    echo "unicode-check: $(UNICODE_TABLE) matches $(UCD)"; \
	  else \
	    diff -u $(UNICODE_TABLE) $(BUILD)/unicode_tables.c | head -40; \
	    echo "unicode-check: $(UNICODE_TABLE) is stale; run make unicode-tables"; exit 1; \
	  fi; \
	fi

# The C (and tools/ C++) sources clang-format owns (.clang-format); the generated Unicode table is the
# generator's (make unicode-check keeps it).
FORMAT_SRC := $(filter-out src/tokenizer/unicode_tables.c,$(wildcard src/*/*.[ch] src/backend/cuda/*.[ch] src/backend/cuda/*.cu src/backend/cuda/*.cuh tests/*.[ch] tests/*/*.[ch] fuzz/*.c bench/*.c tools/*/*.cpp))

format:
	@clang-format-14 -i $(FORMAT_SRC)

format-check:
	@clang-format-14 --dry-run --Werror $(FORMAT_SRC) && echo "format-check: $(words $(FORMAT_SRC)) files as .clang-format wants them"

tidy:
	clang-tidy-14 $(LIB_SRC) $(CLI_SRC) -- $(CPPFLAGS) -std=c17

clean:
	rm -rf build garlic

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
