# The pipeline: data -> train -> quantize -> export -> android_bench.
#   make export                 set up .venv, fetch data, train, quantize, export
#   make test                   the fast test suite; CI adds the slow and arm ones
# Knobs (empty = the defaults in train/config.py): ARCH ALPHA RES EPOCHS DATA OUT

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
OUT    ?= build

ARCH   ?=
ALPHA  ?=
RES    ?=
EPOCHS ?=
DATA   ?=
RESUME ?=

TRAIN_ARGS := $(if $(ARCH),--arch $(ARCH)) $(if $(ALPHA),--alpha $(ALPHA)) \
              $(if $(RES),--resolution $(RES)) $(if $(EPOCHS),--epochs $(EPOCHS)) \
              $(if $(DATA),--data $(DATA))

# Markers deselected by default; CI passes MARK="not network and not device".
MARK   ?= not slow and not arm and not network and not device

SRC_DATA  := $(wildcard imagedata/*.py)
SRC_TRAIN := $(wildcard train/*.py)

.PHONY: all venv train export profile test clean FORCE
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

$(OUT)/model.keras: $(OUT)/.train-args $(SRC_DATA) $(SRC_TRAIN) $(STAMP)
	$(PY) -m train fit $(TRAIN_ARGS) --out $(OUT) $(if $(RESUME),--resume)

train: $(OUT)/model.keras

export: train

profile: $(STAMP)
	$(PY) -m train profile $(if $(ARCH),--arch $(ARCH)) $(if $(ALPHA),--alpha $(ALPHA)) \
	  $(if $(RES),--resolution $(RES),--resolution 224)

test: $(STAMP)
	$(PY) -m pytest -m "$(MARK)" $(PYTEST_ARGS)

clean:
	rm -rf $(OUT)

FORCE:
