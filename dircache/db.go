package dircache

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
	"github.com/dgraph-io/badger/v4/skl"

	"github.com/onionlite/onionlite/dircache/internal/tuning"
)

// Options configures Open. The zero value is the tuned default.
type Options struct {
	// Logf receives warnings: what was dropped on load, what Open had to
	// repair. nil discards them.
	Logf func(format string, args ...any)
	// SyncWrites makes every badger commit wait for fsync. Off (the
	// default), a killed process loses nothing that was committed, but a
	// power cut may lose the last writes; what is lost is refetched.
	SyncWrites bool
	// Badger, if set, adjusts the tuned badger options before Open: for
	// measurements (see docs/dircache.md). Compression must stay off.
	Badger func(badger.Options) badger.Options
	// MemoryBudget is the whole-process memory budget the cache lives in
	// (sdk.Client.MemoryBudget); the memtable is sized from it
	// (tuning.MemTableSizeFor: 1/32 of it, 512 KiB to 2 MiB). Zero means
	// the tuned default, a 512 KiB memtable. Badger applies after it.
	MemoryBudget int64
	// IdleClose closes badger once no operation has run for this long;
	// the next operation opens it again. Closed, badger holds no memory
	// (its memtable's arena is on the Go heap while it is open) and maps
	// no files, while a client uses its store only around a bootstrap or
	// an hourly refresh. Zero means DefaultIdleClose; negative keeps
	// badger open until Close.
	IdleClose time.Duration
}

// DefaultIdleClose is Options.IdleClose's default. It is shorter than
// the gaps between a slow link's microdescriptor batches (a 500-descriptor
// batch takes about 20 s at 64 kbit/s), so badger's memtable and mappings
// are released while a slow bootstrap waits for the link; on a fast link
// the batches come closer together and one badger serves the whole
// bootstrap. Reopening costs a few milliseconds; closing flushes the
// memtable into a small level-0 table, and an idle close first compacts
// level 0 if that is due (closeIdle).
const DefaultIdleClose = 10 * time.Second

// Layout of the data directory.
const (
	lockName    = "onionlite.lock"
	openingName = "opening"  // present while Open runs: see crashLoopLimit
	badgerName  = "badger"   // badger's directory
	asideSuffix = ".corrupt" // badgerName + this: the last DB moved aside
	tmpInfix    = ".tmp-"    // temporary files, removed at Open
	consPrefix  = "consensus-"
	consSuffix  = ".cons"
	formatKey   = "!format"
	formatValue = "onionlite-dircache 1"
)

// crashLoopLimit: if this many Opens in a row died before finishing (the
// "opening" marker counts them), the badger directory is moved aside
// instead of being opened again. It guards against damage that makes
// badger itself crash in ways the preflight does not foresee.
const crashLoopLimit = 2

// Key prefixes inside badger.
const (
	pfxMD     = 'm' // + digest[32] -> text
	pfxListed = 'l' // + digest[32] -> big-endian unix seconds
	pfxCert   = 'c' // + identity[20] + signing key[20] -> sha256(text) + text
	pfxState  = 's' // + key -> sha256(value) + value
)

// DB is the persistent Store: badger for microdescriptors, certificates
// and state, and one compressed file per consensus flavor. Open it with
// Open.
type DB struct {
	dir  string
	logf func(format string, args ...any)
	lock *os.File
	bdb  *badger.DB
	cons consFiles
	// memTable is badger's MemTableSize as opened.
	memTable int64

	// rw: operations hold it shared, Close exclusively.
	rw     sync.RWMutex
	closed bool

	// bopt reopens badger after an idle close. bdbMu guards bdb (nil
	// while idle-closed), busy (operations running), idleT, lastUse,
	// reopens and recovery.
	bopt      badger.Options
	idleClose time.Duration
	bdbMu     sync.Mutex
	busy      int
	idleT     *time.Timer
	lastUse   time.Time // when the last operation ended
	reopens   int
	// compactMu serialises compactLevel0 between concurrent writers.
	compactMu sync.Mutex
	// custom: Options.Badger adjusted bopt, so an open that fails is
	// not taken for damage.
	custom bool
	// mdMu makes the read-then-write of last-listed times atomic
	// against other writers of this store.
	mdMu sync.Mutex

	recovery error
}

var _ Store = (*DB)(nil)

type badgerLogger struct{ logf func(string, ...any) }

func (l badgerLogger) Errorf(f string, a ...any)   { l.logf("dircache: badger: "+f, a...) }
func (l badgerLogger) Warningf(f string, a ...any) { l.logf("dircache: badger: "+f, a...) }
func (badgerLogger) Infof(string, ...any)          {}
func (badgerLogger) Debugf(string, ...any)         {}

// Open opens (creating if needed) the cache in dir, which should be a
// no-backup cache directory of its own. It fails with an error matching
// ErrReadOnly when dir cannot be written and ErrLocked when another store
// holds it; the caller should then run from NewMemStore.
//
// A damaged cache never stops Open: damaged tables are dropped, and a
// badger directory that still cannot be opened is moved aside (to
// badger.corrupt, replacing an older one) and started afresh. Recovery
// reports what happened.
func Open(dir string, o Options) (_ *DB, err error) {
	logf := o.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fsErr("create "+dir, err)
	}
	if err := probeWritable(dir); err != nil {
		return nil, err
	}
	if err := checkSpace(dir); err != nil {
		return nil, err
	}
	lock, err := lockFile(filepath.Join(dir, lockName))
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			lock.Close()
		}
	}()
	removeTemps(dir, logf)

	bdir := filepath.Join(dir, badgerName)
	bopt := tuning.Options(bdir, badgerLogger{logf}, o.SyncWrites)
	if o.MemoryBudget > 0 {
		bopt = bopt.WithMemTableSize(tuning.MemTableSizeFor(o.MemoryBudget))
	}
	if o.Badger != nil {
		bopt = o.Badger(bopt)
		if bopt.Compression != options.None || len(bopt.EncryptionKey) > 0 || bopt.InMemory || bopt.ReadOnly {
			return nil, invalid("Options.Badger must keep compression and encryption off, and the store on disk and writable")
		}
		bopt.Dir, bopt.ValueDir = bdir, bdir
	}
	db := &DB{dir: dir, logf: logf, lock: lock, cons: consFiles{dir: dir}, memTable: bopt.MemTableSize, bopt: bopt, idleClose: o.IdleClose}
	if db.idleClose == 0 {
		db.idleClose = DefaultIdleClose
	}
	db.custom = o.Badger != nil
	var problems []error
	db.bdb, problems, err = db.openRepairing()
	if err != nil {
		return nil, err
	}
	db.recovery = errors.Join(problems...)
	if db.idleClose > 0 {
		db.lastUse = time.Now()
		db.idleT = time.AfterFunc(db.idleClose, db.closeIdle)
	}
	return db, nil
}

// openRepairing opens badger from db.bopt the way Open and a reopen after
// an idle close both do: the crash-loop marker counts the attempt, the
// preflight checks and repairs the tables, and a directory badger still
// refuses is moved aside and started afresh. problems says what was
// repaired or moved aside; err is set only when no usable badger could be
// opened. The caller owns bdbMu or is Open.
func (db *DB) openRepairing() (bdb *badger.DB, problems []error, err error) {
	bdir, bopt, logf := db.bopt.Dir, db.bopt, db.logf
	aside := func(why error) error {
		problems = append(problems, why)
		logf("dircache: moving the cache aside and starting afresh: %v", why)
		old := bdir + asideSuffix
		if err := os.RemoveAll(old); err != nil {
			return fsErr("remove "+old, err)
		}
		if err := os.Rename(bdir, old); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fsErr("move aside", err)
		}
		return nil
	}

	marker := filepath.Join(db.dir, openingName)
	if n := readOpening(marker); n >= crashLoopLimit {
		if err := aside(fmt.Errorf("the last %d opens did not finish", n)); err != nil {
			return nil, problems, err
		}
		if err := writeOpening(marker, 0); err != nil {
			return nil, problems, err
		}
	} else if err := writeOpening(marker, n+1); err != nil {
		return nil, problems, err
	}

	if repaired, err := preflight(bdir, bopt); err != nil {
		if len(repaired) > 0 {
			err = fmt.Errorf("%w (after repairing: %s)", err, strings.Join(repaired, "; "))
		}
		if err := aside(fmt.Errorf("preflight: %w", err)); err != nil {
			return nil, problems, err
		}
	} else if len(repaired) > 0 {
		problems = append(problems, fmt.Errorf("repaired damaged files: %s", strings.Join(repaired, "; ")))
		logf("dircache: repaired damaged files: %s", strings.Join(repaired, "; "))
	}

	bdb, err = openBadger(bopt)
	if err == nil {
		if ferr := checkFormat(bdb); ferr != nil {
			bdb.Close()
			bdb, err = nil, ferr
		}
	}
	if err != nil {
		if isReadOnlyErr(err) {
			return nil, problems, fmt.Errorf("%w: %v", ErrReadOnly, err)
		}
		if isResourceErr(err) || db.custom {
			// Not damage: moving the cache aside would not help.
			return nil, problems, fmt.Errorf("dircache: open: %w", err)
		}
		if aerr := aside(err); aerr != nil {
			return nil, problems, aerr
		}
		if bdb, err = openBadger(bopt); err == nil {
			err = checkFormat(bdb)
		}
		if err != nil {
			if bdb != nil {
				bdb.Close()
			}
			return nil, problems, fmt.Errorf("dircache: open fresh cache: %w", err)
		}
	}
	if err := os.Remove(marker); err != nil {
		bdb.Close()
		return nil, problems, fsErr("remove marker", err)
	}
	return bdb, problems, nil
}

// openBadger calls badger.Open, turning a panic into an error.
func openBadger(o badger.Options) (db *badger.DB, err error) {
	defer func() {
		if r := recover(); r != nil {
			db, err = nil, fmt.Errorf("badger panicked: %v", r)
		}
	}()
	return badger.Open(o)
}

// checkFormat writes the format key into a new database and checks it in
// an old one.
func checkFormat(bdb *badger.DB) error {
	return bdb.Update(func(txn *badger.Txn) error {
		it, err := txn.Get([]byte(formatKey))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return txn.Set([]byte(formatKey), []byte(formatValue))
		}
		if err != nil {
			return err
		}
		v, err := it.ValueCopy(nil)
		if err != nil {
			return err
		}
		if string(v) != formatValue {
			return fmt.Errorf("unknown cache format %q", v)
		}
		return nil
	})
}

// Recovery reports what Open, or a reopen after an idle close, had to
// repair: damaged tables it dropped, or why it moved the database aside.
// nil when the cache always opened cleanly.
func (db *DB) Recovery() error {
	db.bdbMu.Lock()
	defer db.bdbMu.Unlock()
	return db.recovery
}

// MemTableBytes estimates what badger's memtable holds on the Go heap: its
// arena, allocated when badger opens, is about 1.3 times the memtable size
// (docs/dircache.md). It is 0 while badger is closed for idleness.
func (db *DB) MemTableBytes() int64 {
	if !db.badgerOpen() {
		return 0
	}
	return db.memTable * 13 / 10
}

func readOpening(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || n < 1 {
		return 1 // torn write: it was there, so one open did not finish
	}
	return n
}

// writeOpening writes the marker without fsync: it is a hint, and a torn
// one reads as a single unfinished open.
func writeOpening(path string, n int) error {
	if err := os.WriteFile(path, []byte(strconv.Itoa(n)+"\n"), 0o600); err != nil {
		return fsErr("write marker", err)
	}
	return nil
}

// writeFileSync writes a small file atomically and durably.
func writeFileSync(path string, b []byte) error {
	return writeFileSyncFunc(path, func(w io.Writer) error {
		_, err := w.Write(b)
		return err
	})
}

// writeFileSyncFunc replaces path with what write writes, through a
// temporary file that is synced and renamed over it.
func writeFileSyncFunc(path string, write func(io.Writer) error) error {
	dir, name := filepath.Split(path)
	f, err := os.CreateTemp(dir, name+tmpInfix+"*")
	if err != nil {
		return err
	}
	if err = write(f); err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
		return err
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOTSUP) {
		return err
	}
	return nil
}

// removeTemps deletes temporary files a killed writer left behind.
func removeTemps(dir string, logf func(string, ...any)) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		if strings.Contains(e.Name(), tmpInfix) {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
				logf("dircache: remove %s: %v", e.Name(), err)
			}
		}
	}
}

func probeWritable(dir string) error {
	f, err := os.CreateTemp(dir, "probe"+tmpInfix+"*")
	if err != nil {
		return fsErr("write to "+dir, err)
	}
	name := f.Name()
	f.Close()
	if err := os.Remove(name); err != nil {
		return fsErr("write to "+dir, err)
	}
	return nil
}

// isResourceErr: the system is short of something (space, descriptors,
// memory); the cache itself may be fine.
func isResourceErr(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EMFILE) ||
		errors.Is(err, syscall.ENFILE) || errors.Is(err, syscall.ENOMEM)
}

func isReadOnlyErr(err error) bool {
	return errors.Is(err, fs.ErrPermission) || errors.Is(err, syscall.EROFS)
}

// minFreeSpace is the free space that Open and every write to badger
// need. badger maps its memtable log (4 MiB), value log (up to 8 MiB) and
// discard file (1 MiB) as sparse files and writes through the mappings, so
// a file system that runs out of space faults the process with SIGBUS,
// which a Go program cannot recover from: on a full phone the app would
// crash at every start. With this much free every mapping fits whole,
// with room for a compaction's tables and a consensus file. Writes to the
// consensus file get ENOSPC like any write and need no check.
const minFreeSpace = 32 << 20

// checkSpace fails with ErrReadOnly when dir's file system has less than
// minFreeSpace available (another process may still fill it between the
// check and a write; this only keeps the store from filling it itself).
func checkSpace(dir string) error {
	if free, ok := freeSpace(dir); ok && free < minFreeSpace {
		return fmt.Errorf("%w: only %d bytes free on the file system of %s (the cache needs %d MiB to write safely)", ErrReadOnly, free, dir, minFreeSpace>>20)
	}
	return nil
}

// fsErr wraps a file-system error, marking permission and read-only
// file-system errors as ErrReadOnly.
func fsErr(what string, err error) error {
	if isReadOnlyErr(err) {
		return fmt.Errorf("%w: %s: %v", ErrReadOnly, what, err)
	}
	return fmt.Errorf("dircache: %s: %w", what, err)
}

func (db *DB) begin() error {
	db.rw.RLock()
	if db.closed {
		db.rw.RUnlock()
		return ErrClosed
	}
	db.bdbMu.Lock()
	defer db.bdbMu.Unlock()
	if db.idleT != nil {
		db.idleT.Stop()
	}
	if db.bdb == nil {
		// The files may have changed while badger was closed (a user's
		// "clear cache", a failing disk), so it opens as Open does.
		b, problems, err := db.openRepairing()
		if len(problems) > 0 {
			db.recovery = errors.Join(append([]error{db.recovery}, problems...)...)
		}
		if err != nil {
			db.rw.RUnlock()
			return fmt.Errorf("dircache: reopen: %w", err)
		}
		db.bdb = b
		db.reopens++
	}
	db.busy++
	return nil
}

func (db *DB) end() {
	db.bdbMu.Lock()
	db.busy--
	db.lastUse = time.Now()
	if db.busy == 0 && db.idleClose > 0 {
		if db.idleT == nil {
			db.idleT = time.AfterFunc(db.idleClose, db.closeIdle)
		} else {
			db.idleT.Reset(db.idleClose)
		}
	}
	db.bdbMu.Unlock()
	db.rw.RUnlock()
}

// closeIdle closes badger if no operation has run for idleClose; the
// next operation reopens it. It needs only bdbMu: operations use bdb
// between begin and end, while busy counts them.
func (db *DB) closeIdle() {
	db.bdbMu.Lock()
	defer db.bdbMu.Unlock()
	if db.busy > 0 || db.bdb == nil || time.Since(db.lastUse) < db.idleClose {
		return
	}
	// Level 0 is compacted first if it is due, so that the tables each
	// close flushes do not pile up for the next open (a warm start above
	// all) to compact on top of its peak. No operation runs (busy is 0
	// and bdbMu is held), so no other compaction can.
	db.compactLevel0(db.bdb)
	if err := db.bdb.Close(); err != nil {
		db.logf("dircache: closing the idle cache: %v", err)
	}
	db.bdb = nil
}

// update runs fn in a badger transaction, then compacts level 0 if the
// write made that due. Every write of the store goes through it (or
// through gcValueLog, which compacts likewise).
func (db *DB) update(fn func(txn *badger.Txn) error) error {
	err := db.bdb.Update(fn)
	db.compactLevel0(db.bdb)
	return err
}

// compactLevel0 merges badger's level 0 into the level below once it
// holds NumLevelZeroTables tables, as badger's own compactors would.
// dircache runs badger without compactors (tuning.Options): each of them
// wakes on a 50 ms ticker for as long as badger is open, which kept a
// client on a slow link busy waking up for the whole of a bootstrap.
// Level 0 grows only by memtable flushes, which only writes (and the
// close of badger) cause, so the store compacts after each write
// transaction and before an idle close: level 0 then never comes near
// NumLevelZeroTablesStall, where badger would stop every write with
// nothing left to compact. Failures are logged; the next write tries
// again. The caller is inside begin and end, or holds bdbMu with no
// operation running.
func (db *DB) compactLevel0(bdb *badger.DB) {
	if level0Tables(bdb) < db.bopt.NumLevelZeroTables {
		return
	}
	db.compactMu.Lock()
	defer db.compactMu.Unlock()
	if level0Tables(bdb) < db.bopt.NumLevelZeroTables {
		return // a concurrent writer compacted it
	}
	// Flatten with badger's compactors off runs the compactions on this
	// goroutine: level 0 into the base level (and any level above the
	// base into it, which a directory's few MB of keys never fill).
	if err := bdb.Flatten(1); err != nil {
		db.logf("dircache: compacting level 0: %v", err)
	}
}

// level0Tables counts badger's tables at level 0.
func level0Tables(bdb *badger.DB) int {
	n := 0
	for _, t := range bdb.Tables() {
		if t.Level == 0 {
			n++
		}
	}
	return n
}

// reopenCount returns how many times badger was opened again after an
// idle close.
func (db *DB) reopenCount() int {
	db.bdbMu.Lock()
	defer db.bdbMu.Unlock()
	return db.reopens
}

// badgerOpen reports whether badger is open now (not idle-closed).
func (db *DB) badgerOpen() bool {
	db.bdbMu.Lock()
	defer db.bdbMu.Unlock()
	return db.bdb != nil
}

// Close closes badger and releases the directory.
func (db *DB) Close() error {
	db.rw.Lock()
	defer db.rw.Unlock()
	if db.closed {
		return fmt.Errorf("dircache: second Close: %w", ErrClosed)
	}
	db.closed = true
	var err error
	db.bdbMu.Lock()
	if db.idleT != nil {
		db.idleT.Stop()
	}
	if db.bdb != nil {
		err = db.bdb.Close()
		db.bdb = nil
	}
	db.bdbMu.Unlock()
	db.cons.close()
	if lerr := db.lock.Close(); err == nil {
		err = lerr
	}
	return err
}

func key(prefix byte, parts ...[]byte) []byte {
	n := 1
	for _, p := range parts {
		n += len(p)
	}
	k := make([]byte, 1, n)
	k[0] = prefix
	for _, p := range parts {
		k = append(k, p...)
	}
	return k
}

func unixBytes(t time.Time) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(t.Unix()))
	return b[:]
}

func bytesUnix(b []byte) (time.Time, bool) {
	if len(b) != 8 {
		return time.Time{}, false
	}
	return time.Unix(int64(binary.BigEndian.Uint64(b)), 0), true
}

// lsmBytes is what badger counts against a transaction's batch limit for
// an entry: the key and the value itself below tuning.ValueThreshold, the
// key and a 12-byte value pointer at or above it, and two meta bytes.
func lsmBytes(keyLen, valueLen int) int {
	if valueLen >= tuning.ValueThreshold {
		valueLen = 12
	}
	return keyLen + valueLen + 2
}

// chunkedUpdate runs fill over items in as many transactions as needed,
// keeping each under badger's batch limit; size(i) is item i's largest
// entry as lsmBytes counts it. fill must add everything about
// one item in one call, so that each item is written atomically.
func (db *DB) chunkedUpdate(n int, size func(i int) int, fill func(txn *badger.Txn, i int) error) error {
	if err := checkSpace(db.dir); err != nil {
		return err
	}
	// Half of badger's limits: a batch may hold 15% of the memtable, and
	// each entry costs at least a skiplist node.
	budget := int(db.bdb.Opts().MemTableSize) * 15 / 100 / 2
	perEntry := max(64, int(skl.MaxNodeSize))
	for i := 0; i < n; {
		err := db.update(func(txn *badger.Txn) error {
			used := 0
			for ; i < n && (used == 0 || used+size(i)+perEntry <= budget); i++ {
				used += size(i) + 2*perEntry // an item may set two keys
				if err := fill(txn, i); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("dircache: write: %w", err)
		}
	}
	return nil
}

func (db *DB) PutMicrodescs(listedAt time.Time, mds []Microdesc) error {
	if err := checkMicrodescs(mds); err != nil {
		return err
	}
	if err := db.begin(); err != nil {
		return err
	}
	defer db.end()
	db.mdMu.Lock()
	defer db.mdMu.Unlock()
	at := unixBytes(listedAt)
	return db.chunkedUpdate(len(mds), func(i int) int { return lsmBytes(33, len(mds[i].Text)) }, func(txn *badger.Txn, i int) error {
		d := mds[i].Digest[:]
		lk := key(pfxListed, d)
		if _, err := txn.Get(key(pfxMD, d)); err == nil {
			return db.raiseListed(txn, lk, listedAt, at)
		} else if !errors.Is(err, badger.ErrKeyNotFound) {
			return err
		}
		// No copy: badger copies the value into its memtable and log
		// before Update returns.
		if err := txn.Set(key(pfxMD, d), mds[i].Text); err != nil {
			return err
		}
		return txn.Set(lk, at)
	})
}

// raiseListed sets the last-listed time under lk to at unless it is
// already later.
func (db *DB) raiseListed(txn *badger.Txn, lk []byte, t time.Time, at []byte) error {
	it, err := txn.Get(lk)
	if err == nil {
		var old time.Time
		var ok bool
		if verr := it.Value(func(v []byte) error { old, ok = bytesUnix(v); return nil }); verr == nil && ok && !t.After(old) {
			return nil
		}
	} else if !errors.Is(err, badger.ErrKeyNotFound) {
		return err
	}
	return txn.Set(lk, at)
}

// scanLimit: above this many digests one walk over a key prefix beats a
// Get per digest (a full consensus lists about 9,600).
const scanLimit = 256

// lookup reports which of ds have a key prefix+digest; val, if not nil,
// gets the value of each one found (ok false if it cannot be read).
func lookup(txn *badger.Txn, prefix byte, ds [][32]byte, val func(i int, v []byte, ok bool)) ([]bool, error) {
	found := make([]bool, len(ds))
	value := func(i int, item *badger.Item) {
		if val == nil {
			return
		}
		if err := item.Value(func(v []byte) error { val(i, v, true); return nil }); err != nil {
			val(i, nil, false)
		}
	}
	if len(ds) <= scanLimit {
		k := make([]byte, 33)
		k[0] = prefix
		for i, d := range ds {
			copy(k[1:], d[:])
			item, err := txn.Get(k)
			if errors.Is(err, badger.ErrKeyNotFound) {
				continue
			}
			if err != nil {
				return nil, err
			}
			found[i] = true
			value(i, item)
		}
		return found, nil
	}
	order := make([]int, len(ds))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return bytes.Compare(ds[a][:], ds[b][:]) })
	opt := badger.DefaultIteratorOptions
	opt.PrefetchValues = false
	opt.Prefix = []byte{prefix}
	it := txn.NewIterator(opt)
	defer it.Close()
	j := 0
	for it.Rewind(); it.Valid() && j < len(order); it.Next() {
		k := it.Item().Key()
		if len(k) != 33 {
			continue
		}
		for j < len(order) && bytes.Compare(ds[order[j]][:], k[1:]) < 0 {
			j++
		}
		for ; j < len(order) && bytes.Equal(ds[order[j]][:], k[1:]); j++ {
			found[order[j]] = true
			value(order[j], it.Item())
		}
	}
	return found, nil
}

func (db *DB) MissingMicrodescs(want [][32]byte) ([][32]byte, error) {
	if err := db.begin(); err != nil {
		return nil, err
	}
	defer db.end()
	var found []bool
	err := db.bdb.View(func(txn *badger.Txn) (err error) {
		found, err = lookup(txn, pfxMD, want, nil)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("dircache: read: %w", err)
	}
	var missing [][32]byte
	for i, ok := range found {
		if !ok {
			missing = append(missing, want[i])
		}
	}
	return missing, nil
}

func (db *DB) MarkListed(at time.Time, digests [][32]byte) error {
	if err := db.begin(); err != nil {
		return err
	}
	defer db.end()
	db.mdMu.Lock()
	defer db.mdMu.Unlock()
	var have, listed []bool
	old := make([]time.Time, len(digests))
	err := db.bdb.View(func(txn *badger.Txn) (err error) {
		if have, err = lookup(txn, pfxMD, digests, nil); err != nil {
			return err
		}
		listed, err = lookup(txn, pfxListed, digests, func(i int, v []byte, ok bool) {
			if t, ok2 := bytesUnix(v); ok && ok2 {
				old[i] = t
			}
		})
		return err
	})
	if err != nil {
		return fmt.Errorf("dircache: read: %w", err)
	}
	var todo [][]byte
	for i := range digests {
		if have[i] && (!listed[i] || old[i].IsZero() || at.After(old[i])) {
			todo = append(todo, key(pfxListed, digests[i][:]))
		}
	}
	ab := unixBytes(at)
	return db.chunkedUpdate(len(todo), func(int) int { return 16 }, func(txn *badger.Txn, i int) error {
		return txn.Set(todo[i], ab)
	})
}

// deleteKeys deletes keys in as many transactions as needed.
func (db *DB) deleteKeys(keys [][]byte) error {
	return db.chunkedUpdate(len(keys), func(int) int { return 64 }, func(txn *badger.Txn, i int) error {
		return txn.Delete(keys[i])
	})
}

func (db *DB) ForEachMicrodesc(fn func(digest [32]byte, text []byte) error) (int, error) {
	if err := db.begin(); err != nil {
		return 0, err
	}
	defer db.end()
	var bad [][]byte
	var ferr error
	err := db.bdb.View(func(txn *badger.Txn) error {
		opt := badger.DefaultIteratorOptions
		opt.PrefetchValues = false
		opt.Prefix = []byte{pfxMD}
		it := txn.NewIterator(opt)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			k := item.Key()
			var d [32]byte
			ok := len(k) == 33
			copy(d[:], k[1:])
			verr := item.Value(func(text []byte) error {
				if !ok || len(text) > MaxMicrodescSize || sha256.Sum256(text) != d {
					ok = false
					return nil
				}
				if err := fn(d, text); err != nil {
					ferr = err
					return err
				}
				return nil
			})
			if ferr != nil {
				return ferr
			}
			if verr != nil || !ok {
				db.logf("dircache: dropping damaged microdescriptor %x: %v", k, verr)
				bad = append(bad, item.KeyCopy(nil))
			}
		}
		return nil
	})
	if ferr != nil {
		return 0, ferr
	}
	if err != nil {
		return 0, fmt.Errorf("dircache: read: %w", err)
	}
	for _, k := range bad[:len(bad):len(bad)] {
		if len(k) == 33 {
			bad = append(bad, key(pfxListed, k[1:]))
		}
	}
	if err := db.deleteKeys(bad); err != nil {
		return 0, err
	}
	return len(bad) - countListed(bad), nil
}

func countListed(keys [][]byte) int {
	n := 0
	for _, k := range keys {
		if k[0] == pfxListed {
			n++
		}
	}
	return n
}

func (db *DB) PruneMicrodescs(keep func([32]byte) bool, cutoff time.Time) (int, error) {
	if err := db.begin(); err != nil {
		return 0, err
	}
	defer db.end()
	db.mdMu.Lock()
	defer db.mdMu.Unlock()
	listed := map[[32]byte]time.Time{}
	var del [][]byte
	removed := 0
	err := db.bdb.View(func(txn *badger.Txn) error {
		opt := badger.DefaultIteratorOptions
		opt.Prefix = []byte{pfxListed}
		it := txn.NewIterator(opt)
		for it.Rewind(); it.Valid(); it.Next() {
			k := it.Item().Key()
			var t time.Time
			ok := false
			_ = it.Item().Value(func(v []byte) error { t, ok = bytesUnix(v); return nil })
			if len(k) == 33 && ok {
				listed[[32]byte(k[1:])] = t
			}
		}
		it.Close()
		opt = badger.DefaultIteratorOptions
		opt.PrefetchValues = false
		opt.Prefix = []byte{pfxMD}
		it = txn.NewIterator(opt)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			k := it.Item().Key()
			if len(k) != 33 {
				del = append(del, it.Item().KeyCopy(nil))
				continue
			}
			d := [32]byte(k[1:])
			t, has := listed[d]
			delete(listed, d)
			if keep != nil && keep(d) {
				continue
			}
			if cutoff.IsZero() || !has || t.Before(cutoff) {
				del = append(del, it.Item().KeyCopy(nil), key(pfxListed, d[:]))
				removed++
			}
		}
		// Whatever is left in listed has no text: remove the stray time.
		for d := range listed {
			del = append(del, key(pfxListed, d[:]))
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("dircache: read: %w", err)
	}
	if err := db.deleteKeys(del); err != nil {
		return 0, err
	}
	db.gcValueLog()
	return removed, nil
}

// gcValueLog lets badger rewrite value-log files that are at least half
// garbage (texts of pruned microdescriptors, replaced state values), a
// few files per call. Badger learns what is garbage when compaction drops
// the keys, so a file usually becomes eligible a prune or two after its
// values were deleted. Failures are logged: the space waits for the next
// call.
func (db *DB) gcValueLog() {
	defer db.compactLevel0(db.bdb) // a rewrite writes the moved values again
	for range 4 {
		err := db.bdb.RunValueLogGC(0.5)
		if errors.Is(err, badger.ErrNoRewrite) || errors.Is(err, badger.ErrRejected) {
			return
		}
		if err != nil {
			db.logf("dircache: value log GC: %v", err)
			return
		}
	}
}

// sealed values carry their own SHA-256: certificates and state.
func seal(v []byte) []byte {
	s := sha256.Sum256(v)
	return append(s[:], v...)
}

func unseal(b []byte) ([]byte, bool) {
	if len(b) < 32 || sha256.Sum256(b[32:]) != [32]byte(b[:32]) {
		return nil, false
	}
	return b[32:], true
}

func (db *DB) PutCert(c Cert) error {
	if err := checkCert(c); err != nil {
		return err
	}
	if err := db.begin(); err != nil {
		return err
	}
	defer db.end()
	if err := checkSpace(db.dir); err != nil {
		return err
	}
	err := db.update(func(txn *badger.Txn) error {
		return txn.Set(key(pfxCert, c.Identity[:], c.SigningKey[:]), seal(c.Text))
	})
	if err != nil {
		return fmt.Errorf("dircache: write: %w", err)
	}
	return nil
}

func (db *DB) Certs() ([]Cert, int, error) {
	if err := db.begin(); err != nil {
		return nil, 0, err
	}
	defer db.end()
	var certs []Cert
	var bad [][]byte
	err := db.bdb.View(func(txn *badger.Txn) error {
		opt := badger.DefaultIteratorOptions
		opt.Prefix = []byte{pfxCert}
		it := txn.NewIterator(opt)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			k := item.Key()
			v, err := item.ValueCopy(nil)
			text, ok := unseal(v)
			if err != nil || !ok || len(k) != 41 {
				db.logf("dircache: dropping damaged certificate %x: %v", k, err)
				bad = append(bad, item.KeyCopy(nil))
				continue
			}
			certs = append(certs, Cert{Identity: [20]byte(k[1:21]), SigningKey: [20]byte(k[21:41]), Text: text})
		}
		return nil
	})
	if err != nil {
		return nil, 0, fmt.Errorf("dircache: read: %w", err)
	}
	if err := db.deleteKeys(bad); err != nil {
		return nil, 0, err
	}
	return certs, len(bad), nil
}

func (db *DB) DeleteCert(id, sk [20]byte) error {
	if err := db.begin(); err != nil {
		return err
	}
	defer db.end()
	return db.deleteKeys([][]byte{key(pfxCert, id[:], sk[:])})
}

func (db *DB) GetState(k string) ([]byte, error) {
	if err := checkStateKey(k); err != nil {
		return nil, err
	}
	if err := db.begin(); err != nil {
		return nil, err
	}
	defer db.end()
	var v []byte
	bk := key(pfxState, []byte(k))
	err := db.bdb.View(func(txn *badger.Txn) error {
		item, err := txn.Get(bk)
		if err != nil {
			return err
		}
		v, err = item.ValueCopy(nil)
		return err
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, fmt.Errorf("%w: state %q", ErrNotFound, k)
	}
	val, ok := unseal(v)
	if err != nil || !ok {
		db.logf("dircache: dropping damaged state %q: %v", k, err)
		if derr := db.deleteKeys([][]byte{bk}); derr != nil {
			return nil, derr
		}
		return nil, fmt.Errorf("%w: state %q", ErrCorrupt, k)
	}
	return val, nil
}

func (db *DB) PutState(k string, value []byte) error {
	if err := checkStateKey(k); err != nil {
		return err
	}
	if len(value) > MaxStateValue {
		return invalid("state value of %d bytes", len(value))
	}
	if err := db.begin(); err != nil {
		return err
	}
	defer db.end()
	if err := checkSpace(db.dir); err != nil {
		return err
	}
	err := db.update(func(txn *badger.Txn) error {
		return txn.Set(key(pfxState, []byte(k)), seal(value))
	})
	if err != nil {
		return fmt.Errorf("dircache: write: %w", err)
	}
	return nil
}

func (db *DB) DeleteState(k string) error {
	if err := checkStateKey(k); err != nil {
		return err
	}
	if err := db.begin(); err != nil {
		return err
	}
	defer db.end()
	return db.deleteKeys([][]byte{key(pfxState, []byte(k))})
}

func (db *DB) Consensus(flavor string) (*Consensus, error) {
	if err := checkFlavor(flavor); err != nil {
		return nil, err
	}
	if err := db.begin(); err != nil {
		return nil, err
	}
	defer db.end()
	c, err := db.cons.load(flavor)
	if errors.Is(err, ErrCorrupt) {
		db.logf("%v", err)
	}
	return c, err
}

func (db *DB) PutConsensus(flavor string, text []byte, meta ConsensusMeta) error {
	c, err := newConsensus(flavor, text, meta)
	if err != nil {
		return err
	}
	if err := db.begin(); err != nil {
		return err
	}
	defer db.end()
	return db.cons.store(c)
}
