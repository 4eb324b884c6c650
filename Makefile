# Two commands do all set-up from a fresh clone (they need python3 with venv, and PyPI):
#   make demo   the demo suite under examples/, in .venv-demo
#   make test   the plugin's own tests, in .venv (with the TensorRT wheels the contract tests read)

PYTHON ?= python3
VENV ?= .venv
DEMO_VENV ?= .venv-demo
# A CPU build of torch for the torch= tests (this pin lies on the CI machines' disk; elsewhere
# give e.g. TORCH_PACKAGE="torch --index-url https://download.pytorch.org/whl/cpu", or leave it
# empty to skip those tests). Pinned: an open range would fetch a multi-GB CUDA build.
TORCH_PACKAGE ?= torch==2.13.0+cpu
# Packages the plugin's own tests need beyond .[test,contract], e.g. on a GPU runner:
#   make test EXTRA_TEST_PACKAGES="cupy-cuda13x"
EXTRA_TEST_PACKAGES ?=
# Extra pytest arguments, e.g. make test PYTEST_ARGS="-n 2 -x"
PYTEST_ARGS ?=
# The HTML report make demo writes (an absolute path: a relative one is under examples/).
DEMO_REPORT ?= $(CURDIR)/build/demo-report.html

.PHONY: demo test lint models clean

# The demo's HTML report is written whatever the tests' outcome; its path is the last line.
demo: $(DEMO_VENV)/.installed
	$(DEMO_VENV)/bin/python -m pytest examples --trt-report-html=$(DEMO_REPORT) $(PYTEST_ARGS); status=$$?; \
	if [ -f $(DEMO_REPORT) ]; then echo "pytest-trt HTML report: $(DEMO_REPORT)"; fi; exit $$status

test: lint
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

# Lint and type-check (configured in pyproject.toml); make test runs these first.
lint: $(VENV)/.installed
	$(VENV)/bin/ruff check pytest_trt tests bench examples conftest.py
	$(VENV)/bin/mypy

# Re-made when the dependencies in pyproject.toml change; the package itself is installed
# editable, so code changes need no reinstall.
$(DEMO_VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(DEMO_VENV)
	$(DEMO_VENV)/bin/python -m pip install --upgrade pip
	$(DEMO_VENV)/bin/python -m pip install -e ".[report]"
	touch $@

$(VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --upgrade pip
	$(VENV)/bin/python -m pip install -e ".[test,contract]" $(if $(TORCH_PACKAGE),$(TORCH_PACKAGE) onnxscript) $(EXTRA_TEST_PACKAGES)
	touch $@

# Rebuild the example models (deterministic) and check them with onnxruntime.
models: $(DEMO_VENV)/.installed
	$(DEMO_VENV)/bin/python examples/make_models.py
	$(DEMO_VENV)/bin/python examples/make_models.py --check

clean:
	rm -rf $(VENV) $(DEMO_VENV) build *.egg-info
