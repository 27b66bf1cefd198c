package tuning

import (
	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
)

// ValueThreshold is the smallest value badger puts in its value log
// instead of its LSM tables. Every microdescriptor, certificate and state
// value is above it: they are written once to the value log, and the
// memtable, the tables and compaction only carry keys, value pointers and
// the 8-byte listing times. That keeps the memtable small and makes a
// directory's bulk write cost no table building or compaction of the
// texts (docs/dircache.md has the measurements). The value log's space is
// reclaimed by GC after pruning (DB.PruneMicrodescs).
const ValueThreshold = 64

// Options returns the tuned options for a badger directory dir. The
// numbers behind each choice are in docs/dircache.md.
func Options(dir string, logger badger.Logger, syncWrites bool) badger.Options {
	return badger.DefaultOptions(dir).
		WithLogger(logger).
		WithLoggingLevel(badger.WARNING).
		// Memory: one small memtable (its arena is allocated at open, its
		// log file mapped), no block or index cache.
		WithMemTableSize(MinMemTableSize).
		WithNumMemtables(1).
		WithBlockCacheSize(0).
		WithIndexCacheSize(0).
		WithCompression(options.None).
		// Small tables and few levels: with the values in the value log
		// the tables hold keys, pointers and listing times (about 1 MB
		// for a full directory). A table builder starts with a buffer of
		// twice BaseTableSize on the Go heap, for every memtable flush
		// and compaction.
		WithBaseTableSize(256 << 10).
		WithBaseLevelSize(4 << 20).
		WithMaxLevels(4).
		WithNumLevelZeroTables(2).
		WithNumLevelZeroTablesStall(8).
		// No compactors: each runs on a 50 ms ticker (hard-coded in
		// badger) for as long as badger is open, 40 wake-ups a second
		// with two, and a client on a slow link keeps badger open
		// through its whole bootstrap. dircache compacts level 0 itself
		// after each write (DB.compactLevel0), which is the only way
		// level 0 grows; without that, writes would stop for good at
		// NumLevelZeroTablesStall.
		WithNumCompactors(0).
		// Values go to the value log (see ValueThreshold); its files are
		// small so that GC can rewrite one cheaply.
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
	// MinMemTableSize is the smallest memtable: with values in the value
	// log an entry costs a skiplist node, its key and a value pointer
	// (about 170 bytes), and badger's batch limit (15 % of the memtable,
	// 78 KB) still takes a few hundred microdescriptors per transaction.
	MinMemTableSize = 512 << 10
	// MaxMemTableSize bounds the memtable for large budgets: bigger ones
	// only absorb write bursts, which a directory cache does not have.
	MaxMemTableSize = 2 << 20
)

// MemTableSizeFor is the memtable size for a whole-process memory budget
// of budget bytes: 1/32 of it, within [MinMemTableSize, MaxMemTableSize]
// (512 KiB up to a 16 MiB budget, 2 MiB from 64 MiB up). The memtable's arena,
// about 1.3 times this, lives on the Go heap from Open on; everything else
// badger holds is mapped files or off by the tuning above.
func MemTableSizeFor(budget int64) int64 {
	return min(max(budget/32, MinMemTableSize), MaxMemTableSize)
}
