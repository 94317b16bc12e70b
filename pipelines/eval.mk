# pipelines/eval.mk - a model's mAP on Revisited Oxford or Paris, +1M.
#
#   make -f pipelines/eval.mk DATA=DIR MODEL=FILE DATASET=roxford5k|rparis6k \
#        [R1M=1] [JOBS=n] [HOSTS=h1,h2] [DEVICE=cuda GPUS=n] [OUT=DIR] ...
#
# DATA is the revisitop data folder: DATA/roxford5k/{gnd_roxford5k.pkl,jpg/},
# DATA/rparis6k/..., and for R1M=1 DATA/revisitop1m/{revisitop1m.txt,jpg/}.
# The images lie in jpg/ itself, as revisitop's download.py leaves them:
# paris_1-v1.tgz and paris_2-v1.tgz unpacked with tar alone give
# jpg/paris/LANDMARK/*.jpg, which download.py moves up into jpg/ (without
# that, the first query stops the run: No such file).
# The images are listed (tk-list), decoded with the longer side at most
# MAX_SIZE, queries cropped to their box (tk-decode), turned into local
# features at the three scales (tk-extract) and descriptors (tk-aggregate),
# ranked (tk-rank) and scored (tk-map), which prints revisitop's two lines;
# OUT/map.txt (map+1m.txt) keeps them, OUT/map.json the per-query figures.
#
# The database is cut into SHARDS contiguous shards of its list, run through
# GNU parallel: JOBS at a time here, or on HOSTS (parallel --sshlogin: each
# host needs tk, the data, the model and OUT at the same paths, as on a
# shared file system).  Each shard's descriptors are a file of their own,
# written whole or not at all and kept whatever happens to the run (a
# failed job lets the running ones finish), so after a failure or an
# interruption only the missing shards are computed; the shards joined in
# order are the database in list order (make -B remakes the rest, not the
# finished shards: remove them to compute them again).  The 1M distractors
# are extracted once, into R1M_DIR (by default shared by both datasets for
# the same model and settings), and placed after the dataset's images:
# each distractor shard is ranked apart, in parallel, and the rankings
# merged (tk-rank --merge), so positions from len(imlist) on are
# distractors, as tk-map expects.
#
# Descriptors are only ever joined or ranked with those of the same model
# and settings.  OUT/config and R1M_DIR/config (pipelines/folder-config.sh)
# hold what made them: the model file (its absolute path, size and time),
# DATA, MAX_SIZE, SCALES and the device's arithmetic (cpu, or cuda at
# PRECISION), and OUT's the DATASET; not JOBS, HOSTS or DAMAGED, which
# change no finished shard, nor THREADS, which changes at most last bits.  A
# folder gets its config when it is new and keeps it; run with anything
# else, it stops the run before anything is computed, saying what differs,
# and is left as it is (neither reused nor removed: remove it, or give
# another folder).  The default folders are named after the model file and
# a hash of its config, eval/STEM-HASH/DATASET and eval/STEM-HASH/revisitop1m,
# so two models of one name (the best.st of two train.mk runs), a model
# rewritten in place, or other settings get folders of their own; those of
# older models stay until removed.
#
# Variables:
#   DATA, MODEL        required
#   DATASET            roxford5k (default), rparis6k, or any NAME with
#                      DATA/NAME/gnd_NAME.pkl (the demo's benchmark)
#   R1M=1              add the revisitop 1M distractors
#   JOBS               parallel jobs here (default 1, or GPUS); HOSTS
#                      instead: hosts, each running JOBS jobs (default,
#                      on the CPU: one a core, GNU parallel's)
#   DEVICE=cpu         or cuda (a CUDA build: make CUDA=1): tk-extract and
#                      tk-aggregate on GPUS GPUs of each machine, a job a
#                      GPU (the first free one: extract-shard.sh), at
#                      PRECISION (fp32, tf32, bf16; default the tools').
#                      tk-rank stays on the CPU (RANK_OPTS=--device cuda
#                      moves the dataset's ranking)
#   SHARDS             database shards (default 16); R1M_SHARDS (default 200)
#   THREADS            threads of each job's tk-extract and tk-aggregate
#                      and of a distractor shard's tk-rank; default: the
#                      job's share of its machine's cores, counted there
#                      by nproc (CPU affinity, or OMP_NUM_THREADS where
#                      set) and divided by the jobs it runs at once (1
#                      for a job a core; all of them for the queries),
#                      so that JOBS jobs do not start JOBS x cores
#                      threads.  tk-extract's sums on the CPU, hence the
#                      descriptors' last bits, vary with it
#   MAX_SIZE           longer side of the images (default 1024)
#   DAMAGED=1          damaged JPEGs (cut short, corrupt data) decoded as
#                      the reference's loader does (Pillow's
#                      LOAD_TRUNCATED_IMAGES), each named in a warning;
#                      0: the first stops the evaluation (tk-decode(1))
#   SCALES             tk-extract's scales (default: its own, 1,√2,1/√2)
#   RANK_OPTS          more tk-rank options, such as --qe 2 (not with R1M=1,
#                      whose parts are ranked apart)
#   OUT                this evaluation's files (default eval/STEM-HASH/DATASET:
#                      the model file's name without its suffix, a hash
#                      of the folder's config)
#   R1M_DIR            the distractors' files (default eval/STEM-HASH/revisitop1m)
#   PARALLEL           GNU parallel's own options, as it reads them from the
#                      environment (--progress, --joblog +FILE); the
#                      program is parallel, on PATH
#   BIN                the tools' folder (default: this checkout's bin/ if built,
#                      else PATH)
#   GOMP_SPINCOUNT     how long idle OpenMP threads spin (default here 30000,
#                      libgomp's 300000; kept when OMP_WAIT_POLICY is set;
#                      tk-train(1), ENVIRONMENT)
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
.DELETE_ON_ERROR:
# libgomp's idle threads spin GOMP_SPINCOUNT rounds before they sleep,
# 300,000 by default (milliseconds): on a busy machine they hold cores that
# working threads need.  30,000 lose nothing on an idle machine
# (tk-train(1), ENVIRONMENT).  A GOMP_SPINCOUNT or OMP_WAIT_POLICY of the
# caller's is kept.
ifeq ($(origin OMP_WAIT_POLICY),undefined)
export GOMP_SPINCOUNT ?= 30000
endif

here := $(dir $(abspath $(lastword $(MAKEFILE_LIST))))
BIN ?= $(if $(wildcard $(here)../bin/tk-rank),$(abspath $(here)../bin),)
tk := $(if $(BIN),$(BIN)/,)
DATASET ?= roxford5k
DEVICE ?= cpu
GPUS ?= 1
jobs_given := $(filter-out undefined,$(origin JOBS))
JOBS ?= $(if $(filter cuda,$(DEVICE)),$(GPUS),1)
SHARDS ?= 16
R1M_SHARDS ?= 200
MAX_SIZE ?= 1024
DAMAGED ?= 1

ifeq ($(strip $(DATA)),)
  $(error DATA=DIR is required: the folder holding $(DATASET)/gnd_$(DATASET).pkl)
endif
ifeq ($(strip $(MODEL)),)
  $(error MODEL=FILE is required: a tk model (safetensors))
endif
ifeq ($(wildcard $(DATA)/$(DATASET)/gnd_$(DATASET).pkl),)
  $(error no $(DATA)/$(DATASET)/gnd_$(DATASET).pkl: DATASET is roxford5k, rparis6k or another dataset in the revisitop layout)
endif
ifneq ($(and $(filter 1,$(R1M)),$(strip $(RANK_OPTS))),)
  $(error RANK_OPTS does not go with R1M=1: its parts are ranked apart)
endif

data := $(abspath $(DATA))
model := $(abspath $(MODEL))
# The model file as the descriptors' settings name it: its path, size and
# time (a file rewritten in place is another model).
model_id := $(shell stat -L -c '%s %.9Y' '$(model)' 2>/dev/null)
ifeq ($(model_id),)
  $(error no model $(MODEL))
endif
# What the descriptors are made of (DIR/config, pipelines/folder-config.sh):
# the model file, the images (DATA), MAX_SIZE, SCALES, and the device's
# arithmetic (the CPU, or CUDA at PRECISION).  Not DAMAGED (a finished
# shard is the same either way), THREADS, JOBS or HOSTS.
cfg := 'model $(model) $(model_id)' 'data $(data)' 'max_size $(MAX_SIZE)' 'scales $(or $(SCALES),-)' \
	'device $(if $(filter cuda,$(DEVICE)),cuda $(or $(PRECISION),-),cpu)'
# The default folders: the model file's name and a hash of cfg.
key := $(shell printf '%s\n' $(cfg) | sha256sum | cut -c 1-8)
stem := $(basename $(notdir $(MODEL)))-$(key)
OUT ?= eval/$(stem)/$(DATASET)
R1M_DIR ?= eval/$(stem)/revisitop1m
o := $(abspath $(OUT))
r := $(abspath $(R1M_DIR))
GND ?= $(data)/$(DATASET)/gnd_$(DATASET).pkl
suffix := $(if $(filter 1,$(R1M)),+1m,)

# (GNU parallel takes more options from the environment's PARALLEL, such
# as --progress or --joblog +FILE.)  After a failed job it starts no new
# one but lets those running finish, so that their shards are kept.
# The jobs a machine runs at once: JOBS, or, on HOSTS on the CPU without
# JOBS, GNU parallel's default of one a core ('-').
host_jobs := $(if $(and $(HOSTS),$(filter-out cuda,$(DEVICE)),$(if $(jobs_given),,1)),-,$(JOBS))
par := parallel --will-cite --halt soon,fail=1 $(if $(HOSTS),--sshlogin $(HOSTS),) \
	$(if $(filter -,$(host_jobs)),,-j $(JOBS))
# shard JOBS: extract-shard.sh for a machine that runs JOBS jobs at once
# (each gets THREADS threads, else its share of that machine's cores)
shard = bash $(here)extract-shard.sh "$(or $(BIN),-)" $(model) $(MAX_SIZE) $(or $(SCALES),-) \
	$(or $(THREADS),-) $(1) $(DEVICE) $(or $(PRECISION),-) $(GPUS) $(DAMAGED)
# A distractor shard's tk-rank (OpenMP, every core by default) gets the
# same share (job-threads.sh, on the machine that runs it).
rank_threads = $$(bash $(here)job-threads.sh $(or $(THREADS),-) $(host_jobs))
# parts DIR N: the shard files of a list in N shards
parts = $(foreach i,$(shell seq 0 $$(($(2) - 1))),$(1)/part-$(i)-of-$(2).bin)
# run_shards LIST N DIR: the missing shards of LIST, through GNU parallel
run_shards = mkdir -p $(3) && seq 0 $$(($(2) - 1)) | $(par) $(call shard,$(host_jobs)) $(1) {} $(2) $(3)/part-{}-of-$(2).bin

db_parts := $(call parts,$(o)/db,$(SHARDS))
r1m_parts := $(call parts,$(r),$(R1M_SHARDS))
# A failed job or a signal must not take the shards finished in this run
# with it: make would delete every target of the group whose file changed
# (.DELETE_ON_ERROR, and on a signal in any case).  A shard gets its name
# only when it is complete (extract-shard.sh), so none is half-written.
.PRECIOUS: $(db_parts) $(r1m_parts)

.PHONY: all FORCE
# (the folders' settings checked first, before anything is computed)
all: $(o)/config $(if $(suffix),$(r)/config) $(o)/map$(suffix).txt
	@cat $(o)/map$(suffix).txt

# The settings of each folder, checked at every run: written into a new
# folder, never changed; a folder made otherwise stops the run.
# (pipelines/folder-config.sh MK NAME DIR WHAT AGAIN LINE...)
again = remove $(1) (by default each model file and settings have folders of their own)
$(o)/config: FORCE
	@bash $(here)folder-config.sh eval.mk OUT $(o) descriptors "$(call again,$(o))" \
	    $(cfg) 'dataset $(DATASET)'
$(r)/config: FORCE
	@bash $(here)folder-config.sh eval.mk R1M_DIR $(r) descriptors "$(call again,$(r))" $(cfg)
FORCE:

$(o)/db.list: $(o)/config
	$(tk)tk-list $(DATASET) --root $(data) >$@.tmp && mv $@.tmp $@

$(o)/q.list: $(o)/config
	$(tk)tk-list $(DATASET) --root $(data) --queries >$@.tmp && mv $@.tmp $@

$(r)/r1m.list: $(r)/config
	$(tk)tk-list revisitop1m --root $(data) >$@.tmp && mv $@.tmp $@

# One recipe makes every missing shard (grouped targets, make 4.3).
$(db_parts) &: $(o)/db.list $(o)/config
	$(call run_shards,$<,$(SHARDS),$(o)/db)

$(r1m_parts) &: $(r)/r1m.list $(r)/config
	$(call run_shards,$<,$(R1M_SHARDS),$(r))

$(o)/db.bin: $(db_parts)
	cat $^ >$@.tmp && mv $@.tmp $@

$(o)/q.bin: $(o)/q.list $(o)/config
	$(call shard,1) $< 0 1 $@

$(o)/ranks.bin: $(o)/q.bin $(o)/db.bin
	$(tk)tk-rank --quiet $(RANK_OPTS) $^ >$@.tmp && mv $@.tmp $@

# The dataset and each distractor shard ranked apart (in full), then merged:
# shard i of the L distractors starts at len(imlist) + floor(i * L / N).
$(o)/ranks+1m.bin: $(o)/q.bin $(o)/db.bin $(r1m_parts)
	@mkdir -p $(o)/r1m-ranks
	$(tk)tk-rank --quiet $(o)/q.bin $(o)/db.bin >$(o)/r1m-ranks/db.bin
	printf '%s\n' $(r1m_parts) | $(par) '[ -e $(o)/r1m-ranks/{/} ] || \
	    { OMP_NUM_THREADS=$(rank_threads) $(tk)tk-rank --quiet $(o)/q.bin {} >$(o)/r1m-ranks/{/}.tmp && mv $(o)/r1m-ranks/{/}.tmp $(o)/r1m-ranks/{/}; }'
	n=$$(wc -l <$(o)/db.list); l=$$(wc -l <$(r)/r1m.list); off=0; \
	for i in $$(seq 0 $$(($(R1M_SHARDS) - 1))); do off="$$off,$$((n + i * l / $(R1M_SHARDS)))"; done; \
	$(tk)tk-rank --merge $$off $(o)/r1m-ranks/db.bin \
	    $(patsubst $(r)/%,$(o)/r1m-ranks/%,$(r1m_parts)) >$@.tmp
	mv $@.tmp $@ && rm -r $(o)/r1m-ranks

$(o)/map$(suffix).txt: $(o)/ranks$(suffix).bin $(GND)
	$(tk)tk-map --json --per-query $(GND) $< >$(o)/map$(suffix).json
	$(tk)tk-map $(GND) $< >$@.tmp && mv $@.tmp $@
