# progjar: the two commands a newcomer needs are `make run` and `make test`.
# Everything the tests need is installed here (CI is a fresh Debian machine, as root).

CARGO ?= cargo
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: all build run test deps clean bench lab lab-up lab-down lab-shell lab-capture fuzz

all: build

build:
	$(CARGO) build --release --workspace

## The main job: the echo server on 0.0.0.0:10000.
run:
	$(CARGO) run --release --bin progjar -- server

## fmt check, clippy and rustdoc with warnings as errors, and every test.
test: deps
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --no-deps --workspace
	$(CARGO) test --workspace

## Install the system packages the tests use, when they are missing (as root, from apt).
deps:
	@missing=""; \
	command -v tcpdump >/dev/null || missing="$$missing tcpdump"; \
	command -v ip      >/dev/null || missing="$$missing iproute2"; \
	command -v ps      >/dev/null || missing="$$missing procps"; \
	command -v python3 >/dev/null || missing="$$missing python3"; \
	command -v tmux    >/dev/null || missing="$$missing tmux"; \
	[ -x /usr/bin/time ]            || missing="$$missing time"; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing >/dev/null; \
	fi

## Speed and memory, against a tokio reference peer (see README "Benchmark").
bench: build
	tools/bench/run

## The course's three machines in network namespaces (root); see README "Lab".
lab: build deps
	tools/lab/lab replay

lab-up: build deps
	tools/lab/lab up

lab-down:
	tools/lab/lab down

lab-shell:
	tools/lab/lab shell $(M)

lab-capture: build deps
	tools/lab/lab capture

## Fuzz the command-line parsers for a minute (cargo-fuzz; RUSTC_BOOTSTRAP lets stable build it).
fuzz:
	command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz
	RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run --fuzz-dir tools/fuzz parse_args -- -max_total_time=60 -dict=tools/fuzz/parse_args.dict

clean:
	$(CARGO) clean
	rm -rf lab
