# ds2mb: `make demo` runs the quick start, `make test` runs every test.

GO       ?= go
FUZZTIME ?= 3s
# Go as installed in the development and CI images, when it is not in PATH.
export PATH := $(PATH):/usr/local/go/bin

# Every main package: cmd/* and deploy/cmd/*.
CMDS := $(sort $(dir $(wildcard cmd/*/main.go deploy/cmd/*/main.go)))

.PHONY: all test deps vet race fuzz build demo generate clean

all: build

## test: install slapd if missing, vet, every test with -race. Every native
## fuzz target runs here over its seed corpus and its testdata/fuzz
## regression inputs (plain `go test` does that); exploring for new inputs is
## `make fuzz`, kept out of `make test` so that CI stays deterministic.
test: deps
	$(GO) mod tidy -diff
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 30m ./...

## deps: install the system tools tests and demo need (slapd, ldap-utils)
deps:
	@deploy/ensure-deps.sh

vet:
	$(GO) vet ./...

race:
	$(GO) test -race -count=1 -timeout 30m ./...

## fuzz: every native fuzz target for FUZZTIME each (make fuzz FUZZTIME=5m)
fuzz:
	@FUZZTIME=$(FUZZTIME) GO=$(GO) deploy/fuzz-all.sh

## build: bin/<name> for every main package
build:
	@mkdir -p bin
	@set -e; for d in $(CMDS); do echo "go build -o bin/$$(basename $$d) ./$$d"; $(GO) build -o bin/$$(basename $$d) ./$$d; done

## demo: the quick start (directory now; replicator and SMTP worker as they land)
demo: deps build
	@deploy/demo.sh

## generate: regenerate the files derived from the schema catalogue
generate:
	$(GO) generate ./schema/...

clean:
	rm -rf bin .demo
