# The pipeline: data -> train -> quantize -> export -> android_bench.
#   make export                 set up .venv, fetch data, train, quantize, export, evaluate
#   make bench                  measure every variant here, then merge all results into OUT/bench/report.*
#   make bench TARGET=ssh://pi@raspberrypi THREADS=1,2,4    the same on a Pi, over ssh (key login)
#   make pi-emu                 (root) build the emulated arm64 Pi once, cached in ~/.cache/mobilenet-deploy/pi-emu;
#                               then make bench TARGET=pi-emu runs every variant in it with each runtime
#   make pi-emu-bullseye        (root) the same on Debian bullseye, Python 3.9: TARGET=pi-emu-bullseye
#   make sweep                  train, export and bench the grid in sweep.toml (SWEEP=grid.toml) into OUT/sweep
#   make settings               every knob in effect for OUT, and where it comes from
#   make appendix               re-measure every table of the README's appendix on this machine
#   make test                   the fast test suite; CI adds the slow and arm ones
# Knobs (defaults in train/config.py): ARCH ALPHA RES EPOCHS DATA OUT
#   MINIMALISTIC=1 (with ARCH=v3-small or v3-large: no squeeze-and-excite, hard-swish or 5x5 kernels)
#   and for quantize/export (defaults in quantize/config.py, export/config.py):
#   VARIANTS (comma-separated) IO (uint8 for apps, int8 for NPUs) COLOR (rgb, as_trained) CALIB GRANULARITY EVAL_SIZE
#   MAX_DROP=PTS: int8 may lose at most PTS top-1 points on val, else its worst layers stay float32
# A knob not given keeps the value the build in OUT was made with (read from model.json,
# quantize/quantize.json, manifest.json), so `make bench` never undoes `make export MAX_DROP=0.5`;
# KNOB= (given empty) goes back to the default. Settings compare by meaning (pipeline/knobs.py):
# `make export ALPHA=0.5`, the default spelled out, does nothing when the build has it.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
OUT    ?= build

TRAIN_KNOBS    := ARCH MINIMALISTIC ALPHA RES EPOCHS DATA
QUANTIZE_KNOBS := VARIANTS IO COLOR CALIB GRANULARITY MAX_DROP
EXPORT_KNOBS   := EVAL_SIZE
RESUME ?=

# Benchmark knobs: TARGET local, ssh://user@host[:port], pi-emu, pi-emu-bullseye, ...; THREADS e.g.
# 1,2,4; BENCH_PYTHON the target's Python (default: this venv's for local, python3 over ssh);
# SSH_KEY a private key (ssh -i) and SSH_OPTIONS ssh -o options, space-separated
# (SSH_OPTIONS="Port=2222 UserKnownHostsFile=~/.ssh/pi_hosts"), as -i and -o of the CLI.
TARGET       ?= local
THREADS      ?=
BENCH_PYTHON ?=
SSH_KEY      ?=
SSH_OPTIONS  ?=
SSH_ARGS   = $(if $(SSH_KEY),-i $(SSH_KEY)) $(foreach o,$(SSH_OPTIONS),-o $(o))
BENCH_ARGS = --target $(TARGET) $(if $(THREADS),--threads $(THREADS)) \
             $(if $(BENCH_PYTHON),--python $(BENCH_PYTHON)) $(SSH_ARGS)

# Each stage's settings, resolved by pipeline/knobs.py from the knobs given to make (command
# line or environment), else those recorded in OUT, else the defaults: "same|changed|new" and
# the stage's options. Only for the goals that build; it needs no TensorFlow (about 0.1 s).
KNOBS_PY := $(if $(wildcard $(PY)),$(PY),$(PYTHON))
given = $(foreach k,$(1),$(if $(filter command line environment,$(origin $(k))),\
          '$(if $(filter environment,$(origin $(k))),env:)$(k)=$(subst ','\'',$($(k)))'))
resolve = $(shell $(KNOBS_PY) -m pipeline.knobs $(1) --out '$(OUT)' $(call given,$(2)))
BUILD_GOALS := all train quantize export bench
ifneq ($(if $(MAKECMDGOALS),$(filter $(BUILD_GOALS) $(OUT)/%,$(MAKECMDGOALS)),all),)
TRAIN    := $(call resolve,train,$(TRAIN_KNOBS))
QUANTIZE := $(call resolve,quantize,$(QUANTIZE_KNOBS))
EXPORT   := $(call resolve,export,$(EXPORT_KNOBS))
$(foreach v,TRAIN QUANTIZE EXPORT,$(if $(filter error,$(firstword $($(v)))),$(error $(wordlist 2,999,$($(v))))))
$(foreach v,TRAIN QUANTIZE EXPORT,$(if $($(v)),,$(error pipeline/knobs.py did not run with '$(KNOBS_PY)': \
  Python 3.11 is required (apt-get install python3.11 python3.11-venv, or pass PYTHON=/path/to/python3.11))))
endif
# A stage whose settings changed is out of date whatever its files' times say; otherwise
# only its real prerequisites count, so `make -q` and `make -n` answer truthfully.
changed = $(if $(filter same,$(firstword $(1))),,FORCE)
options = $(wordlist 2,999,$(1))

# Markers deselected by default; CI passes MARK="not network and not device".
MARK   ?= not slow and not arm and not network and not device

SRC_DATA  := $(wildcard imagedata/*.py)
SRC_TRAIN := $(wildcard train/*.py) pipeline/publish.py
# The accuracy budget (MAX_DROP) measures top-1 with the device evaluator.
SRC_QUANTIZE := $(wildcard quantize/*.py) android_bench/device/evaluate.py pipeline/publish.py
# Only what export runs: the benchmark host side can change without re-exporting.
SRC_EXPORT   := $(wildcard export/*.py) android_bench/device/evaluate.py android_bench/device/tflite_metadata.py \
                android_bench/device/measure.py pipeline/publish.py

.PHONY: all venv train quantize export bench pi-emu pi-emu-bullseye settings sweep profile appendix test clean FORCE
all: export

venv: $(STAMP)
$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' || \
	  { echo "Python 3.11 is required, found $$($(PYTHON) --version 2>&1) at '$(PYTHON)'. Install it (apt-get install python3.11 python3.11-venv) or pass PYTHON=/path/to/python3.11"; exit 1; }
	@$(PYTHON) -m venv $(VENV) || { echo "creating $(VENV) failed: on Debian/Ubuntu, apt-get install python3-venv"; exit 1; }
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[test]'
	@touch $@

# The venv is order-only: re-creating it (make venv after pyproject.toml changed) does not
# retrain; each artifact records the tool versions it was made with.
$(OUT)/model.keras: $(call changed,$(TRAIN)) $(SRC_DATA) $(SRC_TRAIN) | $(STAMP)
	$(PY) -m train fit $(call options,$(TRAIN)) --out $(OUT) $(if $(RESUME),--resume)

train: $(OUT)/model.keras

# quantize.json and manifest.json are written last by their stage: each stands for all its outputs.
$(OUT)/quantize/quantize.json: $(OUT)/model.keras $(call changed,$(QUANTIZE)) $(SRC_DATA) $(SRC_QUANTIZE) | $(STAMP)
	$(PY) -m quantize --model $(OUT)/model.keras --out $(OUT)/quantize $(call options,$(QUANTIZE))

$(OUT)/manifest.json: $(OUT)/quantize/quantize.json $(call changed,$(EXPORT)) $(SRC_DATA) $(SRC_EXPORT) | $(STAMP)
	$(PY) -m export run --out $(OUT) --quantized $(OUT)/quantize $(call options,$(EXPORT))

quantize: $(OUT)/quantize/quantize.json

export: $(OUT)/manifest.json

# The emulated Pis (as root): Debian bookworm (Python 3.11) or bullseye (Python 3.9), arm64, with
# tflite-runtime and ai-edge-litert under qemu-user: ~5-10 min once each, seconds after.
pi-emu: | $(STAMP)
	$(PY) -m android_bench pi-emu

pi-emu-bullseye: | $(STAMP)
	$(PY) -m android_bench pi-emu --release bullseye

EMULATED := $(if $(filter pi-emu pi5-emu,$(TARGET)),pi-emu) $(if $(filter pi-emu-bullseye,$(TARGET)),pi-emu-bullseye)

# Always runs: a benchmark is a measurement of now. The report is rebuilt even when some
# variants failed on the target (they show as failed); make still exits non-zero then.
bench: $(OUT)/manifest.json $(EMULATED)
	$(PY) -m android_bench run $(strip $(BENCH_ARGS)) --out $(OUT)/bench $(OUT)/manifest.json; rc=$$?; \
	  $(PY) -m android_bench report --out $(OUT)/bench && exit $$rc

settings:
	@$(KNOBS_PY) -m pipeline.knobs settings --out '$(OUT)' $(call given,$(TRAIN_KNOBS) $(QUANTIZE_KNOBS) $(EXPORT_KNOBS))

# The grid file sets the target and threads; TARGET, THREADS and BENCH_PYTHON given to make override it
# (SSH_KEY and SSH_OPTIONS as for bench).
# Every stage is cached per configuration in OUT/sweep/<config-id>/, so this reruns only what changed.
SWEEP ?= sweep.toml
SWEEP_ARGS = $(if $(filter command line environment,$(origin TARGET)),--target $(TARGET)) \
             $(if $(THREADS),--threads $(THREADS)) $(if $(BENCH_PYTHON),--python $(BENCH_PYTHON)) $(SSH_ARGS)
sweep: | $(STAMP)
	$(PY) -m android_bench sweep $(SWEEP) --out $(OUT)/sweep $(strip $(SWEEP_ARGS))

profile: $(STAMP)
	$(PY) -m train profile $(if $(ARCH),--arch $(ARCH)) $(if $(MINIMALISTIC),--minimalistic) $(if $(ALPHA),--alpha $(ALPHA)) \
	  $(if $(RES),--resolution $(RES),--resolution 224)

# Every table of the README's appendix, measured here (about an hour on 2 cores): markdown on stdout.
appendix: | $(STAMP)
	$(PY) benchmarks/appendix.py --out $(OUT)

test: $(STAMP)
	$(PY) -m pytest -m "$(MARK)" $(PYTEST_ARGS)

clean:
	rm -rf $(OUT)

FORCE:
