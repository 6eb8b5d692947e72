# lnlab: `make figures` runs the notebook suite, `make test` runs the tests, `make lab` opens the
# notebooks in JupyterLab. All create .venv first (scripts/setup_env.sh).
# Variables: PROFILE (default reference: the shipped laptop runs, nothing trained), OUTPUT, DEVICE, LNLAB_DATA (and $LNLAB_RUNS from the environment),
# FIGURES_ARGS (more options of `lnlab figures`, e.g. --sweep-taus 0.01 0.04 --dataset tinyimagenet100); LAB_PORT for lab.
PROFILE ?= reference
OUTPUT ?= figures
DEVICE ?= auto
VENV ?= .venv
# Dataset root: keep yours in $LNLAB_DATA; otherwise use the offline packs beside the checkout if present.
LNLAB_DATA ?= $(if $(wildcard ../shared/data/*.npz),$(abspath ../shared/data),$(abspath data))
export LNLAB_DATA

.PHONY: env test figures lab clean-notebooks check-notebooks

env: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml scripts/setup_env.sh jupyter/kernels/lnlab/kernel.json jupyter/lab/settings/overrides.json
	LNLAB_VENV=$(VENV) bash scripts/setup_env.sh
	touch $@

test: env
	$(VENV)/bin/python -m pytest

figures: env
	$(VENV)/bin/lnlab figures --profile $(PROFILE) --output $(OUTPUT) --device $(DEVICE) $(FIGURES_ARGS)

# JupyterLab on notebooks/ with the kernel "lnlab" and the roots of `make figures` (runs are reused); prints the URL.
lab: env
	LNLAB_VENV=$(VENV) bash scripts/lab.sh

check-notebooks: env
	$(VENV)/bin/python tools/check_notebooks.py notebooks

clean-notebooks: env
	$(VENV)/bin/python tools/check_notebooks.py --fix notebooks
