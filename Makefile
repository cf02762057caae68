# StageRunner: `make demo` shows it working, `make test` runs everything CI checks.
# Both install what is missing first (Debian packages, the Python venv), then build.

SHELL := /bin/bash
SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)
VENV := .venv
PYTHON := $(VENV)/bin/python
SWIFT_FORMAT_PATHS := Package.swift Sources Tests Benchmarks/Package.swift Benchmarks/Sources

.PHONY: demo test deps venv build release lint swift-test protocol-test bench clean

demo: deps release
	@scripts/demo.sh .build/release/stagerunner

test: deps venv lint swift-test protocol-test

# libcurl's headers are the one system package the build needs.
deps:
	@if ! pkg-config --exists libcurl 2>/dev/null; then \
		echo "Installing libcurl4-openssl-dev and pkg-config (apt)..."; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq libcurl4-openssl-dev pkg-config; \
	fi

venv: $(VENV)/.installed

$(VENV)/.installed: protocol/tests/requirements.txt
	python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --disable-pip-version-check -r protocol/tests/requirements.txt
	touch $@

build: deps
	swift build

# Static Swift runtime: a faster start and a smaller resident set than loading Foundation's shared libraries.
release: deps
	swift build -c release --static-swift-stdlib

lint:
	swift format lint --strict --recursive $(SWIFT_FORMAT_PATHS)

swift-test: deps
	rm -rf .build/transcripts
	swift build --build-tests
	swift test --skip-build

protocol-test: venv
	$(PYTHON) -m pytest protocol/tests -q

bench: release
	Benchmarks/run.sh .build/release/stagerunner

clean:
	rm -rf .build $(VENV) Benchmarks/.build Benchmarks/.venv
