# progjar: the two commands a newcomer needs are `make run` and `make test`.
# Everything the tests need is installed here (CI is a fresh Debian machine, as root).

CARGO ?= cargo
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# Where cargo puts its output: CARGO_TARGET_DIR or .cargo/config count, so ask cargo itself.
TARGET_DIR := $(shell $(CARGO) metadata --format-version 1 --no-deps 2>/dev/null \
                | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
TARGET_DIR := $(or $(TARGET_DIR),$(CURDIR)/target)
RELEASE := $(TARGET_DIR)/release

.PHONY: all build run test deps clean bench lab lab-up lab-down lab-shell lab-capture lab-scale \
        fuzz install install-check portable

all: build

build:
	$(CARGO) build --release --workspace

## The main job: the echo server on 0.0.0.0:10000.
run:
	$(CARGO) run --release --bin progjar -- server

## fmt check, clippy and rustdoc with warnings as errors, and every test, the portable
## build's included (SKIP_PORTABLE=1 leaves it out); then `make install` into a scratch root.
test: deps
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --no-deps --workspace
	$(if $(SKIP_PORTABLE),,$(MAKE) --no-print-directory portable)
	$(if $(SKIP_PORTABLE),,PROGJAR_PORTABLE_DIR=$(PORTABLE)/bin) $(CARGO) test --workspace
	$(MAKE) --no-print-directory install-check

## `progjar` and `progjar-stress` on your PATH: into PREFIX/bin when PREFIX is given, else
## CARGO_INSTALL_ROOT/bin, else ~/.cargo/bin (cargo install's own rule).
PREFIX ?=
INSTALL_FLAGS ?=
install:
	$(CARGO) install --locked --path . $(if $(PREFIX),--root $(PREFIX)) $(INSTALL_FLAGS)
	$(CARGO) install --locked --path tools/stress $(if $(PREFIX),--root $(PREFIX)) $(INSTALL_FLAGS)

## `make install` into a scratch root, then run what it installed. A debug build, so it
## reuses what `cargo test` just built instead of building the release profile again.
install-check:
	rm -rf $(TARGET_DIR)/install-check
	$(MAKE) --no-print-directory install PREFIX=$(TARGET_DIR)/install-check INSTALL_FLAGS="--debug --offline"
	$(TARGET_DIR)/install-check/bin/progjar --help >/dev/null
	$(TARGET_DIR)/install-check/bin/progjar-stress --help >/dev/null
	@echo "install-check: make install put progjar and progjar-stress in $(TARGET_DIR)/install-check/bin"

## progjar and progjar-stress linked against glibc 2.17, for older machines (the course's
## Docker containers): cargo-zigbuild, with zig from PyPI's ziglang in a venv. All of it is
## kept under $(TARGET_DIR)/portable, so the second run only rebuilds progjar.
PORTABLE := $(TARGET_DIR)/portable
# Pinned: the pair that was tried together; a new zig can break cargo-zigbuild's flags.
ZIGLANG_VERSION := 0.17.1
ZIGBUILD_VERSION := 0.24.1
PORTABLE_TRIPLE := $(shell rustc -vV 2>/dev/null | sed -n 's/^host: //p')
portable:
	@[ -x $(PORTABLE)/venv/bin/python3 ] || python3 -m venv $(PORTABLE)/venv
	@$(PORTABLE)/venv/bin/python3 -c 'import ziglang' 2>/dev/null || \
	  $(PORTABLE)/venv/bin/pip install --quiet ziglang==$(ZIGLANG_VERSION)
	@[ -x $(PORTABLE)/tools/bin/cargo-zigbuild ] || \
	  $(CARGO) install --locked --quiet --root $(PORTABLE)/tools cargo-zigbuild --version $(ZIGBUILD_VERSION)
	PATH="$(PORTABLE)/venv/bin:$(PORTABLE)/tools/bin:$$PATH" $(CARGO) zigbuild --release --locked \
	  --target $(PORTABLE_TRIPLE).2.17 --target-dir $(PORTABLE)/target -p progjar -p progjar-stress
	mkdir -p $(PORTABLE)/bin
	cp $(PORTABLE)/target/$(PORTABLE_TRIPLE)/release/progjar \
	   $(PORTABLE)/target/$(PORTABLE_TRIPLE)/release/progjar-stress $(PORTABLE)/bin/
	@echo "portable binaries (glibc >= 2.17): $(PORTABLE)/bin/progjar $(PORTABLE)/bin/progjar-stress"

## Install the system packages the tests use, when they are missing (as root, from apt).
deps:
	@missing=""; \
	command -v tcpdump >/dev/null || missing="$$missing tcpdump"; \
	command -v ip      >/dev/null || missing="$$missing iproute2"; \
	command -v ps      >/dev/null || missing="$$missing procps"; \
	command -v python3 >/dev/null || missing="$$missing python3"; \
	command -v openssl >/dev/null || missing="$$missing openssl"; \
	python3 -c 'import ensurepip' 2>/dev/null || missing="$$missing python3-venv"; \
	command -v objdump >/dev/null || missing="$$missing binutils"; \
	command -v haproxy >/dev/null || missing="$$missing haproxy"; \
	command -v tmux    >/dev/null || missing="$$missing tmux"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	[ -x /usr/bin/time ]            || missing="$$missing time"; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing >/dev/null; \
	fi

## Speed and memory, against a tokio reference peer (docs/bench.md).
bench: build
	PROGJAR_BIN=$(RELEASE)/progjar STRESS_BIN=$(RELEASE)/progjar-stress tools/bench/run

## The course's three machines in network namespaces (root); docs/lab.md.
lab: build deps
	PROGJAR=$(RELEASE)/progjar tools/lab/lab replay

lab-up: build deps
	PROGJAR=$(RELEASE)/progjar tools/lab/lab up

lab-down:
	tools/lab/lab down

lab-shell:
	PROGJAR=$(RELEASE)/progjar tools/lab/lab shell $(M)

lab-capture: build deps
	PROGJAR=$(RELEASE)/progjar tools/lab/lab capture

## HAProxy on mesin1 in front of servers on mesin2/3, load from mesin4 (root): spread,
## rolling restart, SIGKILL; see tools/lab/scale.
lab-scale: build deps
	tools/lab/scale run

## Fuzz the command-line parsers for a minute (cargo-fuzz; RUSTC_BOOTSTRAP lets stable build it).
fuzz:
	command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz
	RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run --fuzz-dir tools/fuzz parse_args -- -max_total_time=60 -dict=tools/fuzz/parse_args.dict

clean:
	$(CARGO) clean
	rm -rf lab
