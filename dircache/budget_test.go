package dircache

import (
	"testing"

	"github.com/onionlite/onionlite/dircache/internal/tuning"
)

func TestMemTableSizeFor(t *testing.T) {
	for _, c := range []struct{ budget, want int64 }{
		{12 << 20, 512 << 10}, {16 << 20, 512 << 10}, {32 << 20, 1 << 20},
		{64 << 20, 2 << 20}, {128 << 20, 2 << 20}, {1 << 30, 2 << 20},
	} {
		if got := tuning.MemTableSizeFor(c.budget); got != c.want {
			t.Errorf("MemTableSizeFor(%d MiB) = %d, want %d", c.budget>>20, got, c.want)
		}
	}
}

// TestMemoryBudgetOption: Open sizes badger's memtable from the budget.
func TestMemoryBudgetOption(t *testing.T) {
	for _, c := range []struct{ budget, memtable int64 }{
		{0, 512 << 10}, {16 << 20, 512 << 10}, {128 << 20, 2 << 20},
	} {
		db, err := Open(t.TempDir(), Options{MemoryBudget: c.budget})
		if err != nil {
			t.Fatal(err)
		}
		if got, want := db.MemTableBytes(), c.memtable*13/10; got != want {
			t.Errorf("budget %d MiB: MemTableBytes %d, want %d", c.budget>>20, got, want)
		}
		db.Close()
	}
}
