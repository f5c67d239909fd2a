package fs

import (
	"fmt"
	"math/rand/v2"
	"time"
)

// uploadState is where a file is in its upload life. It is the one thing
// that decides whether close/fsync may report success: only a file whose
// every byte and attribute the bucket holds is clean.
//
//	          write, truncate, setattr
//	clean ───────────────────────────▶ dirty ◀─────────────┐
//	  ▲                                  │ flush, fsync,    │ written while
//	  │ upload of gen == gen             │ retry loop       │ uploading
//	  │                                  ▼                  │
//	  └───────────────────────────── uploading ────────────┘
//	                                  │    ▲
//	                         failed   │    │ retry (back-off), flush
//	                                  ▼    │
//	                                 failed ──── retry window over, ───▶ recovered
//	                                             nobody has it open        (terminal)
//
// A file in dirty, uploading or failed has local data the bucket lacks:
// it is in the filesystem's registry (registry.go), its staging file and
// sidecar are on disk (staging.go), and it stays visible and usable in the
// mount whatever the kernel forgets.
type uploadState uint8

const (
	// stateClean: the bucket holds everything the node shows.
	stateClean uploadState = iota
	// stateDirty: local changes the bucket does not have, no upload running.
	stateDirty
	// stateUploading: an upload of generation upGen is in flight.
	stateUploading
	// stateFailed: the last upload failed; the retry loop tries again at
	// nextRetry.
	stateFailed
	// stateRecovered: given up on; the data was moved to the recovery
	// directory. Terminal: the node no longer names an object.
	stateRecovered
)

func (s uploadState) String() string {
	switch s {
	case stateClean:
		return "clean"
	case stateDirty:
		return "dirty"
	case stateUploading:
		return "uploading"
	case stateFailed:
		return "failed"
	case stateRecovered:
		return "recovered"
	}
	return fmt.Sprintf("state(%d)", uint8(s))
}

// pending reports whether the state holds data the bucket lacks.
func (s uploadState) pending() bool {
	return s == stateDirty || s == stateUploading || s == stateFailed
}

// upload records what the state machine knows of a file's uploads. It is
// part of Node and guarded by Node.mu.
type uploadRecord struct {
	state    uploadState
	upGen    uint64 // stateUploading: the generation being uploaded
	attempts int    // failed uploads since the last success
	// fail: the current run of failures; nil since the last success (most
	// files never fail, and every node carries an uploadRecord).
	fail *uploadFailure
}

// uploadFailure is what an uploadRecord keeps while uploads fail.
type uploadFailure struct {
	firstFail   time.Time // when the current run of failures began
	nextRetry   time.Time // stateFailed: not retried before then
	lastFailure error     // the last upload's error, for logs
	// failedGen and failedAt: the generation the last failed upload sent,
	// and when it failed (closeFailsFast).
	failedGen uint64
	failedAt  time.Time
}

// lastFailure is the last failed upload's error since the last success,
// or nil.
func (u *uploadRecord) lastFailure() error {
	if u.fail == nil {
		return nil
	}
	return u.fail.lastFailure
}

// closeFailsFast is how long after an upload failed a close of the same
// data answers that failure at once instead of trying again. Every exec
// in a program that has the file open closes a copy of the descriptor
// (close-on-exec), and each such close is a FLUSH: with the store down,
// each would wait out a whole upload attempt (seconds of SDK retries), one
// after another, and the program's children would not start. Those
// waiting while the attempt runs get its answer when it ends. The retry
// loop keeps trying meanwhile; nothing is reported stored that is not.
const closeFailsFast = 2 * time.Second

// recentFailureLocked returns the error of an upload of exactly n's
// current data that failed less than closeFailsFast ago, or nil. n.mu
// held.
func (n *Node) recentFailureLocked(now time.Time) error {
	f := n.up.fail
	if n.up.state != stateFailed || f == nil || f.failedGen != n.gen || f.lastFailure == nil ||
		now.Sub(f.failedAt) >= closeFailsFast {
		return nil
	}
	return f.lastFailure
}

// Back-off of the retry loop: capped exponential with jitter, so that a
// store coming back after an outage is not hit by every file at once.
const (
	retryBase = time.Second
	retryCap  = 30 * time.Second
)

// retryDelay is the wait before the attempt after `attempts` failures.
func retryDelay(attempts int) time.Duration {
	d := retryBase
	for i := 1; i < attempts && d < retryCap; i++ {
		d *= 2
	}
	d = min(d, retryCap)
	// ±25% jitter.
	return d*3/4 + time.Duration(rand.Int64N(int64(d/2)+1))
}

// markDirtyLocked records a local change. n.mu held.
func (n *Node) markDirtyLocked() {
	n.gen++
	switch n.up.state {
	case stateUploading:
		// The upload in flight carries an older generation: its end
		// sees gen != upGen and leaves the file dirty.
	case stateRecovered:
		// A recovered node is out of the namespace; nothing writes it.
	default:
		n.up.state = stateDirty
	}
}

// beginUploadLocked moves a pending file to uploading and returns the
// generation the upload carries. n.mu held.
func (n *Node) beginUploadLocked() uint64 {
	n.up.state = stateUploading
	n.up.upGen = n.gen
	return n.gen
}

// endUploadLocked records an upload's outcome. n.mu held.
func (n *Node) endUploadLocked(gen uint64, etag string, err error, now time.Time) {
	if n.up.state != stateUploading || n.up.upGen != gen {
		// Not ours to decide (a rename or unlink took over): leave it.
		return
	}
	if err != nil {
		if n.up.fail == nil || n.up.attempts == 0 {
			n.up.fail = &uploadFailure{firstFail: now}
		}
		n.up.attempts++
		f := n.up.fail
		f.lastFailure = err
		f.failedGen, f.failedAt = gen, now
		f.nextRetry = now.Add(retryDelay(n.up.attempts))
		n.up.state = stateFailed
		return
	}
	n.etag = etag
	n.up.attempts, n.up.fail = 0, nil
	if n.gen == gen {
		n.up.state = stateClean
	} else {
		n.up.state = stateDirty
	}
}

// hasPendingLocked reports whether n holds data the bucket lacks and still
// names an object (an unlinked node's data is for its open descriptors
// only). n.mu held.
func (n *Node) hasPendingLocked() bool {
	return n.up.state.pending() && !n.unlinked
}
