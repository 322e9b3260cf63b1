# The README's set-up commands. Each target creates the virtual environment on first use.
#   make demo   - the quickstart experiment on the embedded default data
#   make test   - the test suite
#   make bench  - every benchmark under benchmarks/ (one JSON line each)
#   make lint   - ruff and the type checker (mypy, configured in pyproject.toml)
PYTHON ?= python3
VENV ?= .venv
# The CPU build of PyTorch. On a GPU machine: make demo TORCH_SPEC="torch --index-url https://download.pytorch.org/whl/cu128"
TORCH_SPEC ?= torch==2.13.0
PY := $(VENV)/bin/python
PIP := $(PY) -m pip

.PHONY: env demo test bench lint clean

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

test: env
	$(PY) -m pytest -q

bench: env
	@for script in benchmarks/bench_*.py; do $(PY) $$script || exit 1; done

lint: env
	$(VENV)/bin/ruff check src tests benchmarks scripts
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) prepared runs .pytest_cache
