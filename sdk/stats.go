package sdk

import (
	"time"
)

// Stats are a client's counters. Byte counts are at the socket level (TLS
// records, no TCP/IP headers), summed over every relay connection.
type Stats struct {
	BytesRead, BytesWritten int64
	// DirBytesRead counts directory responses (headers and compressed
	// bodies) by kind: "consensus", "consensus_diff", "certificates",
	// "microdescriptors".
	DirBytesRead   int64
	DirBytesByKind map[string]int64
	// ConsensusSource is where the current consensus came from: "cache",
	// "full" or "diff" ("" before the first).
	ConsensusSource string
	// MicrodescsFetched were downloaded, MicrodescsFromCache loaded.
	MicrodescsFetched, MicrodescsFromCache int
	// BootstrapDuration is how long the first bootstrap took.
	BootstrapDuration time.Duration
	// ConsensusValidAfter .. ConsensusValidUntil describe the current
	// consensus (zero before the first).
	ConsensusValidAfter, ConsensusFreshUntil, ConsensusValidUntil time.Time
	// Relays in the consensus, and how many have a microdescriptor.
	Relays, RelaysWithMicrodescs int
	// DirectoryRefreshes counts consensus refreshes after the bootstrap.
	DirectoryRefreshes int
	// ChannelsOpen is the number of relay connections open now.
	ChannelsOpen int
	// CircuitsBuilt counts circuit builds that succeeded; ConfluxSets
	// those that became two-leg conflux sets (Client.Conflux).
	CircuitsBuilt, ConfluxSets int64
	// StoreErrors counts failed cache writes; StorageWarning is set when
	// the data directory could not be used at all.
	StoreErrors    int
	StorageWarning string
	// Memory is the memory budget's split and what each part uses now.
	Memory MemoryStats
}

// Stats returns a snapshot of the client's counters.
func (c *Client) Stats() Stats {
	k, err := c.started("stats")
	if err != nil {
		return Stats{}
	}
	bs := k.boot.Stats()
	cs := k.chans.Stats()
	s := Stats{
		BytesRead: cs.BytesRead, BytesWritten: cs.BytesWritten,
		DirBytesRead: bs.DirBytes, DirBytesByKind: bs.DirBytesByKind,
		ConsensusSource:   string(bs.ConsensusSource),
		MicrodescsFetched: bs.MicrodescsFetched, MicrodescsFromCache: bs.MicrodescsLoaded,
		BootstrapDuration:  bs.Duration,
		DirectoryRefreshes: bs.Refreshes,
		ChannelsOpen:       cs.Open,
		StoreErrors:        bs.StoreErrors,
	}
	if k.storeWarn != nil {
		s.StorageWarning = k.storeWarn.Error()
	}
	s.Memory = k.memoryStats()
	if k.circs != nil {
		ms := k.circs.Stats()
		s.CircuitsBuilt, s.ConfluxSets = ms.Built, ms.ConfluxSets
	}
	if nd := k.boot.NetDir(); nd != nil {
		s.ConsensusValidAfter, s.ConsensusFreshUntil, s.ConsensusValidUntil = nd.ValidAfter(), nd.FreshUntil(), nd.ValidUntil()
		s.Relays, s.RelaysWithMicrodescs = nd.Len(), nd.NumMicrodescs()
	}
	return s
}
