# Two entry points for a fresh machine (see README): `make dashboard` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
PORT ?= 8866

.PHONY: install demo dashboard panel test test-fast bench chromium clean

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch/torchvision first, pinned to the pair that installs from local files here.
	$(PY) -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install -q -e ".[test]"
	touch $@

install: $(VENV)/.installed

# Debian's Chromium for the real-browser tests (Playwright drives it; never `playwright install`).
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; fi; }

demo: install
	$(PY) -m stem_fsl_widgets demo --out out

# Kernel culling: a closed or reloaded tab leaves its kernel without a connection; such a
# kernel idle for CULL_IDLE seconds is shut down (checked every CULL_INTERVAL s). Open tabs
# (connected kernels) are never culled. The same flags: `stem-fsl dashboard` (cli.py).
CULL_IDLE ?= 300
CULL_INTERVAL ?= 60
VOILA_CULLING = --MappingKernelManager.cull_idle_timeout=$(CULL_IDLE) \
	--MappingKernelManager.cull_interval=$(CULL_INTERVAL) \
	--MappingKernelManager.cull_connected=False --MappingKernelManager.cull_busy=False

dashboard: install
	SFW_DEMO=1 $(VENV)/bin/voila stem_fsl_widgets/apps/dashboard.ipynb --port=$(PORT) --Voila.ip=127.0.0.1 $(VOILA_CULLING)

panel: install
	$(PY) -m stem_fsl_widgets serve

test: install chromium
	$(PY) -m pytest -m "slow or not slow"

test-fast: install
	$(PY) -m pytest -m "not browser and not slow"

bench: install
	$(PY) -m stem_fsl_widgets.bench

clean:
	rm -rf $(VENV) out .pytest_cache
