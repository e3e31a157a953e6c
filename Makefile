# Each target creates .venv (python3 -m venv) when it is missing and installs ganaug with the
# pinned dependencies (constraints.txt) before it runs, so a fresh clone needs nothing by hand.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.ganaug-installed

.PHONY: install test demo lint clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev,imagenet]'
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q

demo:  # installs first when needed, and says what the whole target took, the venv and install included
	@start=$$(date +%s); $(MAKE) --no-print-directory install && $(BIN)/ganaug demo --out demo_out && \
	echo "make demo took $$(( $$(date +%s) - start )) s in all (venv and install included)"

lint: $(STAMP)
	$(BIN)/ruff check ganaug tests benchmarks scripts

clean:
	rm -rf $(VENV) demo_out .pytest_cache .ruff_cache *.egg-info
