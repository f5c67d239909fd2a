package cache

import (
	"slices"
	"testing"
)

const raBS = 1 << 20

func newRA(t *testing.T, cfg ReadaheadConfig) *Readahead {
	t.Helper()
	if cfg.BlockSize == 0 {
		cfg.BlockSize = raBS
	}
	return NewReadahead(cfg)
}

func span(from, to int64) []int64 {
	var s []int64
	for i := from; i <= to; i++ {
		s = append(s, i)
	}
	return s
}

func TestWindowGrowsFromSmallAndDoubles(t *testing.T) {
	ra := newRA(t, ReadaheadConfig{InitialBlocks: 2, MaxWindowBytes: 16 * raBS, RunBytes: 64 * raBS})
	w := ra.NewWindow(1000 * raBS)
	defer w.Close()
	// First read at 0: a small window at once, for a fast first byte.
	if got := w.Observe(0, 128<<10); !slices.Equal(got, []int64{1, 2}) {
		t.Fatalf("first read: %v", got)
	}
	if w.Blocks() != 2 || ra.Active() != 1 {
		t.Fatalf("window %d, active %d", w.Blocks(), ra.Active())
	}
	// Reads inside block 0 do not grow the window.
	for off := int64(128 << 10); off < raBS; off += 128 << 10 {
		if got := w.Observe(off, 128<<10); len(got) != 0 || w.Blocks() != 2 {
			t.Fatalf("inside block 0 at %d: %v, window %d", off, got, w.Blocks())
		}
	}
	// Each new block doubles it, up to the cap of 16 blocks.
	wantWin := []int64{4, 8, 16, 16, 16}
	for i, want := range wantWin {
		blk := int64(i + 1)
		got := w.Observe(blk*raBS, 128<<10)
		if w.Blocks() != want {
			t.Fatalf("block %d: window %d, want %d", blk, w.Blocks(), want)
		}
		if len(got) > 0 && got[len(got)-1] != blk+want {
			t.Fatalf("block %d: fetch %v, want up to %d", blk, got, blk+want)
		}
		for off := blk*raBS + 128<<10; off < (blk+1)*raBS; off += 128 << 10 {
			w.Observe(off, 128<<10)
		}
	}
}

func TestWindowNeverRepeatsAndTopsUpInChunks(t *testing.T) {
	ra := newRA(t, ReadaheadConfig{InitialBlocks: 2, MaxWindowBytes: 32 * raBS, RunBytes: 8 * raBS})
	w := ra.NewWindow(1000 * raBS)
	seen := map[int64]bool{}
	var batches []int
	for off := int64(0); off < 200*raBS; off += 256 << 10 {
		got := w.Observe(off, 256<<10)
		for _, i := range got {
			if seen[i] {
				t.Fatalf("block %d handed out twice", i)
			}
			if i <= off/raBS {
				t.Fatalf("block %d is not ahead of the read at block %d", i, off/raBS)
			}
			seen[i] = true
		}
		if len(got) > 0 {
			batches = append(batches, len(got))
		}
		// Every block up to the reader is handed out: no holes.
		for i := int64(1); i <= off/raBS; i++ {
			if !seen[i] {
				t.Fatalf("block %d never handed out (reader at %d)", i, off/raBS)
			}
		}
	}
	// Steady state: chunks of 8 blocks (RunBytes), not one per block.
	steady := batches[len(batches)/2:]
	for _, n := range steady {
		if n != 8 {
			t.Fatalf("steady batches %v", steady)
		}
	}
}

func TestWindowCollapsesOnRandomRead(t *testing.T) {
	ra := newRA(t, ReadaheadConfig{})
	w := ra.NewWindow(1000 * raBS)
	defer w.Close()
	for off := int64(0); off < 4*raBS; off += raBS {
		w.Observe(off, raBS)
	}
	if w.Blocks() == 0 || ra.Active() != 1 {
		t.Fatal("not sequential")
	}
	if got := w.Observe(500*raBS, 4096); len(got) != 0 {
		t.Fatalf("random read fetched %v", got)
	}
	if w.Blocks() != 0 || ra.Active() != 0 {
		t.Fatalf("window %d, active %d after a random read", w.Blocks(), ra.Active())
	}
	// One read continuing the random one is not enough... it is: two in
	// a row make a run; the window restarts small, from the new place.
	got := w.Observe(500*raBS+4096, 4096)
	if w.Blocks() != DefaultInitialBlocks || !slices.Equal(got, []int64{501, 502}) {
		t.Fatalf("restart: window %d fetch %v", w.Blocks(), got)
	}
}

func TestWindowRandomReaderNeverOpens(t *testing.T) {
	ra := newRA(t, ReadaheadConfig{BlockSize: 64 << 10})
	w := ra.NewWindow(1 << 30)
	offs := []int64{7 << 20, 3 << 20, 900 << 20, 12345, 5 << 20, 5<<20 + 64<<10, 64 << 20}
	for _, off := range offs {
		if got := w.Observe(off, 4096); len(got) != 0 {
			t.Fatalf("random read at %d fetched %v", off, got)
		}
	}
	// The first read not at 0 does not open a window by itself either.
	w2 := ra.NewWindow(1 << 30)
	if got := w2.Observe(1<<20, 4096); len(got) != 0 {
		t.Fatalf("first read at 1 MiB fetched %v", got)
	}
}

func TestWindowToleratesReorderedReads(t *testing.T) {
	ra := newRA(t, ReadaheadConfig{BlockSize: 128 << 10})
	w := ra.NewWindow(1 << 30)
	// The kernel's async readahead may deliver 128 KiB requests slightly
	// out of order.
	order := []int64{0, 1, 3, 2, 4, 5, 7, 6, 8}
	for _, i := range order {
		w.Observe(i*128<<10, 128<<10)
		if w.Blocks() == 0 {
			t.Fatalf("collapsed at chunk %d", i)
		}
	}
}

func TestWindowFairShare(t *testing.T) {
	ra := newRA(t, ReadaheadConfig{MaxWindowBytes: 64 * raBS, TotalBytes: 64 * raBS})
	ws := make([]*Window, 4)
	for i := range ws {
		ws[i] = ra.NewWindow(10000 * raBS)
	}
	read := func(w *Window, blocks int64) {
		for b := int64(0); b < blocks; b++ {
			w.Observe(b*raBS, raBS)
		}
	}
	read(ws[0], 20)
	if w := ws[0].Blocks(); w != 64 {
		t.Fatalf("alone: window %d, want 64", w)
	}
	for _, w := range ws[1:] {
		read(w, 20)
	}
	if ra.Active() != 4 {
		t.Fatalf("active %d", ra.Active())
	}
	for i, w := range ws {
		w.Observe(20*raBS, raBS) // everyone reads on; caps apply
		if got := w.Blocks(); got > 16 {
			t.Fatalf("reader %d: window %d with 4 readers sharing 64", i, got)
		}
	}
	for _, w := range ws[1:] {
		w.Close()
	}
	if ra.Active() != 1 {
		t.Fatalf("active %d after closes", ra.Active())
	}
	read(ws[0], 30)
	if w := ws[0].Blocks(); w != 64 {
		t.Fatalf("alone again: window %d", w)
	}
	ws[0].Close()
	ws[0].Close() // idempotent
	if ra.Active() != 0 {
		t.Fatalf("active %d", ra.Active())
	}
}

func TestWindowSkippedIsHandedOutAgain(t *testing.T) {
	ra := newRA(t, ReadaheadConfig{InitialBlocks: 4})
	w := ra.NewWindow(100 * raBS)
	got := w.Observe(0, 4096)
	if !slices.Equal(got, span(1, 4)) {
		t.Fatalf("got %v", got)
	}
	w.Skipped(3) // budget full from block 3 on
	if got := w.Observe(4096, 4096); !slices.Equal(got, span(3, 4)) {
		t.Fatalf("after Skipped: %v", got)
	}
}

func TestWindowStopsAtEOF(t *testing.T) {
	ra := newRA(t, ReadaheadConfig{InitialBlocks: 8})
	w := ra.NewWindow(3*raBS + 1) // blocks 0..3
	if got := w.Observe(0, 4096); !slices.Equal(got, span(1, 3)) {
		t.Fatalf("got %v", got)
	}
	if got := w.Observe(4096, 4096); len(got) != 0 {
		t.Fatalf("past EOF: %v", got)
	}
	empty := ra.NewWindow(0)
	if got := empty.Observe(0, 4096); len(got) != 0 {
		t.Fatalf("empty object: %v", got)
	}
}

func TestReadaheadDisabled(t *testing.T) {
	ra := newRA(t, ReadaheadConfig{MaxWindowBytes: -1})
	w := ra.NewWindow(100 * raBS)
	for off := int64(0); off < 10*raBS; off += raBS {
		if got := w.Observe(off, raBS); len(got) != 0 {
			t.Fatalf("disabled readahead fetched %v", got)
		}
	}
}
