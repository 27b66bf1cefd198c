package sdk

import (
	"fmt"
	"strings"
)

// ConfluxMode chooses whether exit circuits are conflux sets (proposal
// 329). See Client.Conflux.
type ConfluxMode int

const (
	// ConfluxAuto uses conflux except on Android and iOS and under a
	// memory budget below ConfluxMinBudget.
	ConfluxAuto ConfluxMode = iota
	// ConfluxOn uses conflux wherever the consensus and the exit allow.
	ConfluxOn
	// ConfluxOff never does.
	ConfluxOff
)

// ConfluxMinBudget is the smallest memory budget with which ConfluxAuto
// uses conflux. A set holds the cells that arrive ahead of their turn,
// and when the queue quota reclaims that memory the whole set and all its
// streams go, not only a stalled one: under a small budget one circuit
// per stream group is the better trade.
const ConfluxMinBudget = 64 << 20

func (m ConfluxMode) enabled(goos string, budget int64) bool {
	switch m {
	case ConfluxOn:
		return true
	case ConfluxOff:
		return false
	}
	return goos != "android" && goos != "ios" && budget >= ConfluxMinBudget
}

func (m ConfluxMode) String() string {
	switch m {
	case ConfluxAuto:
		return "auto"
	case ConfluxOn:
		return "on"
	case ConfluxOff:
		return "off"
	}
	return fmt.Sprintf("ConfluxMode(%d)", int(m))
}

// ParseConfluxMode parses "auto", "on" or "off".
func ParseConfluxMode(s string) (ConfluxMode, error) {
	switch strings.ToLower(s) {
	case "auto", "":
		return ConfluxAuto, nil
	case "on":
		return ConfluxOn, nil
	case "off":
		return ConfluxOff, nil
	}
	return 0, fmt.Errorf("conflux mode %q: want auto, on or off", s)
}
