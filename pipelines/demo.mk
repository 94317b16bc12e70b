SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
# pipelines/demo.mk - the README's first command (make demo): the whole
# system on the embedded mini benchmark, on the CPU, in minutes.
#
#   make demo            (the top Makefile builds the tools first), or
#   make -f pipelines/demo.mk [OUT=demo] [SEED=0] [BENCH_OPTS=...] [ARCH=...]
#        [EPOCHS=10] [IMSIZE=224] [BATCH=32] [LR=0.1] [WARMUP=1] [JOBS=2]
#        [TRAIN_SEED=11]
#        [THREADS=n] [MAX_SIZE=512]
#
# 1. bench: pipelines/mkbench.py makes OUT/bench from the photographs of
#    mate-backgrounds and plasma-workspace-wallpapers (README, "The demo
#    benchmark"): a revisitop-style evaluation set (OUT/bench/demo) and a
#    GLDv2-style training set (OUT/bench/train*).
# 2. pipelines/train.mk ... init: tk-init makes the model, OUT/train/init.st.
# 3. pipelines/eval.mk DATASET=demo scores it (OUT/eval/init/map.txt).
# 4. pipelines/train.mk trains it for EPOCHS epochs: tk-list gldv2 --clean
#    | tk-decode | tk-augment | tk-train, validation on a fifth of each
#    class, the curve in OUT/train/train.svg.
# 5. pipelines/eval.mk scores the last epoch (OUT/eval/trained/map.txt).
# 6. Both tk-map results, the Medium mAP's gain and the time taken.
#
# Everything is a file made once: a rerun reuses the benchmark, the model,
# the finished epochs and the evaluations, and prints each stage's line,
# both evaluations' scores and the summary again.
# Changing SEED or BENCH_OPTS remakes the benchmark; changing it or any
# training option (ARCH, EPOCHS, IMSIZE, BATCH, LR, WARMUP, TRAIN_SEED) removes
# OUT/train and OUT/eval, which are then made again (train.mk would refuse
# OUT/train with other options: it records them); changing MAX_SIZE
# removes OUT/eval.
#
# The model (README, "Demo"): ResNet-50 at a quarter of its width (16
# channels in the stem; 1/16 of the operations) with a Token head of
# mid_dim 128, out_dim 128 and 4 heads, trained from scratch - Debian
# ships no ImageNet weights and nothing is downloaded.  The reference's
# learning rate (0.0025 per 256 images, train.mk's LR) is for an ImageNet
# backbone; from scratch the demo uses ImageNet training's 0.1 per 256
# images, scaled to the batch by train.mk as usual.
here := $(dir $(abspath $(lastword $(MAKEFILE_LIST))))
# the tools: this checkout's bin/ if built, else PATH (an installed copy)
BIN ?= $(if $(wildcard $(here)../bin/tk-train),$(abspath $(here)../bin),)
PY ?= /usr/bin/python3
OUT ?= demo
BENCH ?= $(OUT)/bench
SEED ?= 0
BENCH_OPTS ?=
ARCH ?= r50:width=16,mid_dim=128,out_dim=128,heads=4
EPOCHS ?= 10
IMSIZE ?= 224
BATCH ?= 32
LR ?= 0.1
WARMUP ?= 1
# SEED is the benchmark's; the training's (train.mk's SEED) is apart.
TRAIN_SEED ?= 11
JOBS ?= 2
MAX_SIZE ?= 512

threads := $(if $(THREADS),THREADS=$(THREADS),)
# (the demo's network has no ImageNet weights: it trains from random ones;
# its warm-up rate and split are those it was measured with)
run_opts := ARCH=$(ARCH) EPOCHS=$(EPOCHS) IMSIZE=$(IMSIZE) BATCH=$(BATCH) LR=$(LR) WARMUP=$(WARMUP) \
	SEED=$(TRAIN_SEED) SPLIT_SEED=$(TRAIN_SEED) WARMUP_LR=1e-4 BACKBONE=none
train := $(MAKE) --no-print-directory -s -f $(here)train.mk BIN=$(abspath $(BIN)) \
	DATA=$(BENCH) OUT=$(OUT)/train $(run_opts) JOBS=$(JOBS) $(threads)
score := $(MAKE) --no-print-directory -s -f $(here)eval.mk BIN=$(abspath $(BIN)) \
	DATA=$(BENCH) DATASET=demo MAX_SIZE=$(MAX_SIZE) SHARDS=2 JOBS=1 $(threads)
last := $(OUT)/train/epoch-$(EPOCHS).st
# mapm FILE: the Medium mAP of a tk-map result
mapm = sed -n 's/.*mAP E: [0-9.]*, M: \([0-9.]*\),.*/\1/p' $(1)

.PHONY: demo bench FORCE
demo: $(OUT)/eval.stamp
	@t0=$$(date +%s); \
	stage() { local s=$$(date +%s); echo "demo: $$1"; shift; "$$@"; \
	  echo "demo: ... $$(( $$(date +%s) - s )) s"; }; \
	stage "the model (tk-init $(ARCH))" $(train) init; \
	stage "mAP before training" $(score) MODEL=$(OUT)/train/init.st OUT=$(OUT)/eval/init; \
	stage "training, $(EPOCHS) epochs (pipelines/train.mk)" $(train); \
	stage "mAP after training" $(score) MODEL=$(last) OUT=$(OUT)/eval/trained; \
	b=$$($(call mapm,$(OUT)/eval/init/map.txt)); a=$$($(call mapm,$(OUT)/eval/trained/map.txt)); \
	echo; \
	echo "demo: before training ($(OUT)/train/init.st):"; head -n 1 $(OUT)/eval/init/map.txt; \
	echo "demo: after $(EPOCHS) epochs ($(last)):"; head -n 1 $(OUT)/eval/trained/map.txt; \
	echo "demo: Medium mAP $$b -> $$a ($$(awk -v a=$$a -v b=$$b 'BEGIN { printf "%+.2f", a - b }'))"; \
	echo "demo: training curve $(OUT)/train/train.svg (log $(OUT)/train/train.log)"; \
	echo "demo: $$(( $$(date +%s) - t0 )) s"

# write_if_new(FILE, TEXT): FILE holds TEXT, rewritten only when it
# changes, so that make notices new options by the file's time.
write_if_new = @mkdir -p $(dir $(1)); echo "$(2)" | cmp -s - $(1) || echo "$(2)" > $(1)

# A new benchmark or new training options: the old model and scores go;
# so does a training folder without a config (an older train.mk's, which
# train.mk would refuse).
old_train := $(if $(wildcard $(OUT)/train/*),$(if $(wildcard $(OUT)/train/config),,FORCE),)
$(OUT)/run.stamp: $(OUT)/run.opts $(BENCH)/demo/gnd_demo.pkl $(old_train)
	rm -rf $(OUT)/train $(OUT)/eval
	touch $@
$(OUT)/run.opts: FORCE
	$(call write_if_new,$@,$(run_opts))
# A new MAX_SIZE: the old scores go too (eval.mk refuses a folder whose
# descriptors were made with another).
$(OUT)/eval.stamp: $(OUT)/eval.opts $(OUT)/run.stamp
	rm -rf $(OUT)/eval
	touch $@
$(OUT)/eval.opts: FORCE
	$(call write_if_new,$@,MAX_SIZE=$(MAX_SIZE))

# The mini benchmark (README, "The demo benchmark"): made once, remade when
# the generator, the photograph list or the options change.
#   make -f pipelines/demo.mk bench [SEED=0] [BENCH_OPTS="--size 384 ..."]
bench: $(BENCH)/demo/gnd_demo.pkl
$(BENCH)/demo/gnd_demo.pkl: $(here)mkbench.py $(here)demo-photos.txt $(BENCH).opts
	$(PY) $(here)mkbench.py --out $(BENCH) --seed $(SEED) --force $(BENCH_OPTS)
# The options as a file (a new SEED or BENCH_OPTS remakes it)
$(BENCH).opts: FORCE
	$(call write_if_new,$@,--seed $(SEED) $(BENCH_OPTS))
FORCE:
