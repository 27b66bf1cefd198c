package sdk

import (
	"context"
	"fmt"
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"time"

	"github.com/onionlite/onionlite/internal/cell"
	"github.com/onionlite/onionlite/memquota"
)

// Memory budgets. A budget is the whole process's dirty memory, what iOS
// counts against an app or a Network Extension (clean file-backed pages,
// such as the binary's text, are not counted there); docs/memory.md says
// how it is split and what was measured.
const (
	// DefaultMobileMemoryBudget is the budget on iOS and Android when
	// Client.MemoryBudget is zero.
	DefaultMobileMemoryBudget = 16 << 20
	// DefaultDesktopMemoryBudget is the budget on every other platform
	// when Client.MemoryBudget is zero.
	DefaultDesktopMemoryBudget = 128 << 20
	// MinMemoryBudget is the smallest budget a Client accepts: the Go
	// runtime, the full network's directory and the smallest queue quota.
	MinMemoryBudget = 12 << 20
	// SmallMemoryBudget: below it the client also lowers the collector's
	// GOGC (MemoryPlan.GCPercent).
	SmallMemoryBudget = 64 << 20
	// DirectoryAllowance is the share of the budget planned for the
	// network view (netdir: 1.1 MB for 2019's 6,345 relays, 1.5 MB for
	// 2026's 9,609). A larger view takes the excess from the queue quota.
	DirectoryAllowance = 2 << 20
	// minQueueLimit is the smallest queue quota: a handful of streams'
	// windows.
	minQueueLimit = 512 << 10
	maxQueueLimit = 64 << 20
)

// DefaultMemoryBudget is the budget a Client with MemoryBudget zero uses on
// this platform.
func DefaultMemoryBudget() int64 {
	switch runtime.GOOS {
	case "ios", "android":
		return DefaultMobileMemoryBudget
	}
	return DefaultDesktopMemoryBudget
}

// MemoryPlan is how a budget is split between the parts of the client that
// are sized from it. PlanMemory computes it; Client.Stats reports it with
// what each part uses.
type MemoryPlan struct {
	// Budget is the whole-process budget in bytes.
	Budget int64
	// Reserve is left for memory outside the Go runtime's view: the
	// binary's data, thread stacks, dirty pages of badger's mapped
	// files. max(2 MiB, Budget/8).
	Reserve int64
	// GoLimit is the Go runtime's soft memory limit that the client
	// sets (debug.SetMemoryLimit) when the app has not set one:
	// Budget − Reserve. It covers the heap (directory, cache, queues,
	// cell pool, everything else) and the runtime's own memory.
	GoLimit int64
	// Directory is the allowance for the network view.
	Directory int64
	// QueueLimit, QueueLowWater and QueueHardLimit are the memory
	// quota's (memquota) thresholds for every queue a relay or a slow app
	// can fill: Budget/8 within [512 KiB, 64 MiB], 3/4 of it, 9/8 of it.
	// Above QueueLimit the queues holding the oldest data are reclaimed
	// (their streams or circuits fail with KindMemory) down to
	// QueueLowWater; a queue that would pass QueueHardLimit waits.
	QueueLimit, QueueLowWater, QueueHardLimit int64
	// GCPercent is the Go collector's GOGC the client sets with the
	// limit (debug.SetGCPercent), or 0 to leave it alone: 50 below
	// SmallMemoryBudget, so the heap may grow to 1.5 times the live heap
	// between collections rather than twice it (a directory bootstrap's
	// garbage otherwise took the heap up to the limit), 0 from it up.
	GCPercent int
	// PoolCells caps the cell buffers (514 bytes) outstanding at once:
	// ceil(QueueHardLimit × 9/8 / 514). It must stay above the queue
	// quota, with room for cells in flight, or a full pool would stall
	// every channel before reclamation could act.
	PoolCells int
}

// PlanMemory splits budget (zero: DefaultMemoryBudget) as MemoryPlan
// describes. A budget below MinMemoryBudget is an error.
func PlanMemory(budget int64) (MemoryPlan, error) {
	if budget == 0 {
		budget = DefaultMemoryBudget()
	}
	if budget < MinMemoryBudget {
		return MemoryPlan{}, fmt.Errorf("memory budget %d bytes is below the minimum of %d (%d MiB)", budget, MinMemoryBudget, MinMemoryBudget>>20)
	}
	p := MemoryPlan{Budget: budget, Directory: DirectoryAllowance}
	p.Reserve = max(2<<20, budget/8)
	p.GoLimit = budget - p.Reserve
	p.QueueLimit = min(max(budget/8, minQueueLimit), maxQueueLimit)
	p.QueueLowWater, p.QueueHardLimit = queueMarks(p.QueueLimit)
	p.PoolCells = int((p.QueueHardLimit*9/8 + cell.Len - 1) / cell.Len)
	if budget < SmallMemoryBudget {
		p.GCPercent = smallBudgetGCPercent
	}
	return p, nil
}

func queueMarks(limit int64) (low, hard int64) { return limit / 4 * 3, limit / 8 * 9 }

// queueLimits are the quota's thresholds once the directory takes dir
// bytes: what it takes beyond its allowance comes off the queue limit,
// down to the minimum. The pool, sized for the planned limit, stays above.
func (p MemoryPlan) queueLimits(dir int64) memquota.Limits {
	l := p.QueueLimit - max(0, dir-p.Directory)
	l = max(l, min(minQueueLimit, p.QueueLimit))
	low, hard := queueMarks(l)
	return memquota.Limits{Limit: l, LowWater: low, HardLimit: hard}
}

// MemoryStats is the memory breakdown in Stats, for an app to show or log.
// Parts overlap where noted; GoTotal is the Go runtime's whole footprint.
type MemoryStats struct {
	// Plan is the split of the budget in force.
	Plan MemoryPlan
	// Directory is what the current network view holds (netdir's own
	// count of its arrays and tables).
	Directory int64
	// Queues is what the queues hold now, QueuesPeak the most they held
	// at once, QueueLimit the reclamation threshold in force (lower than
	// the plan's when the directory takes more than its allowance).
	Queues, QueuesPeak, QueueLimit int64
	// Reclaims counts reclamation passes; Reclaimed counts the accounts
	// (channels, circuits, streams, downloads) torn down by them.
	Reclaims, Reclaimed int64
	// Pool is the memory in cell buffers outstanding now (it includes
	// the cells counted in Queues); PoolWaits counts the times a cell
	// buffer was wanted while all PoolCells were out.
	Pool      int64
	PoolWaits uint64
	// Cache is badger's memtable arena, on the Go heap while badger is
	// open (0 when the cache runs in memory, and while the store has
	// closed badger after ten seconds without use,
	// dircache.DefaultIdleClose).
	Cache int64
	// GoHeap is the Go heap's live and not yet collected objects;
	// GoTotal all memory the Go runtime holds from the OS (heap, stacks,
	// metadata), less what it has returned.
	GoHeap, GoTotal int64
	// GoMemoryLimit is the Go runtime's soft memory limit now
	// (math.MaxInt64: none); GoMemoryLimitSet says the client set it.
	GoMemoryLimit    int64
	GoMemoryLimitSet bool
	// GCPercent is the Go collector's GOGC now (-1: off);
	// GCPercentSet says the client set it (the plan's GCPercent).
	GCPercent    int
	GCPercentSet bool
}

// memoryStats fills a MemoryStats.
func (k *core) memoryStats() MemoryStats {
	m := MemoryStats{Plan: k.plan}
	if nd := k.boot.NetDir(); nd != nil {
		m.Directory = int64(nd.Stats().Bytes)
	}
	qs := k.quota.Stats()
	m.Queues, m.QueuesPeak, m.QueueLimit = qs.Used, qs.Peak, qs.Limit
	m.Reclaims, m.Reclaimed = qs.Reclaims, qs.Collapsed
	ps := k.pool.Stats()
	m.Pool, m.PoolWaits = ps.Bytes(), ps.Waits
	if c, ok := k.store.(interface{ MemTableBytes() int64 }); ok {
		m.Cache = c.MemTableBytes()
	}
	m.GoHeap, m.GoTotal = goMemory()
	m.GoMemoryLimit = debug.SetMemoryLimit(-1)
	m.GoMemoryLimitSet = k.goLimit != 0 && m.GoMemoryLimit == k.goLimitNow.Load()
	m.GCPercent = gcPercentNow()
	m.GCPercentSet = k.gcPercent != 0 && m.GCPercent == k.gcPercent
	return m
}

// gcPercentNow reads GOGC without changing it (debug.SetGCPercent can
// only read by setting).
func gcPercentNow() int {
	s := []metrics.Sample{{Name: "/gc/gogc:percent"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 100
	}
	v := s[0].Value.Uint64()
	if v > math.MaxInt32 {
		return -1
	}
	return int(v)
}

var goMemoryMetrics = []string{
	"/memory/classes/heap/objects:bytes",
	"/memory/classes/total:bytes",
	"/memory/classes/heap/released:bytes",
}

// goMemory reads the Go heap's objects and the runtime's footprint less
// what it returned to the OS.
func goMemory() (heap, total int64) {
	s := make([]metrics.Sample, len(goMemoryMetrics))
	for i, n := range goMemoryMetrics {
		s[i].Name = n
	}
	metrics.Read(s)
	v := func(i int) int64 {
		if s[i].Value.Kind() != metrics.KindUint64 {
			return 0
		}
		return int64(s[i].Value.Uint64())
	}
	return v(0), v(1) - v(2)
}

// setGoMemoryLimit sets the Go runtime's soft memory limit to the plan's
// unless the app chose otherwise: GOMEMLIMIT in the environment (any value,
// "off" included), a limit already set with debug.SetMemoryLimit, or
// Client.KeepGoMemoryLimit. It also leaves the limit alone when the Go
// heap already holds more than half of it (an app with a big heap of its
// own, where the limit would make the collector run constantly). It returns
// the limit it set, or 0.
func setGoMemoryLimit(c *Client, p MemoryPlan, logf func(string, ...any)) int64 {
	if c.KeepGoMemoryLimit {
		return 0
	}
	if _, ok := os.LookupEnv("GOMEMLIMIT"); ok {
		return 0
	}
	if debug.SetMemoryLimit(-1) != math.MaxInt64 {
		return 0
	}
	if heap, _ := goMemory(); heap > p.GoLimit/2 {
		logf("onionlite: Go memory limit not set: the heap already holds %d bytes, more than half of %d", heap, p.GoLimit)
		return 0
	}
	debug.SetMemoryLimit(p.GoLimit)
	return p.GoLimit
}

// restoreGoMemoryLimit undoes setGoMemoryLimit at Close, unless someone
// changed the limit since.
func restoreGoMemoryLimit(set int64) {
	if set != 0 && debug.SetMemoryLimit(-1) == set {
		debug.SetMemoryLimit(math.MaxInt64)
	}
}

// smallBudgetGCPercent is MemoryPlan.GCPercent below SmallMemoryBudget.
// In replays of the full-scale 2019 bootstrap at the 16 MiB budget,
// GOGC=50 lowered the peak anonymous memory by a few MB at no measurable
// CPU cost; the memory limit still bounds the heap when it is large.
const smallBudgetGCPercent = 50

// setGCPercent sets the collector's GOGC to the plan's along with the
// memory limit: only when the client set the limit (limitSet: the app
// left memory to the client), GOGC is not in the environment, and the
// percentage is still Go's default of 100. It returns what it set, or 0.
func setGCPercent(p MemoryPlan, limitSet int64) int {
	if p.GCPercent == 0 || limitSet == 0 {
		return 0
	}
	if _, ok := os.LookupEnv("GOGC"); ok {
		return 0
	}
	if old := debug.SetGCPercent(p.GCPercent); old != 100 {
		debug.SetGCPercent(old)
		return 0
	}
	return p.GCPercent
}

// restoreGCPercent undoes setGCPercent at Close, unless someone changed
// the percentage since.
func restoreGCPercent(set int) {
	if set == 0 {
		return
	}
	if cur := debug.SetGCPercent(100); cur != set {
		debug.SetGCPercent(cur)
	}
}

// fitQueues adjusts the queue quota to the directory's actual size.
func (k *core) fitQueues() {
	nd := k.boot.NetDir()
	if nd == nil {
		return
	}
	want := k.plan.queueLimits(int64(nd.Stats().Bytes))
	if k.quota.Limits() != want {
		if err := k.quota.SetLimits(want); err != nil {
			k.logf("onionlite: memory quota: %v", err)
		}
	}
}

// trimQueues sheds the queues holding the oldest data down to half the
// low-water mark (TrimCritical).
func (k *core) trimQueues() {
	ctx, cancel := context.WithTimeout(k.ctx, 5*time.Second)
	defer cancel()
	if err := k.quota.ReclaimTo(ctx, k.quota.Limits().LowWater/2); err != nil && k.ctx.Err() == nil {
		k.logf("onionlite: trimming queues: %v", err)
	}
}
