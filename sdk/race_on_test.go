//go:build race

package sdk

// raceEnabled: the race detector's shadow memory makes process memory
// figures meaningless.
const raceEnabled = true
