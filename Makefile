# cnn-desktop — every target bootstraps .venv itself.
#   make run          set up and start the app on the built-in model
#   make test         set up and run the whole suite headless (pytest, ruff, import contracts)
#   make bench        performance figures as JSON in benchmarks/results/
#   make screenshots  run the real window under Xvfb and write docs/screenshots/*.png
#   make package      the packaged app without Python (FLAVOUR=lite, the default, or full) in
#                     dist/: Linux .tar.gz and .deb; each flavour builds in build/venv-FLAVOUR
#   make package-test smoke-test those artefacts in a bare environment (env -i, no venv)
#   make icons        render resources/icons/*.png, .ico, .icns from the SVG

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# torch/torchvision are pinned to the pair served from local wheels; install them first so
# no other resolver ever pulls a different (multi-GB) build.
TORCH_PINS := torch==2.14.1 torchvision==0.29.1
PYTEST_ARGS ?=
FLAVOUR ?= lite

.PHONY: run test lint bench bench-package screenshots package package-test icons clean \
	system-deps-test system-deps-gui system-deps-package

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet $(TORCH_PINS)
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

system-deps-test:
	@bash packaging/system-deps.sh test

system-deps-gui:
	@bash packaging/system-deps.sh gui

system-deps-package:
	@bash packaging/system-deps.sh package

run: $(STAMP) system-deps-gui
	$(BIN)/cnn-desktop

lint: $(STAMP)
	$(BIN)/ruff check cnn_desktop tests benchmarks
	$(BIN)/ruff format --check cnn_desktop tests benchmarks
	$(BIN)/lint-imports

test: $(STAMP) system-deps-test lint
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

bench: $(STAMP)
	mkdir -p benchmarks/results
	$(BIN)/python -m benchmarks.bench_classify --out benchmarks/results/classify.json
	$(BIN)/python -m benchmarks.bench_ui --out benchmarks/results/ui.json
	$(BIN)/python -m benchmarks.bench_train --out benchmarks/results/train.json

screenshots: $(STAMP)
	@bash packaging/system-deps.sh screenshots
	$(BIN)/python docs/make_screenshots.py --out docs/screenshots

package: $(STAMP) system-deps-package
	bash packaging/build.sh $(FLAVOUR) $(abspath $(BIN))/python

bench-package: $(STAMP)
	mkdir -p benchmarks/results
	$(BIN)/python -m benchmarks.bench_package --out benchmarks/results/package.json

package-test: system-deps-package
	bash packaging/package_test.sh $(FLAVOUR)

icons: $(STAMP)
	$(BIN)/python packaging/render_icons.py

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest-cache-models benchmarks/results
