# StageRunner: `make demo` shows it working, `make test` runs everything CI checks.
# Both install what is missing first (Debian packages, the Python venv), then build.

SHELL := /bin/bash
SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)
VENV := .venv
PYTHON := $(VENV)/bin/python
SWIFT_FORMAT_PATHS := Package.swift Sources Tests Benchmarks/Package.swift Benchmarks/Sources Fuzz/Package.swift Fuzz/Sources

.PHONY: demo test deps venv build release code-order install lint swift-test protocol-test client-test neovim-test emacs-test client-library-test litellm-test bench thresholds fault-campaign crash-campaign shared-campaign soak fuzz clean

demo: deps release
	@python3 scripts/demo.py .build/release/stagerunner

test: deps venv lint swift-test protocol-test client-test client-library-test litellm-test dagster-test thresholds

# The system packages the build needs (libcurl's and SQLite's headers), and Node for its client.
# Neovim (Debian's, 0.7 on bookworm) and Emacs (28, whose jsonrpc.el Eglot uses; the Emacs tests
# install Debian's elpa-eglot when Emacs has no Eglot) for the editor clients' tests and the
# conformance tests against their JSON-RPC libraries. Valgrind for the per-request allocation and
# instruction thresholds (make thresholds).
deps:
	@if ! pkg-config --exists libcurl sqlite3 2>/dev/null; then \
		echo "Installing libcurl4-openssl-dev, libsqlite3-dev and pkg-config (apt)..."; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq libcurl4-openssl-dev libsqlite3-dev pkg-config; \
	fi
	@if ! command -v node >/dev/null 2>&1; then \
		echo "Installing nodejs (apt)..."; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq nodejs; \
	fi
	@if ! command -v nvim >/dev/null 2>&1; then \
		echo "Installing neovim (apt)..."; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq neovim; \
	fi
	@if ! command -v emacs >/dev/null 2>&1; then \
		echo "Installing emacs-nox (apt)..."; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq emacs-nox; \
	fi
	@if ! command -v valgrind >/dev/null 2>&1; then \
		echo "Installing valgrind (apt)..."; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq valgrind; \
	fi

venv: $(VENV)/.installed

# pytest, jsonschema and PyYAML for protocol/, Jinja2 as the reference of the template engine,
# pygls and python-lsp-jsonrpc for the conformance tests against other people's client libraries.
# The Python client is installed editable, as its users would install it.
$(VENV)/.installed: protocol/tests/requirements.txt Tests/TemplateCorpus/requirements.txt \
		Tests/ClientLibraries/python/requirements.txt clients/python/pyproject.toml
	python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --disable-pip-version-check \
		-r protocol/tests/requirements.txt -r Tests/TemplateCorpus/requirements.txt \
		-r Tests/ClientLibraries/python/requirements.txt -e clients/python
	touch $@

build: deps
	swift build

# Static Swift runtime: a faster start and a smaller resident set than loading Foundation's shared
# libraries. Packed relative relocations (RELR, lld; glibc 2.36+) cut the 2 MB relocation table
# that the loader would otherwise read and apply at every start to 40 KB. Every function in a
# section of its own, laid out in the order of Sources/stagerunner/serving.order (what serving
# runs, together: scripts/code_order.py, `make code-order`), so that an idle server keeps little
# code resident.
# libstdc++ (which the Swift runtime's C++ needs) is linked in too, from a folder that holds only
# its archive, and the executable exports no symbols: the loader then has a few hundred symbols
# to look up at start rather than 1,400, no libstdc++.so to map, and dladdr a short table to scan.
CODE_ORDER := Sources/stagerunner/serving.order
STATIC_CXX := $(shell gcc -print-file-name=libstdc++.a 2>/dev/null)
STATIC_CXX_DIR := $(abspath .build/static-libstdc++)
RELEASE_FLAGS := -c release --static-swift-stdlib -Xswiftc -use-ld=lld -Xlinker -z -Xlinker pack-relative-relocs \
	-Xswiftc -Xfrontend -Xswiftc -function-sections \
	-Xlinker --symbol-ordering-file=$(abspath $(CODE_ORDER)) -Xlinker --no-warn-symbol-ordering \
	-Xlinker --no-export-dynamic $(if $(wildcard $(STATIC_CXX)),-Xlinker -L$(STATIC_CXX_DIR))

release: deps
	@# SwiftPM does not know the link reads the order: a newer one relinks.
	@if [ .build/release/stagerunner -ot $(CODE_ORDER) ]; then rm -f .build/release/stagerunner; fi
	@if [ -f "$(STATIC_CXX)" ]; then mkdir -p $(STATIC_CXX_DIR) && ln -sf "$(STATIC_CXX)" $(STATIC_CXX_DIR)/libstdc++.a; fi
	swift build $(RELEASE_FLAGS)

# Rewrites the code order from what the release binary runs while serving (valgrind).
code-order: release
	python3 scripts/code_order.py .build/release/stagerunner

# Puts the release binary on PATH: $(PREFIX)/bin/stagerunner.
PREFIX ?= $(HOME)/.local
install: release
	install -D -m 755 .build/release/stagerunner $(DESTDIR)$(PREFIX)/bin/stagerunner
	@echo "installed $(DESTDIR)$(PREFIX)/bin/stagerunner"

lint:
	swift format lint --strict --recursive $(SWIFT_FORMAT_PATHS)

# STAGERUNNER_JINJA2_PYTHON lets the template tests render the corpus with Jinja2 live.
swift-test: deps venv
	rm -rf .build/transcripts
	swift build --build-tests
	STAGERUNNER_JINJA2_PYTHON=$(abspath $(PYTHON)) swift test --skip-build

protocol-test: venv
	$(PYTHON) -m pytest protocol/tests -q

# The Python, Node and Neovim clients against the built binary.
client-test: venv
	STAGERUNNER_BIN=$(abspath .build/debug/stagerunner) $(PYTHON) -m pytest clients/python/tests -q
	STAGERUNNER_BIN=$(abspath .build/debug/stagerunner) node --test clients/node/test/
	$(MAKE) --no-print-directory neovim-test
	$(MAKE) --no-print-directory emacs-test

# The Neovim client, headless, against the built binary (nvim from apt: make deps).
neovim-test:
	STAGERUNNER_BIN=$(abspath .build/debug/stagerunner) clients/neovim/tests/run.sh

# The Emacs package, with ERT in emacs --batch, against the built binary (emacs-nox: make deps).
emacs-test:
	STAGERUNNER_BIN=$(abspath .build/debug/stagerunner) clients/emacs/tests/run.sh

# The binary driven from JSON-RPC client libraries nobody here wrote, as their users write them:
# pygls (JsonRPCClient, LanguageClient) and python-lsp-jsonrpc (Endpoint), Neovim's vim.lsp.rpc
# and vim.lsp.start_client. Emacs's jsonrpc.el is driven by emacs-test.
client-library-test: venv
	STAGERUNNER_BIN=$(abspath .build/debug/stagerunner) $(PYTHON) -m pytest Tests/ClientLibraries/python -q
	STAGERUNNER_BIN=$(abspath .build/debug/stagerunner) Tests/ClientLibraries/neovim/run.sh

# Model calls through a provider server nobody here wrote: the LiteLLM proxy (installed from PyPI
# into .build/litellm-venv on first use) with mock responses and errors, both API kinds, streamed
# and not, on loopback.
litellm-test: venv
	STAGERUNNER_BIN=$(abspath .build/debug/stagerunner) Tests/ProviderServers/litellm/run.sh

# The transport benchmark, then runStage and runTask throughput (the venv run.sh makes holds the
# Python peers, Jinja2 and jsonschema), then jobs: stage boundary to client notification with 100
# jobs at once, and a 10,000-task pipeline, then first answer, runStage throughput and RSS at
# membership files of 1k to 1M rows (the last two standard library only).
bench: release
	Benchmarks/run.sh .build/release/stagerunner
	Benchmarks/.venv/bin/python Benchmarks/stage_bench.py .build/release/stagerunner
	Benchmarks/.venv/bin/python Benchmarks/task_bench.py .build/release/stagerunner
	Benchmarks/.venv/bin/python Benchmarks/model_bench.py .build/release/stagerunner
	Benchmarks/.venv/bin/python Benchmarks/job_bench.py .build/release/stagerunner
	Benchmarks/.venv/bin/python Benchmarks/cohort_bench.py .build/release/stagerunner

# Per-request heap allocations and instructions of ping, renderPrompt and runStage (embedded model)
# under valgrind, held against Benchmarks/thresholds/thresholds.json (Benchmarks/thresholds/README.md).
# UPDATE=1 measures five times and rewrites the thresholds, for a change that is meant to cost more.
thresholds: release
	python3 Benchmarks/thresholds/check.py $(if $(UPDATE),--update) .build/release/stagerunner

# The long provider fault campaign and soak; make test runs short ones (300 requests, 15 s).
# FAULT_REQUESTS, FAULT_SEED and SOAK_SECONDS set their size.
FAULT_REQUESTS ?= 5000
FAULT_SEED ?= 1592590340
SOAK_SECONDS ?= 600

fault-campaign: deps
	swift build --build-tests
	STAGERUNNER_FAULT_REQUESTS=$(FAULT_REQUESTS) STAGERUNNER_FAULT_SEED=$(FAULT_SEED) \
		swift test --skip-build --filter ProviderFaultCampaignTests

# The long kill -9 campaigns: jobs killed at random moments, then servers killed while they commit
# artifacts and generations and write the response cache and the call log; make test runs short
# ones (25 and 4 rounds, all of them however slow the machine). CRASH_ROUNDS sets the rounds of
# each, CRASH_SECONDS a time limit at which they stop early,
# CRASH_SEED replays one (each has its own seed when it is empty). The figures of the last run are
# in .build/campaigns/.
CRASH_ROUNDS ?= 200
CRASH_SECONDS ?= 3600
CRASH_SEED ?=

crash-campaign: deps
	swift build --build-tests
	status=0; for suite in JobCrashTests/killNineCampaign StorageCrashTests; do \
		STAGERUNNER_CRASH_ROUNDS=$(CRASH_ROUNDS) STAGERUNNER_CRASH_SECONDS=$(CRASH_SECONDS) \
		STAGERUNNER_CRASH_SEED=$(CRASH_SEED) swift test --skip-build --filter $$suite || status=1; \
	done; cat .build/campaigns/job-crash.txt .build/campaigns/storage-crash.txt | grep campaign; exit $$status

# Many servers on one workspace (SharedWorkspaceCampaignTests): overlapping generations under a
# shared concurrency limit, a job whose owner is killed, resume races; make test runs 3 rounds.
# SHARED_ROUNDS sets the rounds, SHARED_SEED replays one; the figures are in .build/campaigns/.
SHARED_ROUNDS ?= 50
SHARED_SEED ?=
shared-campaign: deps
	swift build --build-tests
	SHARED_ROUNDS=$(SHARED_ROUNDS) SHARED_SEED=$(SHARED_SEED) \
		swift test --skip-build --filter SharedWorkspaceCampaignTests
	@cat .build/campaigns/shared-workspace.txt | head -1

soak: deps
	swift build --build-tests
	STAGERUNNER_SOAK_SECONDS=$(SOAK_SECONDS) swift test --skip-build --filter SoakTests

# libFuzzer targets over the library (Fuzz/README.md), each run FUZZ_SECONDS from its seed corpus;
# fails on any crash, hang or out-of-memory, whose input is kept under Fuzz/crashes/.
FUZZ_SECONDS ?= 60

fuzz: deps
	Fuzz/run.sh $(FUZZ_SECONDS)

clean:
	rm -rf .build $(VENV) Benchmarks/.build Benchmarks/.venv

# The Dagster integration (clients/dagster) against the built binary: assets, checks, the shard
# and per-generation jobs, the multiprocess executor. Dagster (pinned) lives in its own venv,
# .build/dagster-venv, installed on first use (about a minute).
dagster-test:
	STAGERUNNER_BIN=$(abspath .build/debug/stagerunner) clients/dagster/tests/run.sh

# The Dagster deployments, each run by its one command: two celery workers on one workspace
# (Debian's redis-server, installed when missing; dagster-celery added to the venv), and
# `dagster dev` serving the example.
dagster-e2e:
	STAGERUNNER_BIN=$(abspath .build/debug/stagerunner) clients/dagster/tests/run.sh --e2e

# A cohort through Dagster against one server with every call in flight, on the loopback mock
# provider (1 s answers, a concurrency limit of 50): shards on 1, 2 and 4 workers, one shard per
# root draft, one step per generation. DAGSTER_BENCH_GENERATIONS sets the cohort's size.
DAGSTER_BENCH_GENERATIONS ?= 200
dagster-bench:
	STAGERUNNER_BIN=$(abspath .build/debug/stagerunner) clients/dagster/bench/run.sh \
		--generations $(DAGSTER_BENCH_GENERATIONS)

.PHONY: dagster-test dagster-e2e dagster-bench
