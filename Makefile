# One Makefile owns the build: it installs what a fresh Debian 12 machine
# lacks, builds gotorch's native library out of tree, and exports the cgo
# flags for the Go tool.
#
#   make test    vet, test, the concurrency test under -race, and a short
#                fuzz of the safetensors parser
#   make demo    the demonstration (see README.md)
#   make bench   benchmarks (a CUDA machine; see docs/BENCHMARKS.md)
#   eval "$(make -s env)"   then plain go build / go test work
#
# LIBTORCH, when set, names a libtorch with include/ and lib/ (PyTorch's own,
# CUDA when lib/libtorch_cuda.so is there); otherwise Debian's libtorch-dev.

SHELL := /bin/bash
GO ?= go
BUILD ?= $(CURDIR)/.build
GOTORCH := github.com/wangkuiyi/gotorch
FUZZTIME ?= 10s
JOBS ?= $(shell nproc 2>/dev/null || echo 2)

CUDA_HOME ?= /usr/local/cuda

ifdef LIBTORCH
TORCH_INC := -isystem $(LIBTORCH)/include -isystem $(LIBTORCH)/include/torch/csrc/api/include
TORCH_LIB := $(LIBTORCH)/lib
TORCH_DEP := $(LIBTORCH)/include/ATen/ATen.h
WITH_CUDA := $(shell test -e $(LIBTORCH)/lib/libtorch_cuda.so && echo 1)
# c10d's process groups: Gloo when this libtorch ships Gloo's headers;
# NCCL (CUDA builds, OSV_NCCL=0 leaves it out) when it ships c10d's NCCL
# header and nccl.h is found (PyTorch's wheels take it from the nvidia-nccl
# package beside torch/).
OSV_NCCL ?= 1
NCCL_H := $(firstword $(wildcard $(NCCL_HOME)/include/nccl.h $(LIBTORCH)/../nvidia/nccl/include/nccl.h \
  $(LIBTORCH)/../nvidia/*/include/nccl.h $(CUDA_HOME)/include/nccl.h /usr/include/nccl.h))
DIST_CXX := $(if $(wildcard $(LIBTORCH)/include/gloo/algorithm.h),-DOSV_DIST_GLOO)
ifeq ($(OSV_NCCL)$(if $(wildcard $(LIBTORCH)/lib/libtorch_cuda.so),1),11)
ifneq ($(and $(NCCL_H),$(wildcard $(LIBTORCH)/include/torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp)),)
DIST_CXX += -DOSV_DIST_NCCL -isystem $(dir $(NCCL_H))
endif
endif
else
TORCH_INC := -isystem /usr/include/torch/csrc/api/include
TORCH_LIB := /usr/lib/$(shell gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)
TORCH_DEP := /usr/include/ATen/ATen.h
# Debian's libtorch has c10d with Gloo; its headers come with libgloo-dev
GLOO_DEP := /usr/include/gloo/algorithm.h
DIST_CXX := -DOSV_DIST_GLOO
endif

ifeq ($(WITH_CUDA),1)
CUDA_CXX := -DWITH_CUDA -DOSV_CUDA -DOSV_CUDA_KERNELS -I$(CUDA_HOME)/include
# The CUDA runtime the bridge's graph and stream calls link to: the one
# beside PyTorch's wheel (nvidia/*/lib), else the toolkit's.
CUDART_DIR := $(patsubst %/,%,$(dir $(firstword $(wildcard $(LIBTORCH)/../nvidia/*/lib/libcudart.so* \
  $(LIBTORCH)/../nvidia/cuda_runtime/lib/libcudart.so* $(CUDA_HOME)/lib64/libcudart.so*))))
CUDART_LD := -L$(CUDART_DIR) -Wl,-rpath,$(CUDART_DIR) -l:$(notdir $(firstword $(wildcard $(CUDART_DIR)/libcudart.so*)))
CUDA_LD := -Wl,--no-as-needed -ltorch_cuda -lc10_cuda -Wl,--as-needed $(if $(CUDART_DIR),$(CUDART_LD))
GOTAGS := -tags cuda
# The bridge's fused kernels (internal/cbridge/kernels.cu), built by nvcc
# for the GPUs of this machine (NVCC_ARCH) into a shared library.
NVCC ?= $(CUDA_HOME)/bin/nvcc
NVCC_ARCH ?= -arch=native
KERNELS := $(BUILD)/kernels/libosvkernels.so
KERNELS_LD := -L$(BUILD)/kernels -Wl,-rpath,$(BUILD)/kernels -losvkernels
endif

CGOTORCH := $(BUILD)/gotorch/libcgotorch.so
CXXFLAGS_ALL := -std=c++17 $(TORCH_INC) $(CUDA_CXX) $(DIST_CXX)
LDFLAGS_ALL := -L$(BUILD)/gotorch -Wl,-rpath,$(BUILD)/gotorch -L$(TORCH_LIB) -Wl,-rpath,$(TORCH_LIB) $(CUDA_LD) $(KERNELS_LD)

export CGO_ENABLED := 1
export CGO_CXXFLAGS := $(CXXFLAGS_ALL)
export CGO_LDFLAGS := $(LDFLAGS_ALL)
export LD_LIBRARY_PATH := $(BUILD)/gotorch:$(TORCH_LIB)$(if $(LD_LIBRARY_PATH),:$(LD_LIBRARY_PATH))

.PHONY: all deps test vet unit race fuzz demo demo-fixture bench env clean

all: deps
	$(GO) build $(GOTAGS) ./...

# What a fresh machine lacks: a C++ compiler and, unless LIBTORCH is given,
# Debian's libtorch, ffmpeg (video data, MP4 output; without it those
# report a clear error, and their tests check that error instead) and
# chromium (examples/serve's browser test, skipped without it).
ifndef LIBTORCH
FFMPEG_BIN := $(shell command -v ffmpeg 2>/dev/null)
ifeq ($(FFMPEG_BIN),)
FFMPEG_BIN := /usr/bin/ffmpeg
$(FFMPEG_BIN):
	$(call apt_install,ffmpeg)
endif
CHROMIUM_BIN := $(shell command -v chromium 2>/dev/null)
ifeq ($(CHROMIUM_BIN),)
CHROMIUM_BIN := /usr/bin/chromium
$(CHROMIUM_BIN):
	$(call apt_install,chromium)
endif
endif

deps: $(CGOTORCH) $(KERNELS) $(GLOO_DEP) | $(FFMPEG_BIN) $(CHROMIUM_BIN)

ifdef KERNELS
$(KERNELS): internal/cbridge/kernels.cu
	@mkdir -p $(dir $@)
	$(NVCC) -O3 -std=c++17 $(NVCC_ARCH) -cudart shared -Xcompiler -fPIC -shared -o $@.tmp $<
	mv $@.tmp $@
endif

ifdef GLOO_DEP
$(GLOO_DEP):
	$(call apt_install,libgloo-dev)
endif

$(TORCH_DEP):
ifdef LIBTORCH
	@echo "LIBTORCH=$(LIBTORCH) has no include/ATen/ATen.h" >&2; exit 1
else
	$(call apt_install,libtorch-dev)
endif

CXX_BIN := $(shell command -v g++ 2>/dev/null)
ifeq ($(CXX_BIN),)
CXX_BIN := /usr/bin/g++
$(CXX_BIN):
	$(call apt_install,g++)
endif

define apt_install
	@echo "installing $(1) through apt" >&2
	$(if $(filter 0,$(shell id -u)),,sudo) env DEBIAN_FRONTEND=noninteractive apt-get update -q
	$(if $(filter 0,$(shell id -u)),,sudo) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $(1)
endef

# gotorch's cgo flags expect libcgotorch.so inside its (read-only) module
# folder; it is built here instead, and CGO_LDFLAGS points the linker at it.
$(CGOTORCH): $(TORCH_DEP) | $(CXX_BIN)
	@mkdir -p $(BUILD)/gotorch/obj
	@src=$$($(GO) mod download -json $(GOTORCH) | sed -n 's/^\s*"Dir": "\(.*\)",*$$/\1/p'); \
	test -n "$$src" || { echo "cannot locate $(GOTORCH) in the module cache" >&2; exit 1; }; \
	echo "building libcgotorch.so from $$src" >&2; \
	for f in $$src/cgotorch/*.cc; do \
	  echo "g++ -c $$f"; \
	  o=$(BUILD)/gotorch/obj/$$(basename $$f .cc).o; \
	  g++ $(CXXFLAGS_ALL) -O2 -fPIC -w -I$$src -c $$f -o $$o & \
	  while [ $$(jobs -r | wc -l) -ge $(JOBS) ]; do sleep 0.2; done; \
	done; \
	fail=0; for j in $$(jobs -p); do wait $$j || fail=1; done; test $$fail = 0
	g++ -shared -o $@.tmp $(BUILD)/gotorch/obj/*.o -L$(TORCH_LIB) -Wl,-rpath,$(TORCH_LIB) $(CUDA_LD) -ltorch -ltorch_cpu -lc10
	mv $@.tmp $@

test: vet unit race fuzz

vet: deps
	$(GO) vet $(GOTAGS) ./...

# The toy's end-to-end tests (examples/toy) take about 8 minutes on two
# cores; go test's default limit of 10 minutes a package leaves too little
# room on a loaded machine.
unit: deps
	$(GO) test $(GOTAGS) -timeout 30m ./...

# Generate from several goroutines at once, under the race detector.
race: deps
	$(GO) test $(GOTAGS) -race -run 'TestGenerateConcurrent' ./osv/

fuzz: deps
	$(GO) test -run=NONE -fuzz=FuzzParseHeader -fuzztime=$(FUZZTIME) ./torch/safetensors/

# The demonstration: the distilled toy student (examples/toy/teacher with
# examples/toy/student-lora) turns a first frame of the toy world into a
# clip with the Time Travel Sampler, written as a GIF.
demo: deps
	$(GO) run $(GOTAGS) ./examples/toy demo -out $(BUILD)/demo.gif

demo-fixture: deps
	$(GO) run $(GOTAGS) ./examples/demo -fixtures testdata/svd-tiny
	$(GO) run $(GOTAGS) ./examples/img2vid -model testdata/svd-tiny/pipeline -image testdata/svd-tiny/io/pipeline_input.png \
		-width 128 -height 64 -frames 8 -steps 10 -fps 4 -out $(BUILD)/demo.gif

bench: deps
	$(GO) run $(GOTAGS) ./examples/bench

# The environment that makes plain go build / go test work.
env:
	@echo 'export CGO_ENABLED=1'
	@echo 'export CGO_CXXFLAGS="$(CXXFLAGS_ALL)"'
	@echo 'export CGO_LDFLAGS="$(LDFLAGS_ALL)"'
	@echo 'export LD_LIBRARY_PATH="$(LD_LIBRARY_PATH)"'

clean:
	rm -rf $(BUILD)
