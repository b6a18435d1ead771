# nvmoe top-level entry points (see README.md).
#   make build   install missing packages, configure, build -> build/nvmoe
#   make run     build, then run the main job (MODEL=/path/to/DeepSeek-V4-Flash, or the demo model)
#   make test    build, then run ctest
BUILD ?= build
MODEL ?=
PROMPT ?= Write a haiku about memory bandwidth.
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
CMAKE_FLAGS ?=

.PHONY: all build deps configure run test clean demo-model

all: build

deps:
	@bash tools/install-deps.sh

configure: deps
	@if [ ! -f $(BUILD)/CMakeCache.txt ]; then \
	  cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS); fi

build: configure
	cmake --build $(BUILD) -j $(JOBS)

demo-model: build
	@bash tools/demo-model.sh $(BUILD)

run: build
	@bash tools/run-main.sh "$(BUILD)" "$(MODEL)" "$(PROMPT)"

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

clean:
	rm -rf $(BUILD)
