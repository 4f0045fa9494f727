# progjar: the two commands a newcomer needs are `make run` and `make test`.
# Everything the tests need is installed here (CI is a fresh Debian machine, as root).

CARGO ?= cargo
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# Where cargo puts its output (CARGO_TARGET_DIR or .cargo/config count): the one lookup
# that the tools use too.
TARGET_DIR := $(shell CARGO=$(CARGO) tools/target-dir)
RELEASE := $(TARGET_DIR)/release

.PHONY: all build run test deps clean bench lab lab-up lab-down lab-shell lab-capture lab-scale \
        fuzz install install-check portable dist zig-toolchain

all: build

build:
	$(CARGO) build --release --workspace

## The main job: the echo server on 0.0.0.0:10000.
run:
	$(CARGO) run --release --bin progjar -- server

## fmt check, clippy and rustdoc with warnings as errors, and every test, the portable and
## dist builds' included (SKIP_PORTABLE=1 leaves both out); then `make install` into a scratch root.
test: deps
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --no-deps --workspace
	$(if $(SKIP_PORTABLE),,$(MAKE) --no-print-directory dist)
	$(if $(SKIP_PORTABLE),,PROGJAR_PORTABLE_DIR=$(PORTABLE)/bin PROGJAR_DIST_DIR=$(DIST)) \
	  $(CARGO) test --workspace
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

## The zig toolchain `make portable` and `make dist` share: cargo-zigbuild, with zig from
## PyPI's ziglang in a venv. All of it is kept under $(TARGET_DIR)/portable (nothing is
## installed outside the target directory), so later runs only rebuild what changed.
PORTABLE := $(TARGET_DIR)/portable
# Pinned: the pair that was tried together; a new zig can break cargo-zigbuild's flags.
ZIGLANG_VERSION := 0.17.1
ZIGBUILD_VERSION := 0.24.1
zig-toolchain:
	@[ -x $(PORTABLE)/venv/bin/python3 ] || python3 -m venv $(PORTABLE)/venv
	@$(PORTABLE)/venv/bin/python3 -c 'import ziglang' 2>/dev/null || \
	  $(PORTABLE)/venv/bin/pip install --quiet ziglang==$(ZIGLANG_VERSION)
	@[ -x $(PORTABLE)/tools/bin/cargo-zigbuild ] || \
	  $(CARGO) install --locked --quiet --root $(PORTABLE)/tools cargo-zigbuild --version $(ZIGBUILD_VERSION)

# $(call zigbuild,TRIPLE): the release build of both binaries for TRIPLE, linked against
# glibc 2.17 (from 2012: every glibc Linux still in use has it or a newer one). No debug
# info and stripped, as shipped: the same command for `make portable` and `make dist`, so
# a triple both want is built once. The rust-std of a foreign TRIPLE comes from rustup.
define zigbuild
@[ -d "$$(rustc --print sysroot)/lib/rustlib/$(1)" ] || rustup target add $(1)
PATH="$(PORTABLE)/venv/bin:$(PORTABLE)/tools/bin:$$PATH" \
  CARGO_PROFILE_RELEASE_DEBUG=0 CARGO_PROFILE_RELEASE_STRIP=symbols \
  $(CARGO) zigbuild --release --locked --target $(1).2.17 --target-dir $(PORTABLE)/target \
  -p progjar -p progjar-stress
endef
zigbuilt = $(PORTABLE)/target/$(1)/release

## progjar and progjar-stress for this machine's architecture, for older machines (glibc 2.17).
PORTABLE_TRIPLE := $(shell rustc -vV 2>/dev/null | sed -n 's/^host: //p')
portable: zig-toolchain
	$(call zigbuild,$(PORTABLE_TRIPLE))
	mkdir -p $(PORTABLE)/bin
	cp $(call zigbuilt,$(PORTABLE_TRIPLE))/progjar $(call zigbuilt,$(PORTABLE_TRIPLE))/progjar-stress \
	   $(PORTABLE)/bin/
	@echo "portable binaries (glibc >= 2.17): $(PORTABLE)/bin/progjar $(PORTABLE)/bin/progjar-stress"

## Release tarballs for both kinds of student laptop (x86_64, and aarch64 on Apple Silicon),
## each with both binaries, the README and the licences, and SHA256SUMS beside them. This
## machine's architecture is `make portable`'s build, reused; the tarballs are byte-for-byte
## the same on every run of one commit (sorted names, fixed owner, modes and time stamp, and
## gzip without a time stamp of its own).
DIST := $(TARGET_DIR)/dist
DIST_TIME = $(or $(shell git log -1 --format=%ct 2>/dev/null),0)
VERSION = $(shell sed -n 's/^version = "\(.*\)"$$/\1/p' Cargo.toml | head -n 1)
dist: portable
	$(call zigbuild,x86_64-unknown-linux-gnu)
	$(call zigbuild,aarch64-unknown-linux-gnu)
	rm -rf $(DIST) && mkdir -p $(DIST)
	$(call dist_tarball,x86_64)
	$(call dist_tarball,aarch64)
	cd $(DIST) && sha256sum *.tar.gz > SHA256SUMS
	@echo "dist: $$(cd $(DIST) && ls -m *.tar.gz) and SHA256SUMS in $(DIST)"

# $(call dist_tarball,ARCH): $(DIST)/progjar-VERSION-ARCH-linux.tar.gz, which holds one
# directory of that name.
define dist_tarball
mkdir -p $(DIST)/progjar-$(VERSION)-$(1)-linux
cp $(call zigbuilt,$(1)-unknown-linux-gnu)/progjar $(call zigbuilt,$(1)-unknown-linux-gnu)/progjar-stress \
   README.md LICENSE-MIT LICENSE-APACHE $(DIST)/progjar-$(VERSION)-$(1)-linux/
tar -C $(DIST) --sort=name --owner=0 --group=0 --numeric-owner --mode=u+rw,go=rX \
    --mtime=@$(DIST_TIME) -cf - progjar-$(VERSION)-$(1)-linux \
  | gzip -9 -n > $(DIST)/progjar-$(VERSION)-$(1)-linux.tar.gz
rm -rf $(DIST)/progjar-$(VERSION)-$(1)-linux
endef

## Install the system packages the tests use, when they are missing (as root, from apt).
# qemu-user-static runs `make dist`'s aarch64 binaries here (tests/dist.rs); they load
# glibc, so qemu also needs Debian's arm64 one, which libc6-arm64-cross puts in AARCH64_ROOT.
AARCH64_ROOT := /usr/aarch64-linux-gnu
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
	command -v qemu-aarch64-static >/dev/null || missing="$$missing qemu-user-static"; \
	[ -e $(AARCH64_ROOT)/lib/ld-linux-aarch64.so.1 ] || missing="$$missing libc6-arm64-cross"; \
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
