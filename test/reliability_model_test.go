package test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Model-based random testing: a seeded random sequence of operations is
// applied both to a bucketfs mount and to a reference directory on a local
// filesystem; after every step the results (errno included) and the whole
// trees (names, types, permission bits, sizes, contents, symlink targets,
// mtimes set by utimes) must agree, and again after unmount and remount.
//
// Environment:
//
//	BUCKETFS_MODEL_SEED  replay this seed (one run)
//	BUCKETFS_MODEL_OPS   operations per run (default 150)
//	BUCKETFS_MODEL_RUNS  runs with fresh seeds (default 2)
//	BUCKETFS_MODEL_SHRINK=0  do not shrink a failing sequence
//	BUCKETFS_MODEL_SHRINK_REPLAYS  bound on shrinking replays (default 40; 2 minutes at most)
//	BUCKETFS_MODEL_TTL   --stat-cache-ttl of the mount (default: bucketfs's)
//
// A failure prints the seed and the shrunk sequence.

type opKind int

const (
	opOpen opKind = iota
	opWrite
	opRead
	opTruncate
	opFtruncate
	opFsync
	opClose
	opRename
	opMkdir
	opRmdir
	opUnlink
	opSymlink
	opChmod
	opUtimes
	numOpKinds
)

var opNames = [...]string{"open", "pwrite", "pread", "truncate", "ftruncate", "fsync", "close",
	"rename", "mkdir", "rmdir", "unlink", "symlink", "chmod", "utimes"}

// modelOp is one operation, independent of the state it runs in, so that a
// sequence can be replayed with operations left out.
type modelOp struct {
	kind  opKind
	path  string // first path
	path2 string // rename target; symlink target
	slot  int    // handle slot
	flags int    // open flags
	mode  uint32
	off   int64
	n     int64
	seed  uint64 // write data; utimes nanoseconds
}

func (o modelOp) String() string {
	switch o.kind {
	case opOpen:
		return fmt.Sprintf("open(%q, %s, %#o) -> slot %d", o.path, openFlagString(o.flags), o.mode, o.slot)
	case opWrite:
		return fmt.Sprintf("pwrite(slot %d, %d bytes seed %d, off %d)", o.slot, o.n, o.seed, o.off)
	case opRead:
		return fmt.Sprintf("pread(slot %d, %d bytes, off %d)", o.slot, o.n, o.off)
	case opTruncate:
		return fmt.Sprintf("truncate(%q, %d)", o.path, o.n)
	case opFtruncate:
		return fmt.Sprintf("ftruncate(slot %d, %d)", o.slot, o.n)
	case opFsync:
		return fmt.Sprintf("fsync(slot %d)", o.slot)
	case opClose:
		return fmt.Sprintf("close(slot %d)", o.slot)
	case opRename:
		return fmt.Sprintf("rename(%q, %q)", o.path, o.path2)
	case opMkdir:
		return fmt.Sprintf("mkdir(%q, %#o)", o.path, o.mode)
	case opRmdir:
		return fmt.Sprintf("rmdir(%q)", o.path)
	case opUnlink:
		return fmt.Sprintf("unlink(%q)", o.path)
	case opSymlink:
		return fmt.Sprintf("symlink(%q, %q)", o.path2, o.path)
	case opChmod:
		return fmt.Sprintf("chmod(%q, %#o)", o.path, o.mode)
	case opUtimes:
		return fmt.Sprintf("utimes(%q, %s)", o.path, modelTime(o.seed).Format(time.RFC3339Nano))
	}
	return "?"
}

func openFlagString(f int) string {
	var parts []string
	switch f & unix.O_ACCMODE {
	case unix.O_RDONLY:
		parts = append(parts, "O_RDONLY")
	case unix.O_WRONLY:
		parts = append(parts, "O_WRONLY")
	case unix.O_RDWR:
		parts = append(parts, "O_RDWR")
	}
	for _, fl := range []struct {
		bit  int
		name string
	}{{unix.O_CREAT, "O_CREAT"}, {unix.O_EXCL, "O_EXCL"}, {unix.O_TRUNC, "O_TRUNC"}, {unix.O_APPEND, "O_APPEND"}} {
		if f&fl.bit != 0 {
			parts = append(parts, fl.name)
		}
	}
	return strings.Join(parts, "|")
}

// modelTime is the mtime utimes sets: a fixed second plus a seed-derived
// nanosecond part, so that sub-second precision is checked too.
func modelTime(seed uint64) time.Time {
	return time.Unix(1_600_000_000+int64(seed%100_000_000), int64(seed%1_000_000_000))
}

const modelSlots = 4

var modelNames = []string{"a", "b", "c"}

func randModelPath(r *rand.Rand) string {
	depth := 1
	switch x := r.IntN(100); {
	case x >= 92:
		depth = 3
	case x >= 60:
		depth = 2
	}
	parts := make([]string, depth)
	for i := range parts {
		parts[i] = modelNames[r.IntN(len(modelNames))]
	}
	return strings.Join(parts, "/")
}

var modelOpenFlags = []int{
	unix.O_RDWR | unix.O_CREAT,
	unix.O_WRONLY | unix.O_CREAT,
	unix.O_RDONLY,
	unix.O_WRONLY | unix.O_CREAT | unix.O_TRUNC,
	unix.O_RDWR,
	unix.O_RDWR | unix.O_CREAT,
	unix.O_WRONLY | unix.O_CREAT | unix.O_APPEND,
	unix.O_RDWR | unix.O_CREAT | unix.O_EXCL,
	unix.O_WRONLY,
}

var modelPerms = []uint32{0o644, 0o600, 0o755, 0o700, 0o444, 0o640, 0o750}

// genModelOps generates n operations from seed. Weights favour the
// operations that build state (open, write, mkdir) so that the namespace
// does not stay empty.
func genModelOps(seed uint64, n int) []modelOp {
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	weights := map[opKind]int{
		opOpen: 16, opWrite: 18, opRead: 6, opTruncate: 4, opFtruncate: 3, opFsync: 4, opClose: 7,
		opRename: 8, opMkdir: 10, opRmdir: 4, opUnlink: 5, opSymlink: 3, opChmod: 4, opUtimes: 4,
	}
	total := 0
	for _, w := range weights {
		total += w
	}
	ops := make([]modelOp, 0, n)
	for len(ops) < n {
		x := r.IntN(total)
		var k opKind
		for k = 0; k < numOpKinds; k++ {
			if x < weights[k] {
				break
			}
			x -= weights[k]
		}
		o := modelOp{kind: k, path: randModelPath(r), slot: r.IntN(modelSlots)}
		switch k {
		case opOpen:
			o.flags = modelOpenFlags[r.IntN(len(modelOpenFlags))]
			o.mode = modelPerms[r.IntN(len(modelPerms))]
		case opWrite:
			o.n = int64(r.IntN(6000))
			if r.IntN(4) == 0 {
				o.n = int64(r.IntN(200_000)) // crosses read-ahead and block sizes
			}
			o.off = int64(r.IntN(9000))
			if r.IntN(5) == 0 {
				o.off = 0
			}
			o.seed = r.Uint64()
		case opRead:
			o.n = int64(1 + r.IntN(10000))
			o.off = int64(r.IntN(12000))
		case opTruncate, opFtruncate:
			o.n = int64(r.IntN(15000))
		case opRename:
			o.path2 = randModelPath(r)
		case opMkdir:
			o.mode = []uint32{0o755, 0o700, 0o750}[r.IntN(3)]
		case opSymlink:
			// Dangling on both sides: nothing ever creates "zz*".
			o.path2 = fmt.Sprintf("zz%d/t%d", r.IntN(3), r.IntN(100))
			if r.IntN(3) == 0 {
				o.path2 = "../" + o.path2
			}
		case opChmod:
			o.mode = modelPerms[r.IntN(len(modelPerms))]
		case opUtimes:
			o.seed = r.Uint64()
		}
		ops = append(ops, o)
	}
	return ops
}

// modelSide is one of the two trees with its open handles.
type modelSide struct {
	root string
	fds  [modelSlots]int // -1: empty
}

func newModelSide(root string) *modelSide {
	s := &modelSide{root: root}
	for i := range s.fds {
		s.fds[i] = -1
	}
	return s
}

func errnoOf(err error) syscall.Errno {
	if err == nil {
		return 0
	}
	var e syscall.Errno
	if errors.As(err, &e) {
		return e
	}
	return syscall.Errno(0xffff)
}

// apply runs o on s and returns a description of the result (data read,
// errno) to compare with the other side's.
func (s *modelSide) apply(o modelOp) string {
	p := filepath.Join(s.root, o.path)
	var err error
	switch o.kind {
	case opOpen:
		if s.fds[o.slot] >= 0 {
			if cerr := unix.Close(s.fds[o.slot]); cerr != nil {
				return "implicit close: " + errnoOf(cerr).Error()
			}
			s.fds[o.slot] = -1
		}
		var fd int
		fd, err = unix.Open(p, o.flags|unix.O_CLOEXEC, o.mode)
		if err == nil {
			s.fds[o.slot] = fd
		}
	case opWrite, opRead, opFtruncate, opFsync, opClose:
		fd := s.fds[o.slot]
		if fd < 0 {
			return "no handle"
		}
		switch o.kind {
		case opWrite:
			var n int
			n, err = unix.Pwrite(fd, randBytes(o.seed, int(o.n)), o.off)
			if err == nil && int64(n) != o.n {
				return fmt.Sprintf("short write %d", n)
			}
		case opRead:
			buf := make([]byte, o.n)
			var n int
			n, err = unix.Pread(fd, buf, o.off)
			if err == nil {
				return fmt.Sprintf("read %d bytes sha %.12s", n, sha(buf[:n]))
			}
		case opFtruncate:
			err = unix.Ftruncate(fd, o.n)
		case opFsync:
			err = unix.Fsync(fd)
		case opClose:
			err = unix.Close(fd)
			s.fds[o.slot] = -1
		}
	case opTruncate:
		err = unix.Truncate(p, o.n)
	case opRename:
		err = unix.Rename(p, filepath.Join(s.root, o.path2))
	case opMkdir:
		err = unix.Mkdir(p, o.mode)
	case opRmdir:
		err = unix.Rmdir(p)
	case opUnlink:
		err = unix.Unlink(p)
	case opSymlink:
		err = unix.Symlink(o.path2, p)
	case opChmod:
		err = unix.Chmod(p, o.mode)
	case opUtimes:
		ts := unix.NsecToTimespec(modelTime(o.seed).UnixNano())
		err = unix.UtimesNanoAt(unix.AT_FDCWD, p, []unix.Timespec{ts, ts}, 0)
	}
	if err != nil {
		return "errno " + errnoOf(err).Error()
	}
	return "ok"
}

// closeAll closes every handle and returns the results.
func (s *modelSide) closeAll() []string {
	var res []string
	for i, fd := range s.fds {
		if fd >= 0 {
			err := unix.Close(fd)
			res = append(res, fmt.Sprintf("close slot %d: %v", i, errnoOf(err)))
			s.fds[i] = -1
		}
	}
	return res
}

// treeEntry is what is compared of one name.
type treeEntry struct {
	typ   uint32
	perm  uint32
	size  int64
	data  string // sha of the contents, or the symlink target
	mtime int64
}

// snapshot describes the tree under root; mtimes only for the paths in
// wantMtime (regular files whose mtime utimes set and nothing changed since).
func snapshot(root string, wantMtime map[string]bool) (map[string]treeEntry, error) {
	out := make(map[string]treeEntry)
	err := filepath.Walk(root, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel == "." {
			return nil
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return fmt.Errorf("lstat %s: %w", rel, err)
		}
		e := treeEntry{typ: st.Mode & unix.S_IFMT, perm: st.Mode & 0o7777}
		switch e.typ {
		case unix.S_IFREG:
			b, err := os.ReadFile(p)
			if err != nil {
				return fmt.Errorf("read %s: %w", rel, err)
			}
			if int64(len(b)) != st.Size {
				return fmt.Errorf("%s: stat size %d but read %d bytes", rel, st.Size, len(b))
			}
			e.size, e.data = st.Size, sha(b)
			if wantMtime[rel] {
				e.mtime = st.Mtim.Nano()
			}
		case unix.S_IFLNK:
			target, err := os.Readlink(p)
			if err != nil {
				return fmt.Errorf("readlink %s: %w", rel, err)
			}
			e.data = target
			e.perm = 0 // symlink permissions mean nothing
		case unix.S_IFDIR:
		default:
			return fmt.Errorf("%s: unexpected type %#o", rel, e.typ)
		}
		out[rel] = e
		return nil
	})
	return out, err
}

func diffTrees(ref, got map[string]treeEntry) string {
	var names []string
	seen := map[string]bool{}
	for n := range ref {
		names = append(names, n)
		seen[n] = true
	}
	for n := range got {
		if !seen[n] {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	var diffs []string
	for _, n := range names {
		r, inRef := ref[n]
		g, inGot := got[n]
		switch {
		case !inGot:
			diffs = append(diffs, fmt.Sprintf("%s: missing on the mount (reference: %+v)", n, r))
		case !inRef:
			diffs = append(diffs, fmt.Sprintf("%s: on the mount only (%+v)", n, g))
		case r != g:
			diffs = append(diffs, fmt.Sprintf("%s: mount %+v, reference %+v", n, g, r))
		}
	}
	return strings.Join(diffs, "; ")
}

func modelEnvInt(name string, def int) int {
	if v := os.Getenv(name); v != "" {
		if n, err := strconv.Atoi(v); err == nil {
			return n
		}
	}
	return def
}

// modelRunner runs sequences against fresh buckets.
type modelRunner struct {
	t      *testing.T
	mounts []mountOpt
	runs   int // sequences run (shrinking included)
	ops    int // operations applied to the mount
	okOps  int // of which succeeded on both sides
	hist   map[string]int
}

// run applies ops and returns "" or the first divergence (with its step).
func (mr *modelRunner) run(ops []modelOp) (fail string, failStep int) {
	t := mr.t
	mr.runs++
	m := mount(t, mr.mounts...)
	defer m.Unmount()
	refRoot := t.TempDir()
	ref, mnt := newModelSide(refRoot), newModelSide(m.Dir)
	defer ref.closeAll()
	defer mnt.closeAll()
	wantMtime := map[string]bool{}

	check := func(step int, what string) string {
		rs, err := snapshot(refRoot, wantMtime)
		if err != nil {
			t.Fatalf("reference tree: %v", err)
		}
		ms, err := snapshot(m.Dir, wantMtime)
		if err != nil {
			return fmt.Sprintf("%s: walking the mount: %v", what, err)
		}
		if d := diffTrees(rs, ms); d != "" {
			return fmt.Sprintf("%s: trees differ: %s", what, d)
		}
		return ""
	}

	for i, o := range ops {
		// An operation on an empty slot uses the first open one instead
		// (both sides hold the same slots, or they diverged already).
		switch o.kind {
		case opWrite, opRead, opFtruncate, opFsync, opClose:
			if ref.fds[o.slot] < 0 {
				for j, fd := range ref.fds {
					if fd >= 0 {
						o.slot = j
						break
					}
				}
			}
		}
		rres := ref.apply(o)
		mres := mnt.apply(o)
		mr.ops++
		if mr.hist == nil {
			mr.hist = map[string]int{}
		}
		mr.hist[opNames[o.kind]+" "+rres]++
		if rres != "errno" && !strings.HasPrefix(rres, "errno ") && rres != "no handle" {
			mr.okOps++
		}
		if rres != mres {
			return fmt.Sprintf("step %d %v: mount %q, reference %q", i, o, mres, rres), i
		}
		if rres == "ok" {
			switch o.kind {
			case opUtimes:
				wantMtime[o.path] = true
			case opWrite, opTruncate, opFtruncate, opOpen:
				clear(wantMtime)
			case opRename:
				if o.path == o.path2 {
					break // renaming a name to itself changes nothing
				}
				// What the new name held is gone: its mtime, set by
				// utimes or not, is no longer what is there.
				for p := range wantMtime {
					if p == o.path2 || strings.HasPrefix(p, o.path2+"/") {
						delete(wantMtime, p)
					}
				}
				for p := range wantMtime {
					if p == o.path || strings.HasPrefix(p, o.path+"/") {
						delete(wantMtime, p)
						wantMtime[o.path2+strings.TrimPrefix(p, o.path)] = true
					}
				}
			}
		}
		if msg := check(i, fmt.Sprintf("after step %d %v", i, o)); msg != "" {
			return msg, i
		}
	}
	// Close everything, unmount, remount the same bucket: the bucket alone
	// must hold the tree.
	rc, mc := ref.closeAll(), mnt.closeAll()
	if fmt.Sprint(rc) != fmt.Sprint(mc) {
		return fmt.Sprintf("final close: mount %v, reference %v", mc, rc), len(ops)
	}
	if msg := check(len(ops), "after closing every handle"); msg != "" {
		return msg, len(ops)
	}
	if code := m.Unmount(); code > 0 {
		return fmt.Sprintf("daemon exited %d at unmount", code), len(ops)
	}
	m2 := mount(t, append(append([]mountOpt{}, mr.mounts...), onBucket(m.Bucket))...)
	defer m2.Unmount()
	rs, _ := snapshot(refRoot, wantMtime)
	ms, err := snapshot(m2.Dir, wantMtime)
	if err != nil {
		return fmt.Sprintf("after remount: walking the mount: %v", err), len(ops)
	}
	if d := diffTrees(rs, ms); d != "" {
		return "after unmount and remount: trees differ: " + d, len(ops)
	}
	return "", -1
}

// shrink drops operations from a failing sequence while it keeps failing
// (greedy delta debugging over chunks, then single operations), within a
// bounded number of replays.
func (mr *modelRunner) shrink(ops []modelOp, budget int, within time.Duration) []modelOp {
	replays := 0
	deadline := time.Now().Add(within)
	more := func() bool { return replays < budget && time.Now().Before(deadline) }
	for chunk := len(ops) / 2; chunk >= 1 && more(); chunk /= 2 {
		for start := 0; start < len(ops) && more(); {
			end := min(start+chunk, len(ops))
			cand := append(append([]modelOp{}, ops[:start]...), ops[end:]...)
			replays++
			if msg, _ := mr.run(cand); msg != "" {
				ops = cand
				continue
			}
			start = end
		}
	}
	return ops
}

func TestReliabilityModel(t *testing.T) {
	needSuite(t)
	nOps := modelEnvInt("BUCKETFS_MODEL_OPS", 150)
	runs := modelEnvInt("BUCKETFS_MODEL_RUNS", 2)
	var seeds []uint64
	if v := os.Getenv("BUCKETFS_MODEL_SEED"); v != "" {
		s, err := strconv.ParseUint(v, 0, 64)
		if err != nil {
			t.Fatalf("BUCKETFS_MODEL_SEED=%q: %v", v, err)
		}
		seeds = []uint64{s}
	} else {
		base := uint64(time.Now().UnixNano())
		for i := 0; i < runs; i++ {
			seeds = append(seeds, base+uint64(i)*0x9e3779b97f4a7c15)
		}
	}
	total := 0
	for _, seed := range seeds {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			mr := &modelRunner{t: t}
			if v := os.Getenv("BUCKETFS_MODEL_TTL"); v != "" {
				d, err := time.ParseDuration(v)
				if err != nil {
					t.Fatalf("BUCKETFS_MODEL_TTL=%q: %v", v, err)
				}
				mr.mounts = append(mr.mounts, withFlags("--stat-cache-ttl", d.String()))
			}
			ops := genModelOps(seed, nOps)
			msg, step := mr.run(ops)
			total += mr.ops
			t.Logf("%d operations, %d succeeded (the rest failed alike on both sides or had no handle)", mr.ops, mr.okOps)
			if testing.Verbose() {
				t.Logf("results: %v", mr.hist)
			}
			if msg == "" {
				return
			}
			t.Logf("seed %d failed: %s", seed, msg)
			prefix := ops
			if step >= 0 && step < len(ops) {
				prefix = ops[:step+1]
			}
			shrunk := prefix
			if os.Getenv("BUCKETFS_MODEL_SHRINK") != "0" {
				shrunk = mr.shrink(prefix, modelEnvInt("BUCKETFS_MODEL_SHRINK_REPLAYS", 40), 2*time.Minute)
			}
			var b strings.Builder
			for i, o := range shrunk {
				fmt.Fprintf(&b, "\n  %2d %v", i, o)
			}
			final, _ := mr.run(shrunk)
			t.Errorf("model divergence; replay with BUCKETFS_MODEL_SEED=%d BUCKETFS_MODEL_OPS=%d go test -race -run 'TestReliabilityModel' ./test/\n"+
				"first failure: %s\nshrunk to %d of %d operations (%d replays):%s\nshrunk sequence fails with: %s",
				seed, nOps, msg, len(shrunk), len(prefix), mr.runs, b.String(), final)
		})
	}
	t.Logf("model: %d operations applied to the mount", total)
}

// TestReliabilityListedAfterClose is the shortest sequence the model found
// for a divergence: a file created on the mount is missing from its
// directory's listing after close when the listing was reloaded from the
// bucket while the file was open (not yet uploaded). stat finds it; readdir
// does not, until the next reload.
func TestReliabilityListedAfterClose(t *testing.T) {
	m := mount(t, withTTL(500*time.Millisecond))
	f, err := os.Create(m.Path("x"))
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second) // the root listing expires while x is open
	if ents, err := os.ReadDir(m.Dir); err != nil || len(ents) != 1 {
		t.Errorf("readdir while x is open: %v, %v; want [x]", ents, err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(m.Dir)
	if err != nil || len(ents) != 1 || ents[0].Name() != "x" {
		t.Errorf("readdir right after close: %v, %v; want [x] (stat of x: %v)", ents, err, statErr(m.Path("x")))
	}
}
