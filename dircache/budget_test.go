package dircache

import (
	"testing"

	"github.com/onionlite/onionlite/dircache/internal/tuning"
)

func TestMemTableSizeFor(t *testing.T) {
	for _, c := range []struct{ budget, want int64 }{
		{12 << 20, 2 << 20}, {16 << 20, 2 << 20}, {64 << 20, 2 << 20},
		{128 << 20, 4 << 20}, {1 << 30, 16 << 20},
	} {
		if got := tuning.MemTableSizeFor(c.budget); got != c.want {
			t.Errorf("MemTableSizeFor(%d MiB) = %d, want %d", c.budget>>20, got, c.want)
		}
	}
}

// TestMemoryBudgetOption: Open sizes badger's memtable from the budget.
func TestMemoryBudgetOption(t *testing.T) {
	for _, c := range []struct{ budget, memtable int64 }{
		{0, 2 << 20}, {16 << 20, 2 << 20}, {128 << 20, 4 << 20},
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
