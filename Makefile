# The two commands: `make demo` and `make test`. Both create .venv and install on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test bench clean test-deps

$(BIN)/quanzu: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

demo: $(BIN)/quanzu
	$(BIN)/quanzu demo

test: $(BIN)/quanzu test-deps
	$(BIN)/ruff check service dispatch geo workers mobile_api tests bench
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q

# What the suite starts or runs that pip cannot bring: Debian's Chromium and CJK fonts for the
# browser tests (never `playwright install`), docker-compose to validate the compose file (no engine
# needed), Kannel with its fake SMSC and baresip for the real SMS and SIP channels. As root they
# are installed; otherwise make test fails saying what to install.
TEST_DEBS := chromium fonts-noto-cjk docker-compose kannel kannel-extras baresip-core
test-deps:
	@missing=""; \
	[ -x /usr/bin/chromium ] || missing="$$missing chromium"; \
	fc-list 2>/dev/null | grep -q "Noto Sans CJK" || missing="$$missing fonts-noto-cjk"; \
	command -v docker-compose >/dev/null || missing="$$missing docker-compose"; \
	[ -x /usr/sbin/bearerbox ] || missing="$$missing kannel"; \
	[ -x /usr/lib/kannel/test/fakesmsc ] || missing="$$missing kannel-extras"; \
	command -v baresip >/dev/null || missing="$$missing baresip-core"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get install -y -q $$missing >/dev/null || { apt-get update -q >/dev/null && apt-get install -y -q $$missing >/dev/null; }; \
	  else \
	    echo "make test: the suite needs Debian packages:$$missing; install them: sudo apt-get install -y$$missing" >&2; exit 1; \
	  fi; \
	fi

# Every benchmark, each against a baseline measured in the same run (BENCHMARKS.md). The full
# sizes take about an hour on 2 cores; each script takes smaller sizes (--help).
bench: $(BIN)/quanzu
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/beats.py
	$(BIN)/python bench/push_latency.py
	$(BIN)/python bench/sockets.py
	$(BIN)/python bench/ladder.py
	$(BIN)/python bench/audit.py
	$(BIN)/python bench/stats.py
	$(BIN)/python bench/validation.py
	$(BIN)/python bench/screen.py
	$(BIN)/python bench/sms_gateway.py
	$(BIN)/python bench/city.py --full
	$(BIN)/python bench/historic.py
	$(BIN)/python bench/kills.py

clean:
	@# as root the embedded PostgreSQL may live under /var/tmp (service/core/embedded.py)
	@d=$$(cat .quanzu/pg/server-dir 2>/dev/null); case "$$d" in /var/tmp/quanzu-pg-*) rm -rf "$$d";; esac
	rm -rf $(VENV) .quanzu .pytest_cache
