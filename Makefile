# tk - Token image retrieval as composable Unix tools.
#
#   make                 CPU build of every tool into bin/ (no CUDA needed)
#   make CUDA=1          adds the CUDA kernels when nvcc is found
#   make test            builds and runs every test; ends "N passed, N failed"
#   make test SANITIZE=1 the same under AddressSanitizer + UBSan
#   make test-emu        the GPU tests on the CPU, through tests/emu's
#                        emulator of CUDA (make test runs them too;
#                        make test SANITIZE=1 runs some under ASan)
#   make fuzz            libFuzzer targets (clang) into build/fuzz/
#   make install PREFIX=/usr/local

PREFIX ?= /usr/local
comma := ,
ifeq ($(origin CC),default)
  CC := gcc
endif
PY ?= /usr/bin/python3

ifeq ($(SANITIZE)$(EMU),11)
  VARIANT := emu-asan
else ifeq ($(SANITIZE)$(EMU),thread1)
  VARIANT := emu-tsan
else ifeq ($(SANITIZE),thread)
  VARIANT := tsan
else ifeq ($(SANITIZE),1)
  VARIANT := asan
else ifeq ($(EMU),1)
  VARIANT := emu
else ifeq ($(CUDA),1)
  VARIANT := cuda
else
  VARIANT := cpu
endif
BUILD := build/$(VARIANT)
# Sanitized and emulated programs stay out of bin/ so that a test run
# never leaves slow binaries behind for users.
ifneq ($(filter asan tsan emu emu-asan emu-tsan,$(VARIANT)),)
  BINDIR := $(BUILD)/bin
else
  BINDIR := bin
endif

PKGS := openblas libjpeg libpng libarchive libcjson
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
ifeq ($(PKG_LIBS),)
  PKG_LIBS := -lopenblas -ljpeg -lpng -larchive -lcjson
endif

CFLAGS ?= -O2 -g
WARN := -Wall -Wextra -Werror
ALL_CFLAGS := -std=gnu11 $(WARN) -fopenmp -I. $(PKG_CFLAGS) $(CFLAGS) -MMD -MP
LDLIBS := $(PKG_LIBS) -fopenmp -lm -lpthread
ifneq ($(filter asan emu-asan,$(VARIANT)),)
  SAN := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
  ALL_CFLAGS += $(SAN)
  LDLIBS += $(SAN)
endif
ifneq ($(filter tsan emu-tsan,$(VARIANT)),)
  SAN := -fsanitize=thread -fno-omit-frame-pointer
  ALL_CFLAGS += $(SAN)
  LDLIBS += $(SAN)
endif

# ---- CUDA: real probes, nothing assumed ----
CUDA_HOME ?= /usr/local/cuda
ifeq ($(VARIANT),cuda)
  NVCC := $(shell command -v nvcc 2>/dev/null || { test -x $(CUDA_HOME)/bin/nvcc && echo $(CUDA_HOME)/bin/nvcc; })
  ifeq ($(NVCC),)
    $(error CUDA=1 but no nvcc on PATH or in CUDA_HOME=$(CUDA_HOME))
  endif
  CUDA_ROOT := $(patsubst %/bin/nvcc,%,$(NVCC))
  NVCC_VERSION := $(shell $(NVCC) --version | sed -n 's/.*release \([0-9.]*\).*/\1/p')
  CUDNN_H := $(firstword $(wildcard $(CUDA_ROOT)/include/cudnn_version.h $(if $(CUDNN_HOME),$(CUDNN_HOME)/include/cudnn_version.h) /usr/include/cudnn_version.h /usr/include/*/cudnn_version.h))
  NCCL_H := $(firstword $(wildcard $(CUDA_ROOT)/include/nccl.h $(if $(NCCL_HOME),$(NCCL_HOME)/include/nccl.h) /usr/include/nccl.h))
  CUDNN_VERSION := $(shell test -n "$(CUDNN_H)" && sed -n 's/^\#define CUDNN_\(MAJOR\|MINOR\|PATCHLEVEL\) *\([0-9]*\).*/\2/p' $(CUDNN_H) | paste -sd.)
  NCCL_VERSION := $(shell test -n "$(NCCL_H)" && sed -n 's/^\#define NCCL_\(MAJOR\|MINOR\|PATCH\) *\([0-9]*\).*/\2/p' $(NCCL_H) | paste -sd.)
  ifeq ($(CUDNN_H),)
    $(error CUDA=1 but cudnn_version.h not found (set CUDNN_HOME))
  endif
  ifeq ($(NCCL_H),)
    $(error CUDA=1 but nccl.h not found (set NCCL_HOME))
  endif
  $(info tk: nvcc $(NVCC) (CUDA $(NVCC_VERSION)), cuDNN $(CUDNN_VERSION) ($(CUDNN_H)), NCCL $(NCCL_VERSION) ($(NCCL_H)))
  CUDA_INC := -I$(CUDA_ROOT)/include $(addprefix -I,$(sort $(dir $(CUDNN_H) $(NCCL_H))))
  CUDA_LIBDIRS := $(sort $(CUDA_ROOT)/lib64 $(if $(CUDNN_HOME),$(wildcard $(CUDNN_HOME)/lib)) $(if $(NCCL_HOME),$(wildcard $(NCCL_HOME)/lib)))
  ALL_CFLAGS += -DTK_CUDA $(CUDA_INC)
  CUDA_ARCHS ?= 80 90
  NVFLAGS := -O3 -std=c++17 -I. $(CUDA_INC) -DTK_CUDA -Xcompiler -Wall,-Wextra,-Werror \
             $(foreach a,$(CUDA_ARCHS),-gencode arch=compute_$(a),code=sm_$(a)) \
             -gencode arch=compute_90,code=compute_90 -MMD -MP
  LDLIBS += $(addprefix -L,$(CUDA_LIBDIRS)) $(addprefix -Wl$(comma)-rpath$(comma),$(CUDA_LIBDIRS)) \
            -lcudnn -lcublasLt -lcublas -lnccl -lcudart -lstdc++
  CUDA_SRC := $(wildcard kernels/cuda/*.cu)
endif
# ---- EMU=1: the CUDA code compiled by g++ against tests/emu's CPU
# emulator of the CUDA runtime, cuBLAS, cuDNN, CUB and NCCL, so that the
# GPU tests check kernels/cuda/ on a machine without a GPU (make test-emu).
ifneq ($(filter emu emu-asan emu-tsan,$(VARIANT)),)
  ALL_CFLAGS += -DTK_CUDA
  EMU_CXXFLAGS := -std=c++17 -O2 -g $(WARN) -I. -Itests/emu/include $(PKG_CFLAGS) \
                  -DTK_CUDA -DTK_EMU -U_FORTIFY_SOURCE -MMD -MP $(SAN)
  LDLIBS += -lstdc++
  CUDA_SRC := $(wildcard kernels/cuda/*.cu)
  EMU_SRC := $(filter-out tests/emu/test_%,$(wildcard tests/emu/*.cc))
endif
COMMON_SRC := $(wildcard common/*.c)
KERNEL_SRC := $(wildcard kernels/*.c kernels/cpu/*.c)
TOOL_SRC := $(wildcard tools/tk-*.c)
TOOLS := $(patsubst tools/%.c,$(BINDIR)/%,$(TOOL_SRC))
SCRIPTS := $(wildcard tools/tk-*.sh)
LIB_OBJ := $(patsubst %.c,$(BUILD)/%.o,$(COMMON_SRC) $(KERNEL_SRC)) \
           $(patsubst %.cu,$(BUILD)/%.o,$(CUDA_SRC)) $(patsubst %.cc,$(BUILD)/%.o,$(EMU_SRC))
LIB := $(BUILD)/libtk.a
UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRC))
# The fuzz targets with tests/fuzz/replay.c's main instead of libFuzzer:
# tests/tools/fuzz-corpus.test runs the corpora through them.
REPLAY := $(patsubst tests/fuzz/%.c,$(BUILD)/tests/fuzz/%,$(wildcard tests/fuzz/fuzz_*.c))
MAN := $(wildcard man/man1/*.1 man/man5/*.5)
# GPU tests and benchmarks (tests/gpu/*.c): CUDA builds only.
GPU_SRC := $(if $(CUDA_SRC),$(wildcard tests/gpu/*.c))
GPU_BIN := $(patsubst tests/gpu/%.c,$(BUILD)/tests/gpu/%,$(GPU_SRC))

# Keep objects that are only intermediates of a link.
.SECONDARY:

.PHONY: all test test-cuda test-emu emu-build emu-asan-build emu-tsan-build gpu-tests fuzz install clean demo bench
all: $(TOOLS) $(patsubst tools/%.sh,$(BINDIR)/%,$(SCRIPTS))

# bin/ holds whichever of the CPU and CUDA builds was made last: relink
# when that changes.
$(shell mkdir -p $(BUILD) && { test "`cat $(BINDIR)/.variant 2>/dev/null`" = "$(VARIANT)" || { mkdir -p $(BINDIR); echo $(VARIANT) > $(BINDIR)/.variant; }; })

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

ifneq ($(filter emu emu-asan emu-tsan,$(VARIANT)),)
$(BUILD)/%.o: %.cu tests/emu/launch.sed
	@mkdir -p $(dir $@)
	{ echo '#line 1 "$<"'; sed -E -f tests/emu/launch.sed $<; } >$(BUILD)/$*.cc
	$(CXX) $(EMU_CXXFLAGS) -c -o $@ $(BUILD)/$*.cc

$(BUILD)/%.o: %.cc
	@mkdir -p $(dir $@)
	$(CXX) $(EMU_CXXFLAGS) -c -o $@ $<
else
$(BUILD)/%.o: %.cu
	@mkdir -p $(dir $@)
	$(NVCC) $(NVFLAGS) -c -o $@ $<
endif

$(LIB): $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BINDIR)/%: $(BUILD)/tools/%.o $(LIB) $(BINDIR)/.variant
	@mkdir -p $(dir $@)
	$(CC) -fopenmp -o $@ $< $(LIB) $(LDLIBS)

$(BINDIR)/%: tools/%.sh
	@mkdir -p $(dir $@)
	cp $< $@ && chmod +x $@

$(BUILD)/tests/%: $(BUILD)/tests/unit/%.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) -fopenmp -o $@ $< $(LIB) $(LDLIBS)

$(BUILD)/tests/fuzz/%: $(BUILD)/tests/fuzz/%.o $(BUILD)/tests/fuzz/replay.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) -fopenmp -o $@ $^ $(LDLIBS)

$(BUILD)/tests/gpu/%: $(BUILD)/tests/gpu/%.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) -fopenmp -o $@ $< $(LIB) $(LDLIBS)

# The emulator's own checks: its cuBLAS and cuDNN (tests/emu/libs.test),
# its streams (streams.test).
ifneq ($(filter emu emu-asan emu-tsan,$(VARIANT)),)
GPU_BIN += $(patsubst tests/emu/%.cc,$(BUILD)/tests/emu/%,$(wildcard tests/emu/test_*.cc))
$(BUILD)/tests/emu/test_%: $(BUILD)/tests/emu/test_%.o $(LIB)
	@mkdir -p $(dir $@)
	$(CXX) -fopenmp -o $@ $< $(LIB) $(LDLIBS)
endif

gpu-tests: $(GPU_BIN)

# The CPU build's tests include the GPU tests on the CUDA emulator
# (build/emu, named emu-gpu-*); the sanitized build's, test_cuda on the
# emulator under ASan and UBSan (build/emu-asan, tests/emu/emu-asan); a
# CUDA build's test-cuda runs them on the GPU.
ifeq ($(VARIANT),cpu)
  EMU_BUILD := emu-build
  EMU_ENV := TK_EMU=$(abspath build/emu)
endif
ifeq ($(VARIANT),asan)
  EMU_BUILD := emu-asan-build
  EMU_ENV := TK_EMU_ASAN=$(abspath build/emu-asan)
endif
# make test SANITIZE=thread: every test, the emulated GPU ones included
# (its streams are threads), under ThreadSanitizer.
ifeq ($(VARIANT),tsan)
  EMU_BUILD := emu-tsan-build
  EMU_ENV := TK_EMU=$(abspath build/emu-tsan)
endif
test: all $(UNIT) $(REPLAY) $(EMU_BUILD)
	@TK_BIN=$(abspath $(BINDIR)) TK_UNIT=$(abspath $(BUILD)/tests) $(EMU_ENV) \
	 TK_VARIANT=$(VARIANT) PY=$(PY) tests/run.sh $(TESTS)

emu-build:
	@$(MAKE) --no-print-directory EMU=1 all gpu-tests

emu-asan-build:
	@$(MAKE) --no-print-directory EMU=1 SANITIZE=1 all gpu-tests

emu-tsan-build:
	@$(MAKE) --no-print-directory EMU=1 SANITIZE=thread all gpu-tests

# GPU_TESTS: which (default all)
GPU_TESTS ?= $(wildcard tests/gpu/*.test)
test-cuda:
	$(MAKE) CUDA=1 all gpu-tests
	@TK_BIN=$(abspath bin) TK_GPU=$(abspath build/cuda/tests/gpu) TK_VARIANT=cuda \
	 PY=$(PY) tests/run.sh $(GPU_TESTS)

# The GPU tests alone, on the CUDA emulator.
test-emu: emu-build
	@TK_EMU=$(abspath build/emu) PY=$(PY) \
	 tests/run.sh $(patsubst %.test,emu-%,$(notdir $(wildcard tests/gpu/*.test tests/emu/*.test)))

# ---- fuzzing: clang's libFuzzer with ASan/UBSan ----
FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ := $(patsubst tests/fuzz/%.c,build/fuzz/%,$(FUZZ_SRC))
FUZZ_CFLAGS := -std=gnu11 -g -O1 -I. $(PKG_CFLAGS) -fopenmp -Wno-pass-failed -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
FUZZ_LIBSRC := $(filter-out common/%_main.c,$(COMMON_SRC)) $(KERNEL_SRC)
fuzz: $(FUZZ)
build/fuzz/%: tests/fuzz/%.c $(FUZZ_LIBSRC) $(wildcard common/*.h kernels/*.h kernels/cpu/*.h tests/fuzz/*.h)
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -o $@ $< $(FUZZ_LIBSRC) $(PKG_LIBS) -lm -lpthread

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man1 \
	    $(DESTDIR)$(PREFIX)/share/man/man5 $(DESTDIR)$(PREFIX)/share/tk/pipelines
	install -m 755 $(TOOLS) $(patsubst tools/%.sh,$(BINDIR)/%,$(SCRIPTS)) $(DESTDIR)$(PREFIX)/bin
	install -m 644 $(wildcard man/man1/*.1) $(DESTDIR)$(PREFIX)/share/man/man1
	install -m 644 $(wildcard man/man5/*.5) $(DESTDIR)$(PREFIX)/share/man/man5
	install -m 644 $(wildcard pipelines/*) $(DESTDIR)$(PREFIX)/share/tk/pipelines

demo: all
	@$(MAKE) --no-print-directory -f pipelines/demo.mk

clean:
	rm -rf build $(filter-out bin/README,$(wildcard bin/tk-*)) bin/.variant

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
