# Flux: the two commands a newcomer needs are `make demo` and `make test` (README).
SWIFT      ?= swift
# Tests and tools build optimized: debug Swift is 10–100× slower on numeric loops.
RELEASE    := -c release -Xswiftc -enable-testing
BIN        := .build/release
FLUX_VENV  ?= $(HOME)/.cache/flux/venv
THREADS    ?= 2

.PHONY: all deps build test smoke-bench bench bench-video learn-motion goldens anchors demo clean

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

# The learning figure of docs/benchmarks.md ("Learning the synthetic motion task"): the tiny model on the
# synthetic motion videos and on the single-frame control, validated every 50 steps, plotted to
# runs/motion-learning.svg. About 6 minutes on 2 cores.
MOTION_TRAIN := --model configs/models/tiny-motion.yaml --batch 32 --epochs 10 --lr 3e-3 --warmup 20 \
  --layer-decay 1 --no-flip --crop-scale 1 --val-every 50 --threads $(THREADS)
learn-motion: build
	$(BIN)/fluxctl dataset synth --out runs/data/motion --classes 4 --videos-per-class 500 --seed 1
	$(BIN)/fluxctl dataset synth --out runs/data/motion-still --classes 4 --videos-per-class 500 --seed 1 --still
	rm -rf runs/motion runs/motion-still
	$(BIN)/fluxctl train --local $(MOTION_TRAIN) --train runs/data/motion/train.csv --val runs/data/motion/val.csv --out runs/motion
	$(BIN)/fluxctl train --local $(MOTION_TRAIN) --train runs/data/motion-still/train.csv \
	  --val runs/data/motion-still/val.csv --out runs/motion-still
	python3 tools/plot_runs.py --run "moving shapes=runs/motion" --run "single-frame control (--still)=runs/motion-still" \
	  --chance 0.25 --out runs/motion-learning.svg

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

# The main job on a local cluster: 2 workers, the quickstart dataset, the job with its live progress, then a Token
# Optimization sweep of the model it trained (results table, report and plot in .flux/jobs/ID/artifacts/), then
# down. A few minutes on 2 cores; state under .flux/ (see README, "What next").
demo: build
	$(BIN)/fluxctl dataset synth --out runs/data/motion --classes 4 --videos-per-class 300 --seed 1
	$(BIN)/fluxctl up --workers 2
	$(BIN)/fluxctl submit configs/jobs/quickstart.yaml --wait > runs/demo-train.txt || (cat runs/demo-train.txt; $(BIN)/fluxctl down; exit 1)
	@cat runs/demo-train.txt
	$(BIN)/fluxctl sweep configs/sweeps/quickstart.yaml --checkpoint $$(awk 'NR == 1 { print $$2 }' runs/demo-train.txt) --wait \
	  || ($(BIN)/fluxctl down; exit 1)
	$(BIN)/fluxctl workers
	$(BIN)/fluxctl down

clean:
	rm -rf .build
