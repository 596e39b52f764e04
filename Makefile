# The two commands a newcomer needs: `make run` and `make test`.
GO      ?= go
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
CHROMIUM_PATH ?= /usr/bin/chromium

.PHONY: all build ui plugins proto run test test-go test-e2e e2e-deps fuzz bench bench-go bench-fleet bench-scale soak vet fmt clean

all: build

build: plugins ui
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/socket-server ./cmd/socket-server

## ui: the Socket.IO Admin UI's compiled files (npm @socket.io/admin-ui, and
## the icon font it loads, @mdi/font, from the lockfile) into
## core/admin/ui/www/dist, which the build embeds
UI_INSTALLED := core/admin/ui/node_modules/.package-lock.json
ui: core/admin/ui/www/dist/index.html $(UI_INSTALLED)
$(UI_INSTALLED): core/admin/ui/package-lock.json
	cd core/admin/ui && npm ci --no-audit --no-fund --loglevel=error
core/admin/ui/www/dist/index.html: $(UI_INSTALLED)
	rm -rf core/admin/ui/www/dist && cp -r core/admin/ui/node_modules/@socket.io/admin-ui/ui/dist core/admin/ui/www/dist && rm -f core/admin/ui/www/dist/js/*.map
	mkdir -p core/admin/ui/www/dist/mdi/css core/admin/ui/www/dist/mdi/fonts
	cp core/admin/ui/node_modules/@mdi/font/css/materialdesignicons.min.css core/admin/ui/www/dist/mdi/css/
	cp core/admin/ui/node_modules/@mdi/font/fonts/materialdesignicons-webfont.woff* core/admin/ui/www/dist/mdi/fonts/
	touch $@

## plugins: every plugins/<kind>-<name> into bin/plugins/<kind>-<name>
PLUGINS := $(patsubst plugins/%/main.go,%,$(wildcard plugins/*/main.go))
plugins:
	@mkdir -p bin/plugins
	@for p in $(PLUGINS); do $(GO) build -ldflags "$(LDFLAGS)" -o bin/plugins/$$p ./plugins/$$p || exit 1; done

## run: start one instance on embedded defaults (config.hcl, port 8081, no Redis)
run: build
	./bin/socket-server run --config config.hcl

## test: vet, Go tests (race detector; fuzz seed corpora included), then the
## Node socket.io-client and headless-Chromium end-to-end suites.
test: vet test-go test-e2e

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))" || { gofmt -l .; echo "gofmt: files above need formatting"; exit 1; }
	$(GO) vet ./...
	cd sdk && $(GO) vet ./...
	cd examples/auth-custom-go && $(GO) vet ./...

## The sdk is a Go module of its own (what plugin authors depend on); the
## server's module uses it through a replace, as an outside author would.
## examples/auth-custom-go is a module of its own too, as an outside
## author's plugin is. sdk/plugintest's server helpers run SOCKETFLEET_SERVER.
test-go: build e2e-deps
	PATH="$$PATH:/usr/sbin" $(GO) test -race -count=1 ./...
	cd sdk && SOCKETFLEET_SERVER=$(CURDIR)/bin/socket-server $(GO) test -race -count=1 ./...
	cd examples/auth-custom-go && SOCKETFLEET_SERVER=$(CURDIR)/bin/socket-server $(GO) test -race -count=1 ./...

test-e2e: build e2e-deps
	cd test/e2e && SOCKET_SERVER_BIN=$(CURDIR)/bin/socket-server CHROMIUM_PATH=$(CHROMIUM_PATH) node --test --test-concurrency=1

# Node packages come from npm with their lockfiles; Debian's chromium,
# prometheus, redis-server, nginx and openssl are installed when missing and we are
# root (CI is).
e2e-deps:
	cd test/e2e && npm ci --no-audit --no-fund --loglevel=error
	cd examples/browser-chat && npm ci --no-audit --no-fund --loglevel=error
	cd examples/auth-custom-node && npm ci --no-audit --no-fund --loglevel=error
	@missing=""; [ -x "$(CHROMIUM_PATH)" ] || missing="chromium"; \
	  command -v promtool >/dev/null && command -v prometheus >/dev/null || missing="$$missing prometheus"; \
	  command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	  command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing="$$missing nginx"; \
	  command -v openssl >/dev/null || missing="$$missing openssl"; \
	  if [ -n "$$missing" ]; then \
	    if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	    else echo "missing Debian packages: $$missing (apt-get install them)"; exit 1; fi; fi

## fuzz: run every fuzz target for FUZZTIME each (default 30s)
FUZZTIME ?= 30s
fuzz:
	@for pkg in ./core/protocol/eiowire ./core/protocol/siowire ./core/engineio; do \
	  for t in $$($(GO) test -list '^Fuzz' $$pkg | grep ^Fuzz); do \
	    $(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; done; done

## bench: socketbench against this server, Node's socket.io and (fanout) the
## floor server bench/floor, alternating, 3 rounds; a table of medians with
## ours/node and ours/floor (bench/README.md). BENCH_QUICK=1: a minute.
bench: build
	$(GO) build -o bin/socketbench ./cmd/socketbench
	$(GO) build -o bin/floor ./bench/floor
	cd bench/node && npm ci --no-audit --no-fund --loglevel=error
	bench/run.sh

## soak: two instances on a fresh Redis (redis-server from Debian), N
## churning subscribers, numbered broadcasts, hostile clients, plugin kills
## and a Redis restart for SOAK_MINUTES; samples.csv, soak.svg, summary.json
## in bench/results/soak-<UTC time>/; fails on growth or unexplained loss
## (bench/README.md, "Soak"). SOAK_ARGS: more socketbench soak flags.
SOAK_MINUTES ?= 30
SOAK_ARGS    ?=
soak: build
	$(GO) build -o bin/socketbench ./cmd/socketbench
	@command -v redis-server >/dev/null || { echo "soak needs redis-server (apt-get install redis-server)"; exit 1; }
	bin/socketbench soak --minutes $(SOAK_MINUTES) $(SOAK_ARGS)

## bench-fleet: loss across a fleet change (bench/README.md, "Fleet changes"):
## Redis, FLEET_INSTANCES instances and nginx started here, clients doing
## connection state recovery, a publisher on the backend API, and
## FLEET_CHANGE (rolling, kill, redis-stop, none) during the run; with
## bench/fleet.hcl (streams + recovery) by default, FLEET_CONFIG to change.
## FLEET_ARGS: more socketbench fleet flags (e.g. -expect-lossless, -no-nginx).
FLEET_CONFIG    ?= bench/fleet.hcl
FLEET_CHANGE    ?= rolling
FLEET_INSTANCES ?= 3
FLEET_ARGS      ?=
bench-fleet: build
	$(GO) build -o bin/socketbench ./cmd/socketbench
	@command -v redis-server >/dev/null || { echo "bench-fleet needs redis-server (apt-get install redis-server)"; exit 1; }
	bin/socketbench fleet -config $(FLEET_CONFIG) -change $(FLEET_CHANGE) -instances $(FLEET_INSTANCES) $(FLEET_ARGS)

## bench-scale: idle WebSocket connections at 2k, 10k and up to the
## descriptor limit on one instance, then SCALE_FLEET connections over
## SCALE_INSTANCES instances on a fresh Redis: RSS per connection,
## goroutines, connect time, CPU at rest, numbered broadcasts to all (lost
## and duplicated counted), room churn at the smallest and largest size
## (bench/README.md, "Scale"); bench/results/scale-<UTC time>/. ~8 minutes.
## SCALE_ARGS: more socketbench scale flags.
SCALE_FLEET     ?= 55000
SCALE_INSTANCES ?= 3
SCALE_ARGS      ?=
bench-scale: build
	$(GO) build -o bin/socketbench ./cmd/socketbench
	@command -v redis-server >/dev/null || { echo "bench-scale needs redis-server (apt-get install redis-server)"; exit 1; }
	bin/socketbench scale -fleet $(SCALE_FLEET) -instances $(SCALE_INSTANCES) $(SCALE_ARGS)

## bench-go: Go benchmarks (codecs, broadcast, memory per connection, plugin
## boundary, handshakes with and without the JWT plugin)
bench-go:
	$(GO) test -run '^$$' -bench . -benchmem ./core/... ./plugins/...
	cd sdk && $(GO) test -run '^$$' -bench . -benchmem ./...
	$(GO) test -run '^$$' -bench Handshake -benchtime 3000x ./cmd/socket-server

## proto: regenerate sdk/internal/pluginpb from sdk/proto (pure Go: pinned buf and protoc plugins)
proto:
	sdk/proto/generate.sh

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf bin
