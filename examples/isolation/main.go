// Command isolation shows stream isolation: requests made through
// different Isolated views never share a circuit, so the exit (and anyone
// watching it) cannot link them to one user.
//
//	go run ./examples/isolation -authorities DIR/authorities -url http://127.0.0.1:PORT/hello.txt
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"strings"
	"time"

	"github.com/onionlite/onionlite/sdk"
)

func main() {
	authFile := flag.String("authorities", "", "DirAuthority lines of a test network (default: the real Tor network)")
	url := flag.String("url", "", "URL to fetch from three isolated identities")
	flag.Parse()
	if *url == "" {
		log.Fatal("-url is required")
	}
	dir, err := os.MkdirTemp("", "onionlite-isolation")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	client := &sdk.Client{DataDir: dir}
	if *authFile != "" {
		b, err := os.ReadFile(*authFile)
		if err != nil {
			log.Fatal(err)
		}
		client.Authorities = strings.Split(strings.TrimSpace(string(b)), "\n")
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := client.Bootstrap(ctx); err != nil {
		log.Fatalf("bootstrap: %v", err)
	}
	// Each identity (say, each account in an app) gets its own view.
	for i, who := range []*sdk.Client{client.Isolated(), client.Isolated(), client.Isolated()} {
		resp, err := who.HTTPClient().Get(*url)
		if err != nil {
			log.Fatalf("identity %d: %v", i, err)
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		fmt.Printf("identity %d: %s, %d bytes, over its own circuit\n", i, resp.Status, n)
	}
	st := client.Stats()
	fmt.Printf("directory: %d relays, consensus from %s\n", st.Relays, st.ConsensusSource)
}
