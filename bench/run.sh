#!/usr/bin/env bash
# bench/run.sh: the one command behind `make bench`.
#
# Installs the peers from Debian's packages (s3fs, rclone, fio, fuse3) if
# missing, builds goofys and geesefs at pinned versions if missing, makes
# sure a MinIO binary exists, builds bucketfs and the runner,
# then runs bench/cmd/benchrun, which does the rest and writes
# bench/results/<date>/{results.json,table.md}. Arguments go to the runner:
#
#   bash bench/run.sh                                  # full run (~25 min)
#   bash bench/run.sh --size 64MiB --runs 1 --fio-runtime 5s \
#       --flat-objects 1000 --tree-objects 500 --dev-files 300   # smoke run
#   bash bench/run.sh --tools bucketfs,sdk --workloads seqread,write
#   BUCKETFS_REV=HEAD bash bench/run.sh      # bucketfs as committed
#
# Needs root (FUSE mounts, dropping the page cache). Measures, never fails
# on a slow figure: a non-zero exit means the harness itself broke.
set -euo pipefail
cd "$(dirname "$0")/.."

MINIO_VERSION=v0.0.0-20260212201848-7aac2a2c5b7c

log() { echo "bench: $*" >&2; }

if [[ $(id -u) -ne 0 ]]; then
	log "must run as root (FUSE mounts, drop_caches)"
	exit 2
fi

need=()
command -v s3fs >/dev/null || need+=(s3fs)
command -v rclone >/dev/null || need+=(rclone)
command -v fio >/dev/null || need+=(fio)
command -v fusermount3 >/dev/null || need+=(fuse3)
if ((${#need[@]})); then
	log "installing ${need[*]}"
	export DEBIAN_FRONTEND=noninteractive
	timeout 300 apt-get update -qq
	timeout 600 apt-get install -y -qq "${need[@]}" >/dev/null
fi

MINIO=$(command -v minio || true)
if [[ -z $MINIO ]]; then
	MINIO="$(go env GOPATH | cut -d: -f1)/bin/minio"
	if [[ ! -x $MINIO ]]; then
		log "installing minio $MINIO_VERSION (go install, a few minutes)"
		(cd /tmp && GOFLAGS= timeout 900 go install "github.com/minio/minio@$MINIO_VERSION")
	fi
fi

mkdir -p bench/.bin

# goofys and geesefs are Go modules: built at pinned versions into
# bench/.bin when not on PATH. One that cannot be built here gets
# bench/.bin/NAME.unavailable with the reason, which the runner shows in
# its cells and notes instead of failing the run.
GOOFYS_VERSION=v0.24.0
GEESEFS_VERSION=v0.43.8
unavailable() { # name reason
	printf '%s\n' "$2" >"bench/.bin/$1.unavailable"
}
# build_go_tool NAME VERSION BUILD...: BUILD (a shell command) writes
# bench/.bin/NAME unless NAME is on PATH; prints the binary's path.
build_go_tool() {
	local name=$1 version=$2 bin
	shift 2
	bin=$(command -v "$name" || true)
	if [[ -z $bin ]]; then
		bin=$PWD/bench/.bin/$name
		if [[ ! -x $bin ]]; then
			rm -f "$bin.unavailable"
			log "building $name $version"
			"$@" "$bin" >"bench/.bin/$name.build.log" 2>&1 || true
			if [[ -s $bin.unavailable ]]; then
				log "$name unavailable: $(cat "$bin.unavailable")"
			fi
		fi
	fi
	echo "$bin"
}
build_goofys() { # OUT
	# v0.24.0 has no go.mod; bench/tools/goofys pins what it vendored.
	if ! (cd bench/tools/goofys && GOFLAGS= timeout 1200 go build -o "$1" github.com/kahing/goofys); then
		unavailable goofys "goofys $GOOFYS_VERSION did not build: $(grep -v '^go: downloading' bench/.bin/goofys.build.log | tail -1)"
	fi
}
build_geesefs() { # OUT
	# Its go.mod has replace directives, so `go install pkg@version` refuses
	# it: build the module's own copy instead.
	local src dir why
	src=$(mktemp -d)
	if dir=$(cd /tmp && GOFLAGS= timeout 600 go mod download -json "github.com/yandex-cloud/geesefs@$GEESEFS_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p') && [[ -n $dir ]]; then
		cp -r "$dir/." "$src" && chmod -R u+w "$src"
		if ! (cd "$src" && GOFLAGS= timeout 1800 go build -o "$1" .); then
			why=$(grep -v '^go: downloading' bench/.bin/geesefs.build.log | tail -1)
			if grep -q 'replacement directory ./s3ext does not exist' bench/.bin/geesefs.build.log; then
				why="its go.mod replaces aws-sdk-go with ./s3ext, a nested module (Yandex's fork of the SDK) that the module proxy's copy of geesefs $GEESEFS_VERSION leaves out (with upstream aws-sdk-go in its place it does not compile: it calls the fork's ListObjectsV1Ext and PatchObject)"
			fi
			unavailable geesefs "geesefs $GEESEFS_VERSION did not build: $why"
		fi
	else
		unavailable geesefs "the Go module proxy did not serve geesefs $GEESEFS_VERSION"
	fi
	rm -rf "$src"
}
GOOFYS=$(build_go_tool goofys "$GOOFYS_VERSION" build_goofys)
GEESEFS=$(build_go_tool geesefs "$GEESEFS_VERSION" build_geesefs)

rm -f bench/.bin/bucketfs
# bucketfs is built as it ships (scripts/build-static.sh, novita.Dockerfile):
# CGO_ENABLED=0, a static binary that loads no libc at start.
# BUCKETFS_REV=HEAD (or any commit) measures that commit as committed,
# without the work tree's uncommitted changes; the default is the work tree.
if [[ -n ${BUCKETFS_REV:-} ]]; then
	src=$(mktemp -d)
	git archive "$BUCKETFS_REV" | tar -x -C "$src"
	version="git $(git describe --always "$BUCKETFS_REV")"
	log "building bucketfs at $version"
	if ! (cd "$src" && CGO_ENABLED=0 timeout 600 go build -o "$OLDPWD/bench/.bin/bucketfs" ./cmd/bucketfs); then
		log "bucketfs does not build: its cells will read 'fail'"
	fi
	rm -rf "$src"
else
	version="git $(git describe --always --dirty 2>/dev/null || echo unknown) (work tree)"
	log "building bucketfs from the work tree"
	if ! CGO_ENABLED=0 timeout 600 go build -o bench/.bin/bucketfs ./cmd/bucketfs; then
		log "bucketfs does not build: its cells will read 'fail'"
	fi
fi
log "building the runner"
timeout 600 go build -o bench/.bin/benchrun ./bench/cmd/benchrun

exec bench/.bin/benchrun --minio "$MINIO" --bucketfs bench/.bin/bucketfs --bucketfs-version "$version" \
	--goofys "$GOOFYS" --geesefs "$GEESEFS" "$@"
