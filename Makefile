# bucketfs — build, test, demo.
#
#   make build     bin/bucketfs
#   make test      go vet + all unit and integration tests (needs root, /dev/fuse, MinIO)
#   make demo      MinIO + a mounted demo bucket at .demo/mnt (make demo-stop ends it)
#   make bench     bench/run.sh
#   make reliability  the long reliability suite (model, faults, POSIX, two mounts, soak, fuzz)
#   make install   bin/bucketfs -> $(PREFIX)/bin, and the mount helper
#                  $(SBINDIR)/mount.fuse.bucketfs (for mount -t fuse.bucketfs and fstab)
#   make clean

GO      ?= go
PREFIX  ?= /usr/local
SBINDIR ?= /sbin
# Empty: scripts/build-static.sh asks git.
VERSION ?=
COMMIT  ?=
TESTFLAGS ?=

.PHONY: all build test unit integration vet minio demo demo-stop bench install clean reliability

all: build

# The same static build as novita.Dockerfile (version and commit via -ldflags).
build:
	VERSION="$(VERSION)" COMMIT="$(COMMIT)" bash scripts/build-static.sh bin/bucketfs

vet:
	$(GO) vet ./...

# MinIO for the integration tests (built from the pinned module if missing).
minio:
	@MINIO_BIN="$$(bash scripts/ensure-minio.sh)" && echo "minio: $$MINIO_BIN"

test: vet minio
	MINIO_BIN="$$(bash scripts/ensure-minio.sh)" $(GO) test -race -count=1 -timeout 25m $(TESTFLAGS) ./...

# Only the integration tests, verbosely.
integration: minio
	MINIO_BIN="$$(bash scripts/ensure-minio.sh)" $(GO) test -race -count=1 -timeout 25m -v $(TESTFLAGS) ./test/...

# test/reliability_*_test.go with long budgets, then each fuzz target a while.
reliability: minio
	MINIO_BIN="$$(bash scripts/ensure-minio.sh)" BUCKETFS_MODEL_OPS=1500 BUCKETFS_MODEL_RUNS=6 BUCKETFS_RELIABILITY_LONG=1 BUCKETFS_SOAK=5m \
		$(GO) test -race -count=1 -timeout 90m -v -run 'TestReliability' $(TESTFLAGS) ./test/
	for f in FuzzParseMeta FuzzEpoch FuzzChildName; do $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime 60s ./fs || exit 1; done
	for f in FuzzParseMountOptions FuzzParsePasswd; do $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime 60s ./cmd/bucketfs || exit 1; done

demo:
	bash scripts/demo.sh

demo-stop:
	bash scripts/demo.sh stop

bench:
	bash bench/run.sh

install: build
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 0755 bin/bucketfs $(DESTDIR)$(PREFIX)/bin/bucketfs
	install -d $(DESTDIR)$(SBINDIR)
	ln -sf $(PREFIX)/bin/bucketfs $(DESTDIR)$(SBINDIR)/mount.fuse.bucketfs

clean:
	rm -rf bin
	$(GO) clean -testcache
