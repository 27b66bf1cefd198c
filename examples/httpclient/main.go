// Command httpclient fetches a URL through Tor with the standard
// library's http.Client.
//
//	go run ./examples/httpclient -authorities DIR/authorities -url http://127.0.0.1:PORT/64KiB.bin
package main

import (
	"context"
	"crypto/sha256"
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
	dataDir := flag.String("data-dir", "", "cache directory (default: a temporary one)")
	url := flag.String("url", "", "URL to fetch")
	flag.Parse()
	if *url == "" {
		log.Fatal("-url is required")
	}
	dir := *dataDir
	if dir == "" {
		d, err := os.MkdirTemp("", "onionlite-example")
		if err != nil {
			log.Fatal(err)
		}
		defer os.RemoveAll(d)
		dir = d
	}
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
	resp, err := client.HTTPClient().Get(*url)
	if err != nil {
		log.Fatalf("GET: %v", err)
	}
	defer resp.Body.Close()
	h := sha256.New()
	n, err := io.Copy(h, resp.Body)
	if err != nil {
		log.Fatalf("reading: %v", err)
	}
	fmt.Printf("%s: %d bytes, sha256 %x\n", resp.Status, n, h.Sum(nil))
}
