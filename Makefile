# Flux: the two commands a newcomer needs are `make demo` and `make test` (README).
SWIFT      ?= swift
# Tests and tools build optimized: debug Swift is 10–100× slower on numeric loops.
RELEASE    := -c release -Xswiftc -enable-testing
BIN        := .build/release
FLUX_VENV  ?= $(HOME)/.cache/flux/venv
THREADS    ?= 2

.PHONY: all deps build test smoke-bench bench bench-video goldens anchors demo clean

all: build

deps:
	@tools/install-deps.sh

build: deps
	$(SWIFT) build $(RELEASE)

test: deps
	$(SWIFT) build $(RELEASE) --build-tests
	$(SWIFT) test $(RELEASE) --skip-build
	@$(MAKE) --no-print-directory smoke-bench

# Benchmarks never rot: one tiny run, its JSON parsed.
smoke-bench:
	@$(BIN)/flux-bench forward --preset configs/models/tiny-test.yaml --frames 4 --size 8 --runs 1 --warmup 0 --json \
	  | python3 -c 'import json,sys; d=json.load(sys.stdin); assert d["median_s"]>0 and d["gmacs"]>0, d; print("smoke flux-bench forward:", d["median_s"], "s")'
	@$(BIN)/flux-bench train-step --preset configs/models/tiny-test.yaml --frames 4 --size 8 --budgets 16,12,8 --runs 1 --warmup 0 --json \
	  | python3 -c 'import json,sys; d=json.load(sys.stdin); assert d["median_s"]>0 and d["peak_rss_bytes"]>0, d; print("smoke flux-bench train-step:", d["median_s"], "s")'
	@$(BIN)/flux-bench sgemm --tokens 64 --runs 1 --json \
	  | python3 -c 'import json,sys; d=json.load(sys.stdin); assert d["gflop_per_s"]>0, d; print("smoke flux-bench sgemm:", round(d["gflop_per_s"],1), "GFLOP/s")'
	@$(BIN)/flux-bench allreduce --ranks 2 --floats 1001 --security curve --runs 1 --warmup 0 --json \
	  | python3 -c 'import json,sys; d=json.load(sys.stdin); assert d["correct"] and d["busbw_gb_per_s"]>0, d; print("smoke flux-bench allreduce:", d["median_s"], "s")'

	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT \
	  && ffmpeg -v error -nostdin -f lavfi -i testsrc2=size=96x64:rate=30 -t 2 -c:v libx264 -g 30 -pix_fmt yuv420p "$$tmp/clip.mp4" \
	  && $(BIN)/flux-bench video "$$tmp/clip.mp4" --frames 8 --size 32 --runs 1 --warmup 0 --json \
	  | python3 -c 'import json,sys; d=json.load(sys.stdin); assert d["median_s"]>0 and d["frame_count"]==60 and d["decoded_frames"]>=8, d; print("smoke flux-bench video:", d["median_s"], "s")' \
	  && $(BIN)/flux-bench video "$$tmp/clip.mp4" --full --size 32 --runs 1 --warmup 0 --json \
	  | python3 -c 'import json,sys; d=json.load(sys.stdin); assert d["decoded_frames"]==d["frame_count"]==60, d; print("smoke flux-bench video --full:", d["median_s"], "s")'

# Our figures beside the anchors (PyTorch, ONNX Runtime; decord, PyAV, the ffmpeg tool) in one run;
# see docs/benchmarks.md. `make bench-video` runs the video section alone.
bench: build
	python3 tools/bench.py --threads $(THREADS) --venv $(FLUX_VENV)

bench-video: build
	python3 tools/bench.py --only video --threads $(THREADS) --venv $(FLUX_VENV)

anchors:
	tools/reference/setup_venv.sh

goldens: anchors
	$(FLUX_VENV)/bin/python tools/reference/make_goldens.py

# For now: one forward pass of FluxViT-S on a random clip (random weights: the classes mean nothing).
demo: build
	$(BIN)/fluxctl infer --model configs/models/fluxvit-small.yaml --random-clip --frames 8 --size 224 --threads $(THREADS)
	$(BIN)/fluxctl infer --model configs/models/fluxvit-small.yaml --random-clip --frames 16 --size 224 --budget 2048 --threads $(THREADS)

clean:
	rm -rf .build
