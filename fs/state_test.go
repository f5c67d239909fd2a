package fs

import (
	"errors"
	"testing"
	"time"
)

func TestRetryDelayIsCappedAndJittered(t *testing.T) {
	prev := time.Duration(0)
	for attempts := 1; attempts <= 20; attempts++ {
		d := retryDelay(attempts)
		if d <= 0 || d > retryCap*5/4 {
			t.Fatalf("retryDelay(%d) = %v, want in (0, %v]", attempts, d, retryCap*5/4)
		}
		if attempts <= 3 && d < prev/2 {
			t.Errorf("retryDelay(%d) = %v after %v: not growing", attempts, d, prev)
		}
		prev = d
	}
	seen := map[time.Duration]bool{}
	for range 20 {
		seen[retryDelay(10)] = true
	}
	if len(seen) < 2 {
		t.Error("retryDelay has no jitter")
	}
}

func TestUploadStateTransitions(t *testing.T) {
	n := &Node{kind: kindFile}
	now := time.Now()
	n.markDirtyLocked()
	if n.up.state != stateDirty || !n.hasPendingLocked() {
		t.Fatalf("after a write: %v", n.up.state)
	}
	gen := n.beginUploadLocked()
	n.markDirtyLocked() // written while uploading
	if n.up.state != stateUploading {
		t.Fatalf("a write during an upload left state %v", n.up.state)
	}
	n.endUploadLocked(gen, `"e1"`, nil, now)
	if n.up.state != stateDirty {
		t.Fatalf("an upload of an older generation made the file %v, want dirty", n.up.state)
	}
	gen = n.beginUploadLocked()
	n.endUploadLocked(gen, "", errors.New("down"), now)
	if n.up.state != stateFailed || n.up.attempts != 1 || !n.up.fail.nextRetry.After(now) || !n.hasPendingLocked() {
		t.Fatalf("after a failure: %+v", n.up)
	}
	gen = n.beginUploadLocked()
	n.endUploadLocked(gen, "", errors.New("down"), now.Add(time.Second))
	if n.up.attempts != 2 || !n.up.fail.firstFail.Equal(now) {
		t.Fatalf("second failure: %+v", n.up)
	}
	gen = n.beginUploadLocked()
	n.endUploadLocked(gen, `"e2"`, nil, now)
	if n.up.state != stateClean || n.up.attempts != 0 || n.etag != `"e2"` || n.hasPendingLocked() {
		t.Fatalf("after success: %+v etag %s", n.up, n.etag)
	}
	// An outcome for an upload that is no longer the current one (a rename
	// took over) changes nothing.
	n.markDirtyLocked()
	n.endUploadLocked(99, `"stale"`, nil, now)
	if n.up.state != stateDirty || n.etag != `"e2"` {
		t.Fatalf("a stale outcome changed the node: %+v %s", n.up, n.etag)
	}
	n.unlinked = true
	if n.hasPendingLocked() {
		t.Error("an unlinked file must never be uploaded")
	}
}
