package tuning

import (
	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
)

// ValueThreshold is the largest value badger keeps inside its LSM tables.
// Every microdescriptor, certificate and small state value is below it,
// so badger's value log stays empty and never needs garbage collection.
const ValueThreshold = 256 << 10

// Options returns the tuned options for a badger directory dir. The
// numbers behind each choice are in docs/dircache.md.
func Options(dir string, logger badger.Logger, syncWrites bool) badger.Options {
	return badger.DefaultOptions(dir).
		WithLogger(logger).
		WithLoggingLevel(badger.WARNING).
		// Memory: one small memtable (its arena is allocated at open, its
		// log file mapped), no block or index cache.
		WithMemTableSize(2 << 20).
		WithNumMemtables(1).
		WithBlockCacheSize(0).
		WithIndexCacheSize(0).
		WithCompression(options.None).
		// Small tables and few levels for a cache of a few to a few tens
		// of MB.
		WithBaseTableSize(1 << 20).
		WithBaseLevelSize(4 << 20).
		WithMaxLevels(4).
		WithNumLevelZeroTables(2).
		WithNumLevelZeroTablesStall(8).
		WithNumCompactors(2). // 1 is rejected; 0 stalls writes forever at the L0 limit
		// Values stay in the LSM; the value log only gets what exceeds
		// the threshold (state values over 256 KiB), so keep it small:
		// a new one is created and mapped at every open.
		WithValueThreshold(ValueThreshold).
		WithValueLogFileSize(4 << 20).
		WithNumGoroutines(1).
		WithMetricsEnabled(false).
		WithDetectConflicts(false).
		WithSyncWrites(syncWrites).
		// Damage is an error, never garbage: checksums on every block
		// and value read (tables are checked whole before open).
		WithVerifyValueChecksum(true).
		WithChecksumVerificationMode(options.OnBlockRead)
}

// Memtable sizes for a process memory budget (MemTableSizeFor).
const (
	// MinMemTableSize is the smallest memtable: badger's batch limit is
	// 15 % of it, and a batch must hold the largest microdescriptor
	// dircache accepts (256 KiB), so 2 MiB (314 KB batches) is the floor.
	MinMemTableSize = 2 << 20
	// MaxMemTableSize bounds the memtable for large budgets: bigger ones
	// only absorb write bursts, which a directory cache does not have.
	MaxMemTableSize = 16 << 20
)

// MemTableSizeFor is the memtable size for a whole-process memory budget
// of budget bytes: 1/32 of it, within [MinMemTableSize, MaxMemTableSize]
// (2 MiB up to a 64 MiB budget, 4 MiB at 128 MiB). The memtable's arena,
// about 1.3 times this, lives on the Go heap from Open on; everything else
// badger holds is mapped files or off by the tuning above.
func MemTableSizeFor(budget int64) int64 {
	return min(max(budget/32, MinMemTableSize), MaxMemTableSize)
}
