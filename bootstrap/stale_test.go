package bootstrap

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/onionlite/onionlite/dircache"
	"github.com/onionlite/onionlite/dircache/netdir"
	"github.com/onionlite/onionlite/internal/chanmgr"
	"github.com/onionlite/onionlite/internal/channel"
	"github.com/onionlite/onionlite/internal/clock"
	"github.com/onionlite/onionlite/internal/netdoc"
	"github.com/onionlite/onionlite/internal/realnet"
)

// staleStore returns a store holding the real 2019 consensus, its
// certificates and the microdescriptors keep selects, the authorities
// that signed it, and the consensus's valid-until.
func staleStore(t *testing.T, keep func(i int, md netdoc.Microdesc) bool) (*dircache.MemStore, []netdoc.Authority, time.Time) {
	t.Helper()
	dir := realnet.Path(t, "2019-12-15-full-md-set")
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	cons := read("consensus-microdesc-2019-12-15-13-00-00")
	u, err := netdoc.ParseConsensus(cons)
	if err != nil {
		t.Fatal(err)
	}
	st := dircache.NewMemStore()
	if err := st.PutConsensus(flavor, cons, dircache.ConsensusMeta{ValidAfter: u.ValidAfter(), FreshUntil: u.FreshUntil(), ValidUntil: u.ValidUntil()}); err != nil {
		t.Fatal(err)
	}
	us, err := netdoc.ParseAuthCerts(read("cached-certs"))
	if err != nil {
		t.Fatal(err)
	}
	var auths []netdoc.Authority
	for _, uc := range us {
		c, err := uc.Check(u.ValidAfter())
		if err != nil {
			continue
		}
		if err := st.PutCert(dircache.Cert{Identity: c.Fingerprint, SigningKey: c.SigningKeyDigest, Text: c.Raw}); err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(auths, func(a netdoc.Authority) bool { return a.V3Ident == c.Fingerprint }) {
			auths = append(auths, netdoc.Authority{Nickname: "auth", V3Ident: c.Fingerprint})
		}
	}
	batch := append(read("cached-microdescs"), read("cached-microdescs.new")...)
	mds, _ := netdoc.ParseMicrodescs(batch)
	var put []dircache.Microdesc
	for i, md := range mds {
		if keep(i, md) {
			s, e := md.Extent()
			put = append(put, dircache.Microdesc{Digest: md.Digest, Text: batch[s:e]})
		}
	}
	if err := st.PutMicrodescs(u.ValidAfter(), put); err != nil {
		t.Fatal(err)
	}
	return st, auths, u.ValidUntil()
}

// refuseDial fails the test on any dial.
type refuseDial struct{ t *testing.T }

func (d refuseDial) DialContext(_ context.Context, _, addr string) (net.Conn, error) {
	d.t.Errorf("unexpected dial to %s", addr)
	return nil, errors.New("no dialing in this test")
}

// TestStaleView: a start whose cached consensus has expired (the real 2019
// one, an hour past valid-until) is ready from the store alone when the
// stored microdescriptors are enough and include the primary guards';
// otherwise (most microdescriptors gone, or a primary guard's) the
// bootstrap fetches first.
func TestStaleView(t *testing.T) {
	boot := func(st dircache.Store, auths []netdoc.Authority, now time.Time, primary func(*netdir.NetDir) []netdir.Relay) *Bootstrapper {
		// Nothing here fetches; a dial would be a bug (and must not
		// reach the public addresses the 2019 documents list).
		cm := chanmgr.New(&channel.Config{Clock: clock.At(now), Dialer: refuseDial{t}})
		b, err := New(Config{Authorities: auths, Store: st, Channels: cm, Clock: clock.At(now), PrimaryGuards: primary, Logf: t.Logf})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close(); cm.Close() })
		return b
	}
	view := func(b *Bootstrapper) *netdir.NetDir {
		t.Helper()
		stored, live, recent := b.loadCache()
		if stored == nil || live != nil || recent == nil {
			t.Fatalf("cache: stored %v, live %v, recent %v; want an expired, reasonably live consensus", stored != nil, live != nil, recent != nil)
		}
		return b.staleView(recent)
	}

	all := func(int, netdoc.Microdesc) bool { return true }
	st, auths, vu := staleStore(t, all)
	now := vu.Add(time.Hour)
	nd := view(boot(st, auths, now, nil))
	if nd == nil {
		t.Fatal("no view from the expired consensus with every microdescriptor stored")
	}
	if di := nd.DirInfo(); !di.Enough(0) || nd.ValidUntil() != vu {
		t.Fatalf("view: %+v, valid until %v", di, nd.ValidUntil())
	}

	// A day and more past valid-until the consensus is not reasonably
	// live: no view, and loadCache says so.
	if _, _, recent := boot(st, auths, vu.Add(25*time.Hour), nil).loadCache(); recent != nil {
		t.Fatal("a consensus expired 25 h ago counted as reasonably live")
	}

	// One stored microdescriptor in ten: not enough.
	few, auths, _ := staleStore(t, func(i int, _ netdoc.Microdesc) bool { return i%10 == 0 })
	if nd := view(boot(few, auths, now, nil)); nd != nil {
		t.Fatalf("a view from %d of %d microdescriptors", nd.NumMicrodescs(), nd.Len())
	}

	// Everything but one primary guard's microdescriptor: not ready
	// before it is fetched.
	var guard netdir.Relay
	for i := range nd.Len() {
		if r := nd.Relay(netdir.RelayIndex(i)); r.Flags.Has(netdir.FlagGuard) && r.Flags.Has(netdir.FlagHasMicrodesc) {
			guard = r
			break
		}
	}
	if guard.ID == ([20]byte{}) {
		t.Fatal("no guard in the 2019 consensus")
	}
	noGuard, auths, _ := staleStore(t, func(_ int, md netdoc.Microdesc) bool { return md.Digest != guard.MicrodescDigest })
	primary := func(v *netdir.NetDir) []netdir.Relay {
		i, ok := v.ByID(guard.ID)
		if !ok {
			return nil
		}
		return []netdir.Relay{v.Relay(i)}
	}
	if nd := view(boot(noGuard, auths, now, primary)); nd != nil {
		t.Fatal("a view without the primary guard's microdescriptor")
	}
	// The same guard with its microdescriptor stored: ready.
	if nd := view(boot(st, auths, now, primary)); nd == nil {
		t.Fatal("no view with the primary guard's microdescriptor stored")
	}
}
