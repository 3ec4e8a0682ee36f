# hush — the two commands of the README's Quickstart, and a few more.
.PHONY: demo test unit bench fuzz

# The main job, on an embedded default (see README).
demo:
	go run ./cmd/hush demo

# Exactly what CI runs: installs the peers when missing, gofmt, vet,
# staticcheck, and every test (unit, interop, integration) with -race.
test:
	bash .ci/run

# Unit tests only: fast, nothing installed.
unit:
	go test ./...

# Benchmarks, each beside its floor (bare primitives) in the same run.
bench:
	go test -run '^$$' -bench . -benchmem ./...

# A short run of every fuzz target.
FUZZTIME ?= 10s
fuzz:
	@for pkg in $$(go list ./...); do \
	  for f in $$(go test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
	    echo "== $$pkg $$f"; go test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	  done; \
	done
