# The two commands: `make demo` and `make test`. Both create .venv and install on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test bench clean browser-deps

$(BIN)/quanzu: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

demo: $(BIN)/quanzu
	$(BIN)/quanzu demo

test: $(BIN)/quanzu browser-deps
	$(BIN)/ruff check service dispatch geo workers mobile_api tests bench
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q

# The browser tests drive Debian's Chromium (never `playwright install`) and need CJK fonts.
browser-deps:
	@if [ ! -x /usr/bin/chromium ] || ! fc-list 2>/dev/null | grep -q "Noto Sans CJK"; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get install -y -q chromium fonts-noto-cjk >/dev/null || { apt-get update -q >/dev/null && apt-get install -y -q chromium fonts-noto-cjk >/dev/null; }; \
	  else \
	    echo "make test: the browser tests need Chromium and CJK fonts; install them: sudo apt-get install -y chromium fonts-noto-cjk" >&2; exit 1; \
	  fi; \
	fi

# Every benchmark, each against a baseline measured in the same run (BENCHMARKS.md). The full
# sizes take about an hour on 2 cores; each script takes smaller sizes (--help).
bench: $(BIN)/quanzu
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/beats.py
	$(BIN)/python bench/push_latency.py
	$(BIN)/python bench/ladder.py
	$(BIN)/python bench/audit.py
	$(BIN)/python bench/stats.py
	$(BIN)/python bench/validation.py

clean:
	@# as root the embedded PostgreSQL may live under /var/tmp (service/core/embedded.py)
	@d=$$(cat .quanzu/pg/server-dir 2>/dev/null); case "$$d" in /var/tmp/quanzu-pg-*) rm -rf "$$d";; esac
	rm -rf $(VENV) .quanzu .pytest_cache
