# clusterchat. `make test` is what CI runs (.ci/run): it installs the real
# parts the tests start (Redis, nginx, PostgreSQL, Chromium) when missing.

GO          ?= go
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2
ARGS        ?=
N           ?= 2

.PHONY: all deps test vet staticcheck gotest build run cluster-up cluster-down cluster-status clean

all: build

## deps: apt-get install whatever of redis-server nginx libnginx-mod-stream postgresql chromium is missing
deps:
	scripts/deps

## test: deps, go vet, staticcheck, and the whole suite under the race detector
# One recipe, so the steps run in this order even under make -j.
test: deps
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...
	$(GO) test -race -timeout 25m ./...

vet:
	$(GO) vet ./...

# go run fetches and caches staticcheck through the module proxy; nothing is
# installed globally.
staticcheck:
	$(GO) run $(STATICCHECK) ./...

gotest:
	$(GO) test -race -timeout 25m ./...

## build: bin/chatserver, bin/chatclient, bin/chatbench
build:
	$(GO) build -o bin/ ./cmd/...

## run: one chatserver with the defaults (SQLite, in-process broker); pass flags with ARGS="..."
run:
	$(GO) build -o bin/chatserver ./cmd/chatserver
	bin/chatserver $(ARGS)

## cluster-up [N=2] / cluster-down / cluster-status: see scripts/cluster
cluster-up:
	scripts/cluster up $(N)

cluster-down:
	scripts/cluster down

cluster-status:
	scripts/cluster status

clean:
	rm -rf bin tmp
