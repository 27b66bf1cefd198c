package guard

import (
	"time"

	"github.com/onionlite/onionlite/dircache/netdir"
)

// Params are the guard-spec parameters (A.1), read from the consensus
// (param-spec section 11) with their spec defaults.
type Params struct {
	// MaxSampleSize caps the sample; MaxSampleThreshold caps it as a
	// fraction of the guards in the consensus (counted, as C tor does).
	MaxSampleSize      int
	MaxSampleThreshold float64
	// MinFilteredSample is how many usable filtered guards the sample
	// should hold.
	MinFilteredSample int
	// Lifetime: an unconfirmed guard sampled longer ago is dropped.
	Lifetime time.Duration
	// ConfirmedMinLifetime: a confirmed guard is kept at least this long
	// after confirmation.
	ConfirmedMinLifetime time.Duration
	// RemoveUnlistedAfter: a guard unlisted this long is dropped.
	RemoveUnlistedAfter time.Duration
	// NPrimary is the number of primary guards; NUsablePrimary and
	// NUsablePrimaryDir how many of the first reachable ones circuits and
	// directory requests spread over.
	NPrimary, NUsablePrimary, NUsablePrimaryDir int
	// InternetLikelyDown: after this long without success, failures are
	// blamed on the network and primaries are retried on the next
	// success.
	InternetLikelyDown time.Duration
	// NonprimaryConnectTimeout: a pending non-primary guard this old no
	// longer blocks lower-priority guards (proposal 337).
	NonprimaryConnectTimeout time.Duration
	// NonprimaryIdleTimeout: a non-primary circuit not usable after
	// this long is unusable.
	NonprimaryIdleTimeout time.Duration
}

const day = 24 * time.Hour

// ParamsFrom reads the parameters from consensus parameters (clamped to
// their bounds, defaulted when absent).
func ParamsFrom(p netdir.Params) Params {
	sec := func(q netdir.Param) time.Duration { return time.Duration(p.Get(q)) * time.Second }
	days := func(q netdir.Param) time.Duration { return time.Duration(p.Get(q)) * day }
	return Params{
		MaxSampleSize:            int(p.Get(netdir.ParamGuardMaxSampleSize)),
		MaxSampleThreshold:       float64(p.Get(netdir.ParamGuardMaxSampleThresholdPct)) / 100,
		MinFilteredSample:        int(p.Get(netdir.ParamGuardMinFilteredSampleSize)),
		Lifetime:                 days(netdir.ParamGuardLifetimeDays),
		ConfirmedMinLifetime:     days(netdir.ParamGuardConfirmedMinLifetimeDays),
		RemoveUnlistedAfter:      days(netdir.ParamGuardRemoveUnlistedAfterDays),
		NPrimary:                 int(p.Get(netdir.ParamGuardNPrimary)),
		NUsablePrimary:           int(p.Get(netdir.ParamGuardNPrimaryToUse)),
		NUsablePrimaryDir:        int(p.Get(netdir.ParamGuardNPrimaryDirToUse)),
		InternetLikelyDown:       sec(netdir.ParamGuardInternetLikelyDownSecs),
		NonprimaryConnectTimeout: sec(netdir.ParamGuardNonprimaryConnectTimeout),
		NonprimaryIdleTimeout:    sec(netdir.ParamGuardNonprimaryIdleTimeout),
	}
}

// DefaultParams are the parameters of a consensus that sets none.
func DefaultParams() Params { return ParamsFrom(netdir.Params{}) }

// Retry schedules (proposal 336): decorrelated jitter from dir-spec 5.5.
const (
	primaryRetryBase    = 30 * time.Second
	primaryRetryCap     = 6 * time.Hour
	nonprimaryRetryBase = 10 * time.Minute
	nonprimaryRetryCap  = 36 * time.Hour
)
