# The pipeline: data -> train -> quantize -> export -> android_bench.
#   make export                 set up .venv, fetch data, train, quantize, export, evaluate
#   make bench                  measure every variant here, then merge all results into OUT/bench/report.*
#   make bench TARGET=ssh://pi@raspberrypi THREADS=1,2,4    the same on a Pi, over ssh (key login)
#   make pi-emu                 (root) build the emulated arm64 Pi once, cached in ~/.cache/mobilenet-deploy/pi-emu;
#                               then make bench TARGET=pi-emu runs every variant in it with each runtime
#   make sweep                  train, export and bench the grid in sweep.toml (SWEEP=grid.toml) into OUT/sweep
#   make test                   the fast test suite; CI adds the slow and arm ones
# Knobs (empty = the defaults in train/config.py): ARCH ALPHA RES EPOCHS DATA OUT
#   MINIMALISTIC=1 (with ARCH=v3-small or v3-large: no squeeze-and-excite, hard-swish or 5x5 kernels)
#   and for quantize/export (defaults in quantize/config.py, export/config.py):
#   VARIANTS (comma-separated) IO CALIB GRANULARITY EVAL_SIZE
#   MAX_DROP=PTS: int8 may lose at most PTS top-1 points on val, else its worst layers stay float32

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
OUT    ?= build

ARCH   ?=
MINIMALISTIC ?=
ALPHA  ?=
RES    ?=
EPOCHS ?=
DATA   ?=
RESUME ?=
VARIANTS    ?=
IO          ?=
CALIB       ?=
GRANULARITY ?=
EVAL_SIZE   ?=
MAX_DROP    ?=

TRAIN_ARGS := $(if $(ARCH),--arch $(ARCH)) $(if $(MINIMALISTIC),--minimalistic) $(if $(ALPHA),--alpha $(ALPHA)) \
              $(if $(RES),--resolution $(RES)) $(if $(EPOCHS),--epochs $(EPOCHS)) \
              $(if $(DATA),--data $(DATA))
QUANTIZE_ARGS := $(if $(VARIANTS),--variants $(VARIANTS)) $(if $(IO),--io $(IO)) \
                 $(if $(CALIB),--calibration-size $(CALIB)) $(if $(GRANULARITY),--granularity $(GRANULARITY)) \
                 $(if $(MAX_DROP),--max-drop $(MAX_DROP))
EXPORT_ARGS   := $(if $(EVAL_SIZE),--eval-size $(EVAL_SIZE))

# Benchmark knobs: TARGET local or ssh://user@host[:port]; THREADS e.g. 1,2,4; BENCH_PYTHON
# the target's Python (default: this venv's for local, python3 over ssh).
TARGET       ?= local
THREADS      ?=
BENCH_PYTHON ?=
BENCH_ARGS := --target $(TARGET) $(if $(THREADS),--threads $(THREADS)) \
              $(if $(BENCH_PYTHON),--python $(BENCH_PYTHON))

# Markers deselected by default; CI passes MARK="not network and not device".
MARK   ?= not slow and not arm and not network and not device

SRC_DATA  := $(wildcard imagedata/*.py)
SRC_TRAIN := $(wildcard train/*.py)
# The accuracy budget (MAX_DROP) measures top-1 with the device evaluator.
SRC_QUANTIZE := $(wildcard quantize/*.py) android_bench/device/evaluate.py
# Only what export runs: the benchmark host side can change without re-exporting.
SRC_EXPORT   := $(wildcard export/*.py) android_bench/device/evaluate.py android_bench/device/tflite_metadata.py

.PHONY: all venv train quantize export bench pi-emu sweep profile test clean FORCE
all: export

venv: $(STAMP)
$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' || \
	  { echo "Python 3.11 is required, found $$($(PYTHON) --version 2>&1) at '$(PYTHON)'. Install it (apt-get install python3.11 python3.11-venv) or pass PYTHON=/path/to/python3.11"; exit 1; }
	@$(PYTHON) -m venv $(VENV) || { echo "creating $(VENV) failed: on Debian/Ubuntu, apt-get install python3-venv"; exit 1; }
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[test]'
	@touch $@

# The training arguments are part of the model's inputs: a change re-trains.
$(OUT)/.train-args: FORCE
	@mkdir -p $(OUT)
	@echo '$(TRAIN_ARGS)' | cmp -s - $@ || echo '$(TRAIN_ARGS)' > $@

# Likewise for quantize and export: a changed knob redoes that stage and the ones after it.
$(OUT)/.quantize-args: FORCE
	@mkdir -p $(OUT)
	@echo '$(QUANTIZE_ARGS)' | cmp -s - $@ || echo '$(QUANTIZE_ARGS)' > $@

$(OUT)/.export-args: FORCE
	@mkdir -p $(OUT)
	@echo '$(EXPORT_ARGS)' | cmp -s - $@ || echo '$(EXPORT_ARGS)' > $@

$(OUT)/model.keras: $(OUT)/.train-args $(SRC_DATA) $(SRC_TRAIN) $(STAMP)
	$(PY) -m train fit $(TRAIN_ARGS) --out $(OUT) $(if $(RESUME),--resume)

train: $(OUT)/model.keras

# quantize.json and manifest.json are written last by their stage: each stands for all its outputs.
$(OUT)/quantize/quantize.json: $(OUT)/model.keras $(OUT)/.quantize-args $(SRC_DATA) $(SRC_QUANTIZE) $(STAMP)
	$(PY) -m quantize --model $(OUT)/model.keras --out $(OUT)/quantize $(QUANTIZE_ARGS)

$(OUT)/manifest.json: $(OUT)/quantize/quantize.json $(OUT)/.export-args $(SRC_DATA) $(SRC_EXPORT) $(STAMP)
	$(PY) -m export run --out $(OUT) --quantized $(OUT)/quantize $(EXPORT_ARGS)

quantize: $(OUT)/quantize/quantize.json

export: $(OUT)/manifest.json

# Always runs: a benchmark is a measurement of now. The report is rebuilt even when some
# variants failed on the target (they show as failed); make still exits non-zero then.
# Debian bookworm arm64 + tflite-runtime + ai-edge-litert under qemu-user: ~5 min once, seconds after.
pi-emu: $(STAMP)
	$(PY) -m android_bench pi-emu

bench: $(OUT)/manifest.json $(if $(filter pi-emu,$(TARGET)),pi-emu)
	$(PY) -m android_bench run $(BENCH_ARGS) --out $(OUT)/bench $(OUT)/manifest.json; rc=$$?; \
	  $(PY) -m android_bench report --out $(OUT)/bench && exit $$rc

# The grid file sets the target and threads; TARGET, THREADS and BENCH_PYTHON given to make override it.
# Every stage is cached per configuration in OUT/sweep/<config-id>/, so this reruns only what changed.
SWEEP ?= sweep.toml
SWEEP_ARGS = $(if $(filter command line environment,$(origin TARGET)),--target $(TARGET)) \
             $(if $(THREADS),--threads $(THREADS)) $(if $(BENCH_PYTHON),--python $(BENCH_PYTHON))
sweep: $(STAMP)
	$(PY) -m android_bench sweep $(SWEEP) --out $(OUT)/sweep $(strip $(SWEEP_ARGS))

profile: $(STAMP)
	$(PY) -m train profile $(if $(ARCH),--arch $(ARCH)) $(if $(MINIMALISTIC),--minimalistic) $(if $(ALPHA),--alpha $(ALPHA)) \
	  $(if $(RES),--resolution $(RES),--resolution 224)

test: $(STAMP)
	$(PY) -m pytest -m "$(MARK)" $(PYTEST_ARGS)

clean:
	rm -rf $(OUT)

FORCE:
