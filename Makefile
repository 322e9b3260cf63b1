# The README's set-up commands. Each target creates the virtual environment on first use.
#   make demo   - the quickstart experiment on the embedded default data
#   make test   - the test suite
#   make bench  - every benchmark under benchmarks/ (one JSON line each)
#   make lint   - ruff and the type checker (mypy, configured in pyproject.toml)
#   make docs   - the handbook (docs/, mkdocs.yml) built into site/, strictly: a broken link fails
PYTHON ?= python3
VENV ?= .venv
# PyTorch goes in first, on its own, so that pip never picks a build while resolving the project.
# What a spec brings:
#   torch==2.13.0 from public PyPI: on Linux x86-64 the CUDA build (several GB of nvidia-* wheels
#     with it); on macOS, Windows and Linux aarch64 the CPU build.
#   TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu": the CPU build, any OS.
#   TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128": CUDA 12.8.
# The default works as a CPU install only where pip finds a local CPU wheel (PIP_FIND_LINKS holding
# torch-2.13.0+cpu, which satisfies ==2.13.0, as on the project's build machines); on a Linux
# x86-64 machine with the public index, choose the CPU build with the second spec.
TORCH_SPEC ?= torch==2.13.0
PY := $(VENV)/bin/python
PIP := $(PY) -m pip

.PHONY: env demo test bench lint docs clean

$(VENV)/.installed: pyproject.toml Makefile constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q $(TORCH_SPEC)
	$(PIP) install -q -c constraints.txt -e '.[all,dev]'
	# tinysoundfont renders MIDI in-process; its declared pyaudio dependency is for playback only.
	$(PIP) install -q --no-deps -c constraints.txt 'tinysoundfont>=0.3.6'
	touch $@

env: $(VENV)/.installed

demo: env
	$(VENV)/bin/curricmusic run experiments/quickstart.toml --out runs/quickstart --resume

# The tests run in parallel, one test file per worker process (pytest-xdist): one worker per core
# this process may use, at most 4 (a container can report more cores than it is given);
# TEST_WORKERS=0 runs them all in one process.
TEST_WORKERS ?= $(shell $(PYTHON) -c "import os; print(min(4, len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count() or 1))")
test: env
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile

bench: env
	@for script in benchmarks/bench_*.py; do $(PY) $$script || exit 1; done

lint: env
	$(VENV)/bin/ruff check src tests benchmarks scripts docs
	$(VENV)/bin/mypy

docs: env
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --site-dir site

clean:
	rm -rf $(VENV) prepared runs site .pytest_cache
