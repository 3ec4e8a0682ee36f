# hush — the two commands of the README's Quickstart, and a few more.
.PHONY: demo demo-local test unit bench fuzz

# The main job: a throwaway Prosody on loopback (the Debian package is
# installed when missing), alice and bob exchanging OMEMO 2 and OX messages
# with the hush command, and what the server stored beside what bob read.
demo:
	bash .ci/install prosody
	go run ./cmd/hush demo xmpp

# The same protocols in one process, with no server and nothing installed.
demo-local:
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
