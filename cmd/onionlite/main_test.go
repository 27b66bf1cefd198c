package main

import (
	"testing"

	"github.com/onionlite/onionlite/internal/testnet"
)

// TestMain shares one real-tor test network among the client command
// tests; it starts only when a test asks for it (testnet.Shared).
func TestMain(m *testing.M) { testnet.Main(m, testnet.Config{}) }
