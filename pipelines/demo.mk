SHELL := /bin/bash
# pipelines/demo.mk - the README's first command (make demo).
# Until the embedded benchmark lands (issue 8), a smoke run of every tool
# that exists: descriptors made with NumPy travel through tk-cat and back.
BIN ?= bin
PY ?= /usr/bin/python3
OUT ?= demo

.PHONY: demo bench
demo:
	@mkdir -p $(OUT)
	$(PY) -c "import numpy as np; np.save('$(OUT)/desc.npy', np.random.default_rng(0).standard_normal((5, 8)).astype(np.float32))"
	$(BIN)/tk-cat --from-npy $(OUT)/desc.npy --tensor desc > $(OUT)/desc.bin
	$(BIN)/tk-cat $(OUT)/desc.bin | $(BIN)/tk-cat --info
	$(BIN)/tk-cat --to-npy $(OUT)/back.npy $(OUT)/desc.bin
	cmp <(tail -c 160 $(OUT)/desc.npy) <(tail -c 160 $(OUT)/back.npy) && echo "demo: round trip exact"

# The mini benchmark (README, "The demo benchmark"): made once, remade when
# the generator, the photograph list or the options change.
#   make -f pipelines/demo.mk bench [SEED=0] [BENCH_OPTS="--size 384 ..."]
# What make demo will run on it once the tools exist (issue 8):
#   tk-init (reduced model) -> eval.mk DATA=$(BENCH) DATASET=demo -> train.mk
#   on DATA=$(BENCH) (tk-list gldv2 --clean) -> eval.mk again; both tk-map
#   lines and the training curve.
BENCH ?= $(OUT)/bench
SEED ?= 0
BENCH_OPTS ?=
bench: $(BENCH)/demo/gnd_demo.pkl
$(BENCH)/demo/gnd_demo.pkl: pipelines/mkbench.py pipelines/demo-photos.txt $(BENCH).opts
	$(PY) pipelines/mkbench.py --out $(BENCH) --seed $(SEED) --force $(BENCH_OPTS)
# The options as a file, rewritten only when they change, so that make
# notices a new SEED or BENCH_OPTS.
$(BENCH).opts: FORCE
	@mkdir -p $(dir $@)
	@echo "--seed $(SEED) $(BENCH_OPTS)" | cmp -s - $@ || echo "--seed $(SEED) $(BENCH_OPTS)" > $@
.PHONY: FORCE
FORCE:
