# The two commands: `make demo` and `make test`. Both create .venv and install on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test bench clean

$(BIN)/quanzu: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

demo: $(BIN)/quanzu
	$(BIN)/quanzu demo

test: $(BIN)/quanzu
	$(BIN)/ruff check service dispatch geo workers mobile_api tests bench
	$(BIN)/python -m pytest -q

bench: $(BIN)/quanzu
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/beats.py
	$(BIN)/python bench/push_latency.py

clean:
	rm -rf $(VENV) .quanzu .pytest_cache
