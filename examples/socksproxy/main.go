// Command socksproxy runs a local SOCKS5 proxy through Tor, for apps that
// only know how to use a proxy.
//
//	go run ./examples/socksproxy -authorities DIR/authorities -listen 127.0.0.1:9150
//	curl --socks5-hostname 127.0.0.1:9150 http://127.0.0.1:PORT/64KiB.bin
package main

import (
	"context"
	"flag"
	"log"
	"net"
	"os"
	"os/signal"
	"strings"

	"github.com/onionlite/onionlite/sdk"
)

func main() {
	authFile := flag.String("authorities", "", "DirAuthority lines of a test network (default: the real Tor network)")
	dataDir := flag.String("data-dir", os.TempDir()+"/onionlite-socks-example", "cache directory")
	listen := flag.String("listen", "127.0.0.1:9150", "SOCKS listen address (loopback)")
	flag.Parse()
	client := &sdk.Client{DataDir: *dataDir}
	if *authFile != "" {
		b, err := os.ReadFile(*authFile)
		if err != nil {
			log.Fatal(err)
		}
		client.Authorities = strings.Split(strings.TrimSpace(string(b)), "\n")
	}
	defer client.Close()
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	go func() {
		<-ctx.Done()
		client.Close()
	}()
	// Print progress while bootstrapping; ServeSOCKS accepts at once and
	// holds requests until the directory is ready.
	go func() {
		for ev := range client.Events(ctx) {
			if ev.Kind == sdk.EventReady {
				log.Printf("ready; SOCKS5 on %s", ln.Addr())
			}
		}
	}()
	log.Printf("serving SOCKS on %s", ln.Addr())
	if err := client.ServeSOCKS(ln); err != nil && ctx.Err() == nil {
		log.Fatal(err)
	}
}
