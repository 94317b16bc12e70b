# pipelines/train.mk - train Token on Google Landmarks v2 (clean), one make
# target per epoch, as the reference's experiment.sh does.
#
#   make -f pipelines/train.mk DATA=/data/Google-landmark-v2 ARCH=r101 \
#        EPOCHS=30 IMSIZE=512 BATCH=128 BACKBONE=resnet101.st [OUT=DIR] ...
#
# DATA holds GLDv2's train_clean.csv (train.csv with CLEAN=0) and train/
# (train/a/b/c/ID.jpg).  tk-list splits its images per class into train and
# validation parts (VAL_FRACTION, fixed by SPLIT_SEED) and numbers the
# classes (OUT/labels.tsv); tk-init makes the first model (OUT/init.st),
# its backbone from BACKBONE (an ImageNet ResNet imported by tk-import).  Epoch E (from 1) is OUT/epoch-E.st: the train part listed in the
# order of epoch E's shuffle, decoded, augmented (random crop of IMSIZE,
# flip, colour jitter; the random numbers fixed by SEED, E and the frame),
# trained on (tk-train --epoch E, resuming epoch E-1's checkpoint), then
# validated on the validation part (centre crops; all of its images, or
# an error: tk-train --val-size), whose results go to
# OUT/epoch-E.val.json and into the checkpoint's metadata.  OUT/best.st is
# the epoch with the lowest validation top-1 error so far (a hard link to
# its file, or a copy), OUT/best.json its validation; the two change
# together, with the epoch file.  (The reference's train.py means the
# same, but its min_val never moves: its best_checkpoint.pth is rewritten
# at every validation batch with an error under 100%, in effect the last
# epoch validated.)
# OUT/train.log has a JSON line per step and OUT/train.svg plots it; the
# lines of steps a run trains again (an epoch redone or resumed) replace
# the earlier ones, which go to OUT/train.log.removed.
#
# "make ... epoch-E" stops after epoch E; "make ... init" only makes
# OUT/init.st.  Interrupted, make starts again
# where it stopped: finished epochs are
# files and are not redone (an epoch gets its name last, after its
# validation and best.st, and make never deletes one; one that tk-train
# finished but that was stopped before it was named is named on the next
# run, not trained again); the epoch under way checkpoints into
# OUT/epoch-E.part.st every SAVE_EVERY steps, and the next run resumes it,
# feeding the epoch's stream from where the part stopped (tk-decode --from
# passes over the images it had trained unread, tk-train --no-skip; the
# stream is the same: list, shuffle and augmentation are functions of
# SEED, E and the position).  A resumed epoch equals an
# uninterrupted one bit for bit with DETERMINISTIC=1 (tk-train
# --deterministic), the default on the CPU.
#
# OUT/config records the options that define the run, when OUT is new
# (pipelines/folder-config.sh): the data set's list (the SHA-256 of
# train_clean.csv, or train.csv: DATA may move, not change), CLEAN,
# VAL_FRACTION, SPLIT_SEED, VAL, VAL_IMAGES, ARCH, BACKBONE, SEED, IMSIZE,
# BATCH times UPDATE_EVERY (the images of a step, by which the rates
# scale: half the BATCH and twice the UPDATE_EVERY, as after running out
# of memory, keeps the rates and the schedule's end, though an epoch's
# steps may differ by one, its last part batch, and batch norm's
# statistics come from each smaller batch; a step's gradient is the mean
# of its batches', see tk-train(1)), EPOCHS (the schedule's length), LR,
# WARMUP_LR, WARMUP, FINAL_LR, MOMENTUM, WD, CLIP and DROPOUT.  Run with any other,
# make stops before doing anything, saying what differs (then, now), and
# leaves OUT as it is: run with the options of then, or give another OUT
# for a new run.  An OUT of an older train.mk, without a config, stops the
# run the same way, with the config these options would give in
# OUT/config.new, to be renamed to OUT/config if they are the run's.  The
# lists (OUT/train.list, OUT/labels.tsv; each epoch's tk-list) follow
# from the config.  JOBS, THREADS, SAVE_EVERY, DAMAGED, DEVICE, PRECISION,
# DETERMINISTIC, GPUS and PORT may change between runs: they are how the
# epochs are computed, not what (a run may move to another machine), but
# an epoch trained or resumed with others differs in its last bits (with
# PRECISION=bf16 in more), as tk-train(1) says.  One run at a time works
# in an OUT: each recipe holds OUT/.lock (flock(1)), with the tools it
# starts, and a make that finds it held for 5 s stops, saying so.
#
# Variables (defaults: the reference's run, experiment.sh on 4 GPUs):
#   DATA                required
#   ARCH                r50 or r101 (default), or with overrides (tk-init --arch)
#   EPOCHS=30 IMSIZE=512 BATCH=128 UPDATE_EVERY=1
#   LR=0.0025 WARMUP_LR=2.5e-5 WARMUP=5 FINAL_LR=0  (per 256 images:
#                       tk-train scales them by BATCH * UPDATE_EVERY / 256,
#                       the whole batch's images.  experiment.sh says
#                       0.01 and 1e-4 for a batch of 128, but its train.py
#                       divides the batch by its 4 GPUs before scaling:
#                       its rates were 0.01 * 32 / 256 = 0.00125 at the
#                       peak and 1.25e-5 at the start, which these give)
#   MOMENTUM=0.9 WD=1e-4 CLIP= (off) DROPOUT=0.1 SEED=11
#   SPLIT_SEED=0        tk-list's seed: the train/val split (0: the
#                       reference's, configdataset.py's) and each epoch's
#                       order.  The reference's loader orders every epoch
#                       alike (its sampler is never told the epoch); here
#                       each epoch has its own order (tk-list --shuffle
#                       --epoch E)
#   BACKBONE            the ImageNet weights for the backbone (torchvision's
#                       ResNet, tk-import), which the reference starts
#                       from: torchvision's first ImageNet weights,
#                       IMAGENET1K_V1 (resnet101-63fe2227.pth), which its
#                       pretrained=True loads, not IMAGENET1K_V2 (the
#                       DEFAULT since torchvision 0.13, another training
#                       of the same network, which tk-import takes as
#                       well: nothing in the file tells them apart);
#                       without it the backbone starts from random
#                       weights, with a warning (BACKBONE=none: the same,
#                       meant)
#   CLEAN=1             GLDv2-clean (0: the full train.csv)
#   VAL_FRACTION=0.2    validation part of each class; VAL=0: no validation
#   VAL_IMAGES          validate on the first VAL_IMAGES only (default all)
#   SAVE_EVERY=500      checkpoint the epoch under way every N steps
#   JOBS=4              threads of tk-decode and tk-augment
#   DAMAGED=1           damaged JPEGs (cut short, corrupt data) decoded as
#                       the reference's loader does (Pillow's
#                       LOAD_TRUNCATED_IMAGES), without a word (tk-decode
#                       runs quiet here); 0: the first stops the epoch
#   THREADS             threads of tk-train (default: all)
#   DEVICE=cpu          or cuda (a CUDA build: make CUDA=1); PRECISION=fp32
#                       (tf32, bf16) for the GPU's GEMMs and convolutions
#                       (bf16: the backbone on bf16 activations,
#                       channels-last; tk-train(1))
#   DETERMINISTIC       1: tk-train --deterministic, resumed epochs equal
#                       uninterrupted ones bit for bit (on GPUs too, with
#                       cuDNN's heuristics' deterministic algorithms);
#                       0: cuDNN's algorithms by timing, the fastest, and a
#                       resumed epoch differs in its last bits.  Default:
#                       1 on the CPU (where it costs nothing), 0 on GPUs
#                       (where its cost is not measured yet)
#   GPUS=1              GPUs of this machine to train on, data-parallel:
#                       GPUS processes an epoch, rank r decoding and
#                       augmenting its shard of the list (tk-decode --shard
#                       r/GPUS) and training on BATCH/GPUS images of each
#                       batch (SyncBatchNorm, the gradient all-reduced by
#                       NCCL); each rank validates its shard of the
#                       validation part, rank 0 sums the results and
#                       writes the checkpoints.
#                       PORT=29500: the ranks' rendezvous on this machine
#                       (runs on one port at once: the ranks of one run
#                       refuse another's, tk-train(1)).
#                       This file runs on one machine and starts its
#                       ranks itself.  Across machines, write the epoch's
#                       pipeline once per GPU, started by a launcher
#                       (torchrun --no-python, srun, mpirun), which sets
#                       RANK, WORLD_SIZE, LOCAL_RANK (SLURM_PROCID,
#                       OMPI_COMM_WORLD_RANK, ...), each pipeline
#                       sharding the list by them: tk-train(1), "Data
#                       parallel" and its EXAMPLES (under torchrun rank 0
#                       listens on MASTER_PORT + 1, as torchrun's store
#                       holds MASTER_PORT; TK_MASTER_PORT sets it).  Run
#                       under a launcher's variables of more than one
#                       rank, this file stops: each copy would train
#                       every rank on the whole list.
#   OUT                 the run's folder (default train/ARCH-IMSIZE)
#   BIN                 the tools' folder (default: this checkout's bin/ if
#                       built, else PATH)
#   GOMP_SPINCOUNT      how long idle OpenMP threads spin (default here 30000,
#                       libgomp's 300000; kept when OMP_WAIT_POLICY is set;
#                       tk-train(1), ENVIRONMENT)
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
.DELETE_ON_ERROR:
.SECONDARY:
# libgomp's idle threads spin GOMP_SPINCOUNT rounds before they sleep,
# 300,000 by default (milliseconds): on a busy machine they hold cores that
# working threads need.  30,000 lose nothing on an idle machine
# (tk-train(1), ENVIRONMENT).  A GOMP_SPINCOUNT or OMP_WAIT_POLICY of the
# caller's is kept.
ifeq ($(origin OMP_WAIT_POLICY),undefined)
export GOMP_SPINCOUNT ?= 30000
endif

here := $(dir $(abspath $(lastword $(MAKEFILE_LIST))))
BIN ?= $(if $(wildcard $(here)../bin/tk-train),$(abspath $(here)../bin),)
tk := $(if $(BIN),$(BIN)/,)

ARCH ?= r101
EPOCHS ?= 30
IMSIZE ?= 512
BATCH ?= 128
UPDATE_EVERY ?= 1
LR ?= 0.0025
WARMUP_LR ?= 2.5e-5
WARMUP ?= 5
FINAL_LR ?= 0
MOMENTUM ?= 0.9
WD ?= 1e-4
DROPOUT ?= 0.1
SEED ?= 11
SPLIT_SEED ?= 0
CLEAN ?= 1
VAL ?= 1
VAL_FRACTION ?= 0.2
SAVE_EVERY ?= 500
JOBS ?= 4
DAMAGED ?= 1
DEVICE ?= cpu
PRECISION ?= fp32
DETERMINISTIC ?= $(if $(filter cpu,$(DEVICE)),1,0)
GPUS ?= 1
PORT ?= 29500

ifeq ($(strip $(DATA)),)
  $(error DATA=DIR is required: the folder holding train_clean.csv and train/)
endif
# (DESIGN.md's command names no BACKBONE: it runs, and says what that means)
ifeq ($(strip $(BACKBONE)),)
  $(warning warning: no BACKBONE=FILE: the backbone starts from random weights, not from the ImageNet ResNet the reference starts from (tk-import of torchvision's resnet101 weights); BACKBONE=none says this is meant)
endif
backbone_file := $(if $(filter-out none,$(strip $(BACKBONE))),$(abspath $(BACKBONE)),)
backbone := $(if $(backbone_file),--backbone $(backbone_file),)
# Started by a launcher as one of several ranks: each copy of this file
# would give its rank the whole list, and all would write the same files.
launched := $(strip $(foreach v,WORLD_SIZE OMPI_COMM_WORLD_SIZE PMI_SIZE \
	$(if $(SLURM_STEP_ID)$(SLURM_STEPID),SLURM_STEP_NUM_TASKS,),\
	$(if $(filter-out 0 1,$($(v))),$(v)=$($(v)),)))
ifneq ($(launched),)
  $(error $(launched): train.mk starts its ranks itself, on one machine (GPUS=n); \
    under a launcher run one epoch pipeline per rank instead (tk-train(1), Data parallel))
endif
data := $(abspath $(DATA))
comma := ,
OUT ?= train/$(subst :,_,$(subst =,-,$(subst $(comma),_,$(ARCH))))-$(IMSIZE)
o := $(abspath $(OUT))

# What defines the run, recorded in OUT/config when OUT is new and checked
# at every run (pipelines/folder-config.sh): the data set's list file (its
# SHA-256: DATA itself may move), the split, the validation part, the
# model and its start, the augmentation and the training's options.  Not
# how it is computed: JOBS, THREADS, SAVE_EVERY, DAMAGED (a finished epoch
# is the same either way), DEVICE, PRECISION, DETERMINISTIC, GPUS, PORT,
# BIN, which may change between runs (a run may move to another machine).
csv := $(data)/$(if $(filter 1,$(CLEAN)),train_clean.csv,train.csv)
# (BATCH and UPDATE_EVERY by their product, the images of a step, by
# which the rates scale and the epochs count their steps: after running
# out of memory, a run goes on with half the BATCH and twice the
# UPDATE_EVERY)
cfg := $(foreach v,CLEAN VAL_FRACTION SPLIT_SEED VAL VAL_IMAGES ARCH SEED IMSIZE \
	EPOCHS LR WARMUP_LR WARMUP FINAL_LR MOMENTUM WD CLIP DROPOUT,'$(v)=$(strip $($(v)))') \
	'BACKBONE=$(or $(backbone_file),none)' \
	'BATCH*UPDATE_EVERY=$(shell echo $$(($(BATCH) * $(UPDATE_EVERY))))'

list := $(tk)tk-list gldv2 --root $(data) $(if $(filter 1,$(CLEAN)),--clean,) \
	--val-fraction $(VAL_FRACTION) --seed $(SPLIT_SEED) --label-map $(o)/labels.tsv -q
device := $(if $(filter cpu,$(DEVICE)),,--device $(DEVICE) --precision $(PRECISION))
train := $(tk)tk-train -q $(if $(filter 1,$(DETERMINISTIC)),--deterministic,) --batch $(BATCH) --update-every $(UPDATE_EVERY) \
	--epochs $(EPOCHS) --warmup-epochs $(WARMUP) --warmup-lr $(WARMUP_LR) --lr $(LR) \
	--final-lr $(FINAL_LR) --momentum $(MOMENTUM) --weight-decay $(WD) \
	$(if $(CLIP),--clip $(CLIP),) --dropout $(DROPOUT) --seed $(SEED) \
	--save-every $(SAVE_EVERY) $(if $(THREADS),--threads $(THREADS),) $(device) \
	-l $(o)/train.log --plot $(o)/train.svg
decode_damaged := $(if $(filter 1,$(DAMAGED)),--damaged,)
# valstream(RANK, WORLD): the validation part, rank RANK's shard of it
valstream = <($(list) --split val $(if $(VAL_IMAGES),| head -n $(VAL_IMAGES),) | \
	$(tk)tk-decode -q -j $(JOBS) $(decode_damaged) $(if $(filter-out 1,$(2)),--shard $(1)/$(2),) | \
	$(tk)tk-augment -q --val --size $(IMSIZE) -j $(JOBS))

epochs := $(shell seq 1 $(EPOCHS))
.PHONY: all init FORCE $(addprefix epoch-,$(epochs))
all: $(o)/epoch-$(EPOCHS).st
init: $(o)/init.st
# make -f pipelines/train.mk ... epoch-3: the run up to epoch 3
$(foreach e,$(epochs),$(eval epoch-$(e): $(o)/epoch-$(e).st))

# The run's options, checked first at every run (make reaches it through
# the lists); OUT made with others stops the run untouched.
$(o)/config: FORCE
	@[ -r $(csv) ] || { echo "train.mk: no $(csv): DATA is the GLDv2 folder holding" \
	    "$(notdir $(csv)) and train/" >&2; exit 1; }
	@bash $(here)folder-config.sh train.mk OUT $(o) "a run's lists and epochs" \
	    "run with the settings of then ($(o)/config)" $(cfg) \
	    "$(notdir $(csv))=sha256:$$(sha256sum <$(csv) | cut -d ' ' -f 1)"
FORCE:

# lock: the recipe holds OUT/.lock (flock), and the tools it starts hold it
# with it, or it stops, saying why: two makes on one OUT would resume each
# other's part files.  (A make of one OUT takes it recipe by recipe,
# waiting a few seconds for its own last one's tools to end.)
lock = exec 9>>$(o)/.lock; flock -w 5 9 || { p=$$(cat $(o)/.lock 2>/dev/null); \
	  echo "train.mk: OUT=$(o) is in use by another run of train.mk$${p:+ (make, process $$p)}" \
	    "or the tools it started, and two would resume each other's part files:" \
	    "wait for it to end, or stop it" >&2; exit 1; }; echo $$PPID > $(o)/.lock

# The train part's image count (the epoch size) and the class count, made
# again when the config is (a new OUT, or an older one's config put in
# place).
$(o)/train.list $(o)/labels.tsv &: $(o)/config
	@$(lock); set -x; \
	$(list) --split train > $(o)/train.list.tmp && mv $(o)/train.list.tmp $(o)/train.list

$(o)/init.st: | $(o)/train.list
	@$(lock); set -x; \
	$(tk)tk-init -q --arch '$(ARCH)' --classes $$(wc -l < $(o)/labels.tsv) \
		$(backbone) --seed $(SEED) -o $@

# epoch-E.st from epoch-(E-1).st (init.st for the first), through the
# epoch's part file: trained, its validation's result kept (written under
# a temporary name, then renamed), the best so far updated from it, and
# the part renamed last.  A part that tk-train finished but that was not
# renamed (a signal or an error after tk-train, a full disk in the best's
# copy) is not trained again: its header says it ends the epoch, and the
# steps after the training are done again (the validation too, if its
# result was lost).  The renames at the end go with signals ignored:
# best.st, best.json and epoch-E.st change together (and make, which waits
# for the recipe, deletes no epoch file: they are .PRECIOUS).
define epoch
$(o)/epoch-$(1).st: $(if $(filter 1,$(1)),$(o)/init.st,$(o)/epoch-$(shell echo $$(($(1) - 1))).st)
	@$$(lock); \
	part=$(o)/epoch-$(1).part.st; val=$(o)/epoch-$(1).val.json; better=; \
	if [ $$@ -nt $$< ]; then echo "epoch $(1)/$(EPOCHS): made by another run meanwhile"; exit 0; fi; \
	if $(call finished,$$$$part,$(1)); then \
	  echo "epoch $(1)/$(EPOCHS): trained before, in $$$$part"; \
	else \
	  n=$$$$(wc -l < $(o)/train.list); \
	  from=; \
	  if [ -e $$$$part ]; then start="--resume $$$$part"; \
	    seen=$$$$($(call seen,$$$$part)); \
	    if [ -n "$$$$seen" ]; then from="--from $$$$seen"; start="$$$$start --no-skip"; fi; \
	  elif [ $(1) = 1 ]; then start="--model $(o)/init.st"; \
	  else start="--resume $$<"; fi; \
	  echo "epoch $(1)/$(EPOCHS): $$$$n images, $$$$start"; \
	  rm -f $$$$val; \
	  $(if $(filter 1,$(VAL)),nval=$$$$($(valsize)); ,)\
	  $(if $(filter 1,$(GPUS)),$(call rank_run,$(1),0,1) > $$$$val.tmp;,\
	    rc=; pids=; \
	    for r in $$$$(seq 1 $$$$(($(GPUS) - 1))); do \
	      ( $(call rank_run,$(1),$$$$r,$(GPUS)) ) > /dev/null & pids="$$$$pids $$$$!"; \
	    done; \
	    ( $(call rank_run,$(1),0,$(GPUS)) ) > $$$$val.tmp || rc=$$$$?; \
	    for p in $$$$pids; do wait $$$$p || rc=$$$$?; done; \
	    [ -z "$$$$rc" ] || exit $$$$rc;) \
	  mv $$$$val.tmp $$$$val; \
	fi; \
	$(if $(filter 1,$(VAL)),$(call revalidate,$(1)); $(call best,$(1));,) \
	trap '' INT TERM HUP; \
	if [ -n "$$$$better" ]; then \
	  mv $(o)/best.st.tmp $(o)/best.st; mv $(o)/best.json.tmp $(o)/best.json; \
	  echo "epoch $(1): best so far"; \
	fi; \
	mv $$$$part $$@
endef

# header(FILE): a checkpoint's safetensors header, the JSON after its
# 8-byte length
header = h=$$$$(od -An -t u8 -N 8 $(1)) && head -c $$$$((8 + h)) $(1) | tail -c +9
# finished(PART, E): PART is the checkpoint at the end of epoch E (its
# header's train_epoch, the epochs done, is E)
finished = { [ -e $(1) ] && $(call header,$(1)) | grep '"train_epoch": *"$(2)"' > /dev/null; }
# seen(PART): the images of its epoch that PART had trained (its header's
# train_seen), where the resumed epoch's stream starts: tk-decode --from
# passes over those lines unread, its frames carrying their place in the
# epoch (tk-augment draws the numbers of the whole stream), and tk-train
# --no-skip takes the stream as starting there, instead of reading and
# dropping frames decoded and augmented for nothing (near an epoch's end,
# most of GLDv2's 1.28 million images)
seen = $(call header,$(1)) | LC_ALL=C sed -n 's/.*"train_seen": *"\([0-9]*\)".*/\1/p'
# valsize: the validation part's images (at most VAL_IMAGES), which
# tk-train --val-size checks the validation against: a stream cut short
# (an image missing or unreadable: tk-decode stops, saying which) is an
# error, not a validation of some of the images that would pass for all's
# (and pick the best epoch)
valsize = c=$$$$($(list) --split val | wc -l) && \
	  $(if $(VAL_IMAGES),{ [ $$$$c -le $(VAL_IMAGES) ] || c=$(VAL_IMAGES); } && ,)echo $$$$c
# revalidate(E): the finished part validated again when its result is
# missing: tk-train --epoch E on a checkpoint at E's end reads no stream,
# validates, and writes the result into the checkpoint, the log (in place
# of any earlier record of that step) and the plot, as the epoch's run
revalidate = [ -s $$$$val ] || { \
	  echo "epoch $(1): validating $$$$part again (its result was not kept)"; \
	  $(train) --resume $$$$part -o $$$$part --epoch $(1) \
	    --epoch-size $$$$(wc -l < $(o)/train.list) \
	    --validate $(call valstream,0,1) --val-size $$$$($(valsize)) < /dev/null > $$$$val.tmp; \
	  mv $$$$val.tmp $$$$val; }

# One rank's pipeline of epoch E: rank_run(E, RANK, WORLD), with the shard
# of the list and the launch's variables when WORLD > 1; each rank validates
# its shard of the validation part (rank 0 gathers the results).
rank_run = $(list) --split train --shuffle --epoch $(1) | \
	  $(tk)tk-decode -q -j $(JOBS) $(decode_damaged) $(if $(filter-out 1,$(3)),--shard $(2)/$(3),) $$$$from | \
	  $(tk)tk-augment -q --size $(IMSIZE) --seed $(SEED) --epoch $(1) -j $(JOBS) | \
	  $(if $(filter-out 1,$(3)),RANK=$(2) LOCAL_RANK=$(2) WORLD_SIZE=$(3) \
	    MASTER_ADDR=127.0.0.1 MASTER_PORT=$(PORT) TK_RUN_ID=train.mk-$$$$$$$$,) \
	  $(train) $$$$start -o $$$$part --epoch-size $$$$n --epoch $(1) \
	    $(if $(filter 1,$(VAL)),--validate $(call valstream,$(2),$(3)) --val-size $$$$nval,)

# Epoch E is the best so far when its top-1 error is below best.json's:
# better is set, and best.st.tmp (a hard link to the part, or a copy
# where links are not possible) and best.json.tmp are made, for the
# recipe to rename.  Those of a run stopped here go first.
best = rm -f $(o)/best.st.tmp $(o)/best.json.tmp; \
	if awk -v f=$(o)/best.json 'BEGIN { b = 1e300; \
	  if ((getline l < f) > 0 && match(l, /"val_top1": [-0-9.e+]+/)) \
	    b = substr(l, RSTART + 12, RLENGTH - 12) + 0 } \
	  match($$$$0, /"val_top1": [-0-9.e+]+/) { exit !(substr($$$$0, RSTART + 12, RLENGTH - 12) + 0 < b) }' \
	  $$$$val; then \
	  { ln $$$$part $(o)/best.st.tmp 2>/dev/null || cp $$$$part $(o)/best.st.tmp; } && \
	  cp $$$$val $(o)/best.json.tmp || { rm -f $(o)/best.st.tmp $(o)/best.json.tmp; exit 1; }; \
	  better=1; \
	fi

# A finished epoch file is never deleted by make (on an error or a
# signal): it is complete when it has its name.
.PRECIOUS: $(o)/init.st $(foreach e,$(epochs),$(o)/epoch-$(e).st)

$(foreach e,$(epochs),$(eval $(call epoch,$(e))))
