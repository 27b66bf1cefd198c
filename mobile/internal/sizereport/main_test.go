package main

import (
	"strings"
	"testing"
)

func testPkgs() map[string]*pkgInfo {
	mod := func(p string) *struct{ Path string } { return &struct{ Path string }{p} }
	return map[string]*pkgInfo{
		"main":                               {ImportPath: "x/main", Imports: []string{"github.com/onionlite/onionlite/sdk"}},
		"github.com/onionlite/onionlite/sdk": {DepOnly: true, Module: mod(module), Imports: []string{"net/http", "github.com/onionlite/onionlite/dircache"}},
		"github.com/onionlite/onionlite/dircache":   {DepOnly: true, Module: mod(module), Imports: []string{"github.com/dgraph-io/badger/v4", "fmt"}},
		"github.com/dgraph-io/badger/v4":            {DepOnly: true, Module: mod("github.com/dgraph-io/badger/v4"), Imports: []string{"google.golang.org/protobuf/proto", "fmt"}},
		"google.golang.org/protobuf/proto":          {DepOnly: true, Module: mod("google.golang.org/protobuf"), Imports: []string{"fmt"}},
		"net/http":                                  {DepOnly: true, Standard: true, Imports: []string{"fmt", "vendor/golang.org/x/net/http2/hpack"}},
		"vendor/golang.org/x/net/http2/hpack":       {DepOnly: true, Standard: true},
		"fmt":                                       {DepOnly: true, Standard: true},
		"crypto/internal/entropy/v1.0.0":            {DepOnly: true, Standard: true},
		"github.com/onionlite/onionlite/mobile/xyz": {DepOnly: true, Module: mod(module)},
	}
}

func TestSymbolPackage(t *testing.T) {
	pkgs := testPkgs()
	for sym, want := range map[string]string{
		"net/http.(*Transport).dialConn":                              "net/http",
		"type:*net/http.Request":                                      "net/http",
		"go:itab.*net/http.http2Transport,net/http.RoundTripper":      "net/http",
		"github.com/dgraph-io/badger/v4.Open":                         "github.com/dgraph-io/badger/v4",
		"google.golang.org/protobuf/proto.UnmarshalOptions.unmarshal": "google.golang.org/protobuf/proto",
		"github.com/onionlite/onionlite/sdk.(*Client).Dial[...]":      "github.com/onionlite/onionlite/sdk",
		"crypto/internal/entropy/v1%2e0%2e0.Seed":                     "crypto/internal/entropy/v1.0.0",
		"fmt.Sprintf": "fmt",
		"main.main":   "main",
		"go:string.*": "",
		"aeshashbody": "",
	} {
		if got := symbolPackage(sym, pkgs); got != want {
			t.Errorf("symbolPackage(%q) = %q, want %q", sym, got, want)
		}
	}
}

func TestGroup(t *testing.T) {
	pkgs := testPkgs()
	for pkg, want := range map[string]string{
		"github.com/onionlite/onionlite/sdk":  "onionlite (all its packages)",
		"google.golang.org/protobuf/proto":    "google.golang.org/protobuf",
		"net/http":                            "std: net/http",
		"vendor/golang.org/x/net/http2/hpack": "std: vendor (x/net, x/text, x/crypto)",
		"fmt":                                 "std: fmt",
		"crypto/internal/entropy/v1.0.0":      "std: crypto (other)",
	} {
		if got := group(pkg, pkgs); got != want {
			t.Errorf("group(%q) = %q, want %q", pkg, got, want)
		}
	}
}

func TestExclusive(t *testing.T) {
	pkgs := testPkgs()
	only := exclusive(pkgs, func(p string) bool {
		return strings.HasPrefix(p, "github.com/dgraph-io/badger/") || p == "github.com/dgraph-io/badger/v4"
	})
	for _, p := range []string{"github.com/dgraph-io/badger/v4", "google.golang.org/protobuf/proto"} {
		if !only[p] {
			t.Errorf("%s is reached only through badger", p)
		}
	}
	for _, p := range []string{"fmt", "net/http", "github.com/onionlite/onionlite/dircache"} {
		if only[p] {
			t.Errorf("%s is reachable without badger", p)
		}
	}
	only = exclusive(pkgs, func(p string) bool { return p == "net/http" })
	if !only["vendor/golang.org/x/net/http2/hpack"] || only["fmt"] {
		t.Errorf("net/http exclusive: %v", only)
	}
}

func TestSizeSymbols(t *testing.T) {
	sects := []section{{name: ".text", addr: 100, size: 50, kind: 'c'}, {name: ".rodata", addr: 200, size: 10}}
	syms := sizeSymbols([]symbol{{name: "b", addr: 120, sect: 0}, {name: "a", addr: 100, sect: 0}, {name: "c", addr: 204, sect: 1}}, sects)
	want := map[string]uint64{"a": 20, "b": 30, "c": 6}
	for _, s := range syms {
		if s.size != want[s.name] {
			t.Errorf("%s: size %d, want %d", s.name, s.size, want[s.name])
		}
	}
}
