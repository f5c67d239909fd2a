package fs

import (
	"context"
	"errors"
	"sync"
	"time"
)

// The retry loop owns the uploads nobody waits for: files whose close or
// fsync failed, files closed with changes not yet flushed, and files a
// previous daemon left in the staging directory. One goroutine per
// filesystem scans the registry whenever a file is released with pending
// data and at the earliest due retry; each failed file waits out a capped,
// jittered exponential back-off. A file is given up on (moved to the
// recovery directory) only after RetryFor of failures, and only while
// nobody has it open: an open file's writer still gets an honest answer
// from its own close.

// retryParallel bounds the uploads the retry loop runs at once.
const retryParallel = 4

// defaultRetryFor is how long failed uploads are retried before their data
// goes to the recovery directory. Long enough for a store restart, a
// network outage or a credentials rotation.
const defaultRetryFor = 30 * time.Minute

// wakeRetries makes the retry loop look at the registry now.
func (f *FS) wakeRetries() {
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// openDirtyLocked reports a dirty file someone has open: its writer's
// close uploads it, and the retry loop must not (an O_TRUNC open may have
// emptied it, and the object changes only at that close). n.mu held.
func (n *Node) openDirtyLocked() bool {
	return n.up.state == stateDirty && n.openCount > 0
}

// retryLoop runs until shutdown is closed.
func (f *FS) retryLoop() {
	defer close(f.retryStopped)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		next := f.retryPass(time.Now())
		wait := time.Until(next)
		if next.IsZero() || wait > time.Minute {
			wait = time.Minute // a periodic look, in case a wake-up was missed
		}
		if wait < 50*time.Millisecond {
			wait = 50 * time.Millisecond
		}
		timer.Reset(wait)
		select {
		case <-f.shutdown:
			return
		case <-f.wake:
		case <-timer.C:
		}
	}
}

// retryPass uploads what is due, gives up on what has failed for too long,
// and returns when the next retry is due (zero: nothing waits).
func (f *FS) retryPass(now time.Time) time.Time {
	var due, expired []*Node
	var next time.Time
	for _, n := range f.allRegistered() {
		n.mu.Lock()
		switch {
		case !n.hasPendingLocked() || n.retired:
		case n.up.state == stateDirty && !n.openDirtyLocked():
			// Closed with changes no flush carried (or picked up from a
			// previous daemon): upload now.
			due = append(due, n)
		case n.up.state == stateFailed && n.up.fail == nil:
			// endUploadLocked records every failure; a failed state
			// without one has nothing to wait for.
			due = append(due, n)
		case n.up.state == stateFailed && now.Sub(n.up.fail.firstFail) >= f.cfg.RetryFor && n.openCount == 0:
			expired = append(expired, n)
		case n.up.state == stateFailed && !now.Before(n.up.fail.nextRetry):
			due = append(due, n)
		case n.up.state == stateFailed:
			if next.IsZero() || n.up.fail.nextRetry.Before(next) {
				next = n.up.fail.nextRetry
			}
		}
		n.mu.Unlock()
	}
	for _, n := range expired {
		_ = n.giveUp("retries exhausted")
	}
	if len(due) == 0 {
		return next
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, retryParallel)
	for _, n := range due {
		select {
		case <-f.shutdown:
			wg.Wait()
			return time.Time{}
		case sem <- struct{}{}:
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if n.upload(context.Background(), "retry") == 0 && !n.hasPending() {
				f.log.Info("pending file uploaded", "key", n.currentKey())
				n.dropStagingIfIdle()
			}
		}()
	}
	wg.Wait()
	// Some may have failed again: come back at once to schedule them.
	return time.Now()
}

// FlushAll uploads every file with pending data. It is the shutdown's
// last word: what cannot be uploaded stays in the staging directory, with
// its sidecar, for the next daemon on the same bucket and prefix; the
// returned error names those files.
func (f *FS) FlushAll(ctx context.Context) error {
	f.stopRetries()
	var failed []error
	for _, n := range f.allRegistered() {
		if !n.hasPending() {
			continue
		}
		if ctx.Err() != nil {
			failed = append(failed, errors.New(n.currentKey()+": not uploaded before the shutdown deadline; kept in the staging directory "+f.cfg.StagingDir))
			continue
		}
		if errno := n.upload(ctx, "shutdown"); errno != 0 {
			n.mu.Lock()
			key, file := n.key, f.stagePath(n.stage, dataSuffix)
			n.mu.Unlock()
			failed = append(failed, errors.New(key+": upload failed ("+errno.Error()+"); kept in "+file))
			f.log.Error("file not uploaded at shutdown; it stays in the staging directory and is uploaded when the same bucket and prefix are mounted again",
				"key", key, "staging_file", file)
			continue
		}
		n.dropStagingIfIdle()
	}
	f.mu.Lock()
	failed = append(failed, f.recovered...)
	f.mu.Unlock()
	if len(failed) == 0 {
		// Every handle is gone by now (the kernel released them at
		// unmount): the invariants that only hold at rest are checked
		// here, where the integration tests see them (a broken one is a
		// bug, logged for them to catch, never a reason to lose data).
		for _, bad := range f.checkQuiescentInvariants() {
			f.log.Error("internal invariant broken", "what", bad)
		}
	}
	return errors.Join(failed...)
}

// stopRetries ends the retry loop and waits for it.
func (f *FS) stopRetries() {
	f.shutdownOnce.Do(func() { close(f.shutdown) })
	<-f.retryStopped
}
