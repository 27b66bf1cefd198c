package sdk

import (
	"fmt"
	"strings"
)

// ConfluxMode chooses whether exit circuits are conflux sets (proposal
// 329). See Client.Conflux.
type ConfluxMode int

const (
	// ConfluxAuto uses conflux except on Android and iOS.
	ConfluxAuto ConfluxMode = iota
	// ConfluxOn uses conflux wherever the consensus and the exit allow.
	ConfluxOn
	// ConfluxOff never does.
	ConfluxOff
)

func (m ConfluxMode) enabled(goos string) bool {
	switch m {
	case ConfluxOn:
		return true
	case ConfluxOff:
		return false
	}
	return goos != "android" && goos != "ios"
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
