# The README's commands. Each target creates or reuses .venv and installs what is missing.
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

# Offline data: the course's archives beside the checkout (as CI has them), if present.
# An explicit CONVBOOK_DATA in the environment wins.
CONVBOOK_DATA ?= $(abspath $(wildcard ../shared/data))
export CONVBOOK_DATA
export MPLBACKEND := Agg
export PYTHONHASHSEED := 0
# OpenMP threads sleep instead of spinning while they wait: same results, and a busy
# machine no longer slows small-batch training twentyfold.
export OMP_WAIT_POLICY := PASSIVE
# glibc keeps freed memory for reuse instead of handing every block over 32 MB back to the
# kernel: chapter 8's full-batch steps (54,000 images at once) otherwise spend more time in
# page faults than in arithmetic. Same results; benchmarks/allocator.py measures it.
export MALLOC_MMAP_MAX_ := 0
export MALLOC_TRIM_THRESHOLD_ := 100000000000

.PHONY: install system-deps test test-shifted unit execute book browser-test pdf screenshots bench clean

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

# Debian packages (needs root): a headless browser with its Selenium driver (browser-test,
# screenshots, pdf) and poppler-utils to read the PDF back (pdf). The datasets are set up by
# the commands that need them (scripts/data_setup.py).
system-deps:
	@if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null \
	    || ! command -v pdftotext >/dev/null; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    chromium chromium-driver poppler-utils; \
	fi

# The datasets first: scripts/data_setup.py finds, installs or downloads each one (where it
# looks: README, "Data without the network"); when none works it says what to do and make
# stops here.
DATA_SETUP := $(PY) scripts/data_setup.py

# Every chapter re-executed and compared by nbval, and the unit tests of convbook.
# The tests themselves never download (CONVBOOK_OFFLINE=1). TEST_WORKERS processes
# (pytest-xdist) run test files side by side, each file (a chapter's cells, a test
# module) whole on one worker and in order. Each keeps torch's default thread count:
# with one thread per worker the trained numbers round differently from `make execute`'s,
# and chapter 1's learning-rate choice, decided by noise-sized differences, changed.
# TEST_WORKERS=1 runs everything in one process.
TEST_WORKERS ?= 2
ifeq ($(TEST_WORKERS),1)
PYTEST_WORKERS :=
else
PYTEST_WORKERS := -n $(TEST_WORKERS) --dist loadscope
endif
# CONVBOOK_STRICT=1: a claim of a page that does not hold (cb.claim) is an error here,
# while a reader's own run only prints a line about it.
test: $(STAMP)
	$(DATA_SETUP)
	CONVBOOK_OFFLINE=1 CONVBOOK_STRICT=1 $(PY) -m pytest $(PYTEST_WORKERS)

# Every chapter re-executed under other conditions: every seed shifted by SEED_SHIFT
# (convbook.reproduce) and one thread per worker, so the rounding differs as it does on
# another machine. Every cell must run and every claim of every page must hold; no output
# is compared (nbval's lax mode). What an instructor runs on new hardware; one chapter:
# make test-shifted NB=chapters/06_lenet.ipynb TEST_WORKERS=1 SEED_SHIFT=2
SEED_SHIFT ?= 1
test-shifted: $(STAMP)
	$(DATA_SETUP)
	CONVBOOK_OFFLINE=1 CONVBOOK_STRICT=1 CONVBOOK_SEED_SHIFT=$(SEED_SHIFT) \
	  OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 \
	  $(PY) -m pytest -o addopts="" -p no:cacheprovider --durations=15 --nbval-lax \
	    --nbval-current-env --nbval-cell-timeout=1500 $(PYTEST_WORKERS) $(NB)

# The unit tests alone, without the slow ones (tests marked slow: make test runs those).
unit: $(STAMP)
	$(DATA_SETUP)
	CONVBOOK_OFFLINE=1 CONVBOOK_STRICT=1 $(PY) -m pytest tests -m "not slow"

# Re-execute chapters in place after editing them or convbook: make execute NB=chapters/06_lenet.ipynb
NB ?= $(sort $(wildcard chapters/*.ipynb))
# The kernel loads _ext/figure_alt.py, which writes each figure's titles into its PNG as the
# description the book uses for alt text.
execute: $(STAMP)
	$(DATA_SETUP)
	for nb in $(NB); do \
	  CONVBOOK_OFFLINE=1 CONVBOOK_STRICT=1 PYTHONPATH=$(CURDIR)/_ext $(VENV)/bin/jupyter nbconvert --to notebook \
	    --execute --inplace --ExecutePreprocessor.record_timing=False \
	    --ExecutePreprocessor.timeout=1200 --ExecutePreprocessor.extra_arguments='["--ext=figure_alt"]' \
	    $$nb || exit 1; \
	  $(PY) scripts/merge_streams.py $$nb || exit 1; \
	done

book: $(STAMP)
	$(VENV)/bin/jupyter-book build . -W -n --keep-going

browser-test: book
	$(PY) scripts/browser_check.py _build/html

# One PDF of the whole course: headless Chromium prints the single-page build, then
# tests/test_pdf.py checks it (chapter titles, typeset math, figures, page count).
pdf: $(STAMP)
	$(VENV)/bin/jupyter-book build . --builder singlehtml -W -n --keep-going
	$(PY) scripts/make_pdf.py _build/singlehtml _build/pdf/convbook.pdf $(PDF_OPTIONS)
	CONVBOOK_PDF=_build/pdf/convbook.pdf $(PY) -m pytest -q tests/test_pdf.py

screenshots: book
	$(PY) scripts/screenshots.py _build/html screenshots

# The recipe of the table that speed.md includes (chapter 6's LeNet run: float32,
# channels-last, ten epochs); it rewrites benchmarks/results/lenet_speed_cpu.md.
bench: $(STAMP)
	$(PY) benchmarks/lenet_speed.py --device cpu --epochs 10 --no-amp

clean:
	rm -rf _build
