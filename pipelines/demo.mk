SHELL := /bin/bash
# pipelines/demo.mk - the README's first command (make demo).
# Until the embedded benchmark lands (issue 8), a smoke run of every tool
# that exists: descriptors made with NumPy travel through tk-cat and back.
BIN ?= bin
PY ?= /usr/bin/python3
OUT ?= demo

.PHONY: demo
demo:
	@mkdir -p $(OUT)
	$(PY) -c "import numpy as np; np.save('$(OUT)/desc.npy', np.random.default_rng(0).standard_normal((5, 8)).astype(np.float32))"
	$(BIN)/tk-cat --from-npy $(OUT)/desc.npy --tensor desc > $(OUT)/desc.bin
	$(BIN)/tk-cat $(OUT)/desc.bin | $(BIN)/tk-cat --info
	$(BIN)/tk-cat --to-npy $(OUT)/back.npy $(OUT)/desc.bin
	cmp <(tail -c 160 $(OUT)/desc.npy) <(tail -c 160 $(OUT)/back.npy) && echo "demo: round trip exact"
