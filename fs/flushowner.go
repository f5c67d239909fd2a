package fs

import (
	"bytes"
	"context"
	"os"
	"slices"
	"strconv"
	"sync"

	"github.com/hanwen/go-fuse/v2/fuse"
)

// Closes by processes that only inherited a descriptor. A fork copies every
// descriptor of its parent and the child closes the copies (at exec for
// close-on-exec ones, else when it exits); each of those closes sends the
// mount a FLUSH. A program that keeps a file open for writing while it runs
// commands (a log, a results file, Python's logging with subprocess) would
// upload the whole file at every command it starts, and the command's exec
// would wait for that upload.
//
// So a FLUSH uploads only when it comes from a process that opened the file
// description or wrote through it (its owners). One from any other process,
// which put nothing there, answers at once: the data is its owners', and
// each owner's own close uploads it (a process that dies closes its
// descriptors too). Whenever that cannot be told, the FLUSH uploads, as
// every FLUSH did before:
//   - the caller is not known (pid 0: the kernel names no process for
//     page-cache writeback of a shared mapping, nor for a caller outside
//     the daemon's PID namespace), or its /proc entry cannot be read;
//   - a write came without a known caller (Node.anonWrites): a shared
//     mapping's pages may hold another process's data;
//   - a description has more owners than maxOwners;
//   - /proc is not this daemon's PID namespace's (procIsOurs).
//
// The kernel names the calling thread, not its process: owners are thread
// group IDs, read from /proc/TID/status, so a program that writes on one
// thread and closes on another is one owner. A thread ID can be reused
// once its thread ends, so before a FLUSH is let go without an upload each
// recorded thread must still be in the process it was recorded in (read
// again then): if one ended or moved, the FLUSH uploads. That check also
// makes a cache of thread to process safe for recording (tgidCache): a
// stale entry only makes a FLUSH upload. A FLUSH from a recorded thread
// uploads with no lookup at all (the common case: one thread opens,
// writes and closes).

// maxOwners bounds the threads one file description records.
const maxOwners = 8

// owner is a thread that opened a description or wrote through it.
type owner struct {
	tid  uint32
	tgid int32
}

// owners is a file description's owners (see above), guarded by the
// node's mu.
type owners struct {
	list []owner
	lost bool // one could not be told, or too many: every FLUSH uploads
}

// add records thread tid of process tgid (0: not known).
func (o *owners) add(tid uint32, tgid int32) {
	switch {
	case o.lost:
	case tid == 0 || tgid == 0:
		o.lost = true
	default:
		for _, w := range o.list {
			if w.tid == tid {
				return
			}
		}
		if len(o.list) == maxOwners {
			o.lost = true
			return
		}
		o.list = append(o.list, owner{tid, tgid})
	}
}

// has reports whether thread tid is recorded.
func (o *owners) has(tid uint32) bool {
	for _, w := range o.list {
		if w.tid == tid {
			return true
		}
	}
	return false
}

// excludes reports whether process tgid is known and none of the owners,
// given tgidOf of each owner's thread now (still).
func (o *owners) excludes(tgid int32, still []int32) bool {
	if o.lost || tgid == 0 || len(still) != len(o.list) {
		return false
	}
	for i, w := range o.list {
		if w.tgid == tgid || still[i] != w.tgid {
			return false
		}
	}
	return true
}

// procIsOurs reports whether /proc shows this daemon's PID namespace, in
// which the kernel gives callers' IDs: a daemon in a container whose /proc
// is another namespace's would read other processes there, so then every
// FLUSH uploads.
var procIsOurs = sync.OnceValue(func() bool {
	self, err := os.Readlink("/proc/self")
	return err == nil && self == strconv.Itoa(os.Getpid())
})

// callerPid is the thread ID the kernel gave for ctx's request, 0 if none.
func callerPid(ctx context.Context) uint32 {
	if c, ok := fuse.FromContext(ctx); ok {
		return c.Pid
	}
	return 0
}

// tgidOf returns the thread group (process) ID of thread tid, 0 if it
// cannot be told or the thread is the kernel's own (page writeback runs
// there on kernels that name its thread).
func tgidOf(tid uint32) int32 {
	if tid == 0 {
		return 0
	}
	b, err := os.ReadFile("/proc/" + strconv.FormatUint(uint64(tid), 10) + "/status")
	if err != nil {
		return 0
	}
	return statusTgid(b)
}

// statusTgid reads the Tgid of a /proc/TID/status text; 0 if it has none,
// or names a kernel thread (Kthread: 1, or a child of kthreadd, PID 2).
func statusTgid(b []byte) int32 {
	field := func(name string) (int64, bool) {
		_, rest, ok := bytes.Cut(b, []byte("\n"+name+":"))
		if !ok {
			return 0, false
		}
		line, _, _ := bytes.Cut(rest, []byte("\n"))
		v, err := strconv.ParseInt(string(bytes.TrimSpace(line)), 10, 32)
		return v, err == nil
	}
	tgid, ok := field("Tgid")
	if !ok || tgid <= 0 {
		return 0
	}
	if k, ok := field("Kthread"); ok && k != 0 {
		return 0
	}
	if pp, ok := field("PPid"); !ok || pp == 2 {
		return 0
	}
	return int32(tgid)
}

// tgidCache remembers the processes of recent threads (tgidOf) for
// recording owners: a program that creates many files from one thread
// reads /proc once. Bounded: emptied when full. Safe for concurrent use.
type tgidCache struct {
	mu sync.Mutex
	m  map[uint32]int32 // guarded by mu
}

// tgidCacheMax bounds the threads tgidCache holds.
const tgidCacheMax = 256

// of returns tgidOf(tid), from the cache when it holds tid.
func (c *tgidCache) of(tid uint32) int32 {
	if tid == 0 {
		return 0
	}
	c.mu.Lock()
	tgid, ok := c.m[tid]
	c.mu.Unlock()
	if ok {
		return tgid
	}
	tgid = tgidOf(tid)
	if tgid == 0 {
		return 0
	}
	c.mu.Lock()
	if c.m == nil || len(c.m) >= tgidCacheMax {
		c.m = make(map[uint32]int32)
	}
	c.m[tid] = tgid
	c.mu.Unlock()
	return tgid
}

// opener resolves the thread that opens a file for writing, an owner of
// its handle (handle.owners). No lock held.
func (n *Node) opener(ctx context.Context) (uint32, int32) {
	pid := callerPid(ctx)
	return pid, n.fsys.tgids.of(pid)
}

// writerOf resolves the process of a write through h by thread pid, unless
// that thread is recorded already (the common case: one lookup per writing
// thread and description). No lock held.
func (h *handle) writerOf(pid uint32) (tgid int32, known bool) {
	if pid != 0 && h.lastWriter.Load() == pid {
		return 0, true
	}
	return h.n.fsys.tgids.of(pid), false
}

// noteWriterLocked records a write through h by thread pid of process tgid
// (from writerOf). n.mu held.
func (n *Node) noteWriterLocked(h *handle, pid uint32, tgid int32, known bool) {
	switch {
	case known:
	case pid == 0:
		n.anonWrites = true
	default:
		h.owners.add(pid, tgid)
		h.lastWriter.Store(pid)
	}
}

// flushByBystander reports whether a FLUSH of h from ctx's caller comes
// from a process that neither opened h nor wrote through it (see above):
// it uploads nothing.
func (n *Node) flushByBystander(ctx context.Context, h *handle) bool {
	pid := callerPid(ctx)
	if pid == 0 || !procIsOurs() {
		return false
	}
	n.mu.Lock()
	if n.anonWrites || h.owners.lost || h.owners.has(pid) {
		n.mu.Unlock()
		return false
	}
	list := slices.Clone(h.owners.list)
	n.mu.Unlock()
	// Read afresh, never from the cache: what decides must be now.
	tgid := tgidOf(pid)
	if tgid == 0 {
		return false
	}
	still := make([]int32, len(list))
	for i, w := range list {
		still[i] = tgidOf(w.tid)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	// Compared under the lock with what is recorded now: a write that
	// came meanwhile added its thread, and the lists differ.
	return !n.anonWrites && h.owners.excludes(tgid, still) && slices.Equal(list, h.owners.list)
}
