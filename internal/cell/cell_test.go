package cell

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"net/netip"
	"reflect"
	"testing"
)

func TestCellHeader(t *testing.T) {
	var c Cell
	c.SetCircID(0x80000001)
	c.SetCommand(CmdCreate2)
	if c.CircID() != 0x80000001 || c.Command() != CmdCreate2 {
		t.Fatalf("got %x %v", c.CircID(), c.Command())
	}
	if !bytes.Equal(c[:5], []byte{0x80, 0, 0, 1, 10}) {
		t.Fatalf("header bytes %x", c[:5])
	}
	if err := c.SetPayload(7, CmdDestroy, []byte{3}); err != nil {
		t.Fatal(err)
	}
	if c.Payload()[0] != 3 || c.Payload()[1] != 0 || c.CircID() != 7 {
		t.Fatal("SetPayload did not write or pad")
	}
	if err := c.SetPayload(7, CmdDestroy, make([]byte, PayloadLen+1)); err == nil {
		t.Fatal("oversized payload accepted")
	}
}

func TestCommandVariable(t *testing.T) {
	for cmd, want := range map[Command]bool{CmdVersions: true, CmdCerts: true, CmdVPadding: true,
		CmdRelay: false, CmdNetinfo: false, CmdPaddingNegotiate: false, 200: true} {
		if cmd.IsVariable() != want {
			t.Errorf("%v.IsVariable() = %v", cmd, !want)
		}
	}
	if CmdCreated2.String() != "CREATED2" || Command(99).String() != "CMD(99)" {
		t.Error("Command.String")
	}
}

func TestVarCellEncoding(t *testing.T) {
	b, err := AppendVar(nil, 2, VarCell{Command: CmdVersions, Payload: AppendVersions(nil, []uint16{4, 5})})
	if err != nil {
		t.Fatal(err)
	}
	// The VERSIONS cell a link-v4/5 client sends (tor-spec 4.1).
	if got := hex.EncodeToString(b); got != "0000070004"+"00040005" {
		t.Fatalf("VERSIONS = %s", got)
	}
	b, err = AppendVar(nil, 4, VarCell{CircID: 1, Command: CmdCerts, Payload: []byte{0}})
	if err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(b); got != "00000001"+"81"+"0001"+"00" {
		t.Fatalf("CERTS = %s", got)
	}
	if _, err := AppendVar(nil, 2, VarCell{CircID: 1 << 20}); err == nil {
		t.Fatal("wide circuit ID accepted for 2-byte encoding")
	}
	if _, err := ParseVersions([]byte{0, 4, 0}); err == nil {
		t.Fatal("odd VERSIONS accepted")
	}
}

func TestCertsRoundTrip(t *testing.T) {
	in := []CertEntry{{Type: 2, Body: []byte("rsa")}, {Type: 4, Body: bytes.Repeat([]byte{1}, 300)}}
	b, err := AppendCerts(nil, in)
	if err != nil {
		t.Fatal(err)
	}
	out, err := ParseCerts(append(b, 9, 9)) // trailing bytes ignored
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(in, out) {
		t.Fatalf("round trip: %v", out)
	}
	if _, err := ParseCerts(b[:len(b)-1]); !errors.Is(err, ErrTruncated) {
		t.Fatalf("truncated CERTS: %v", err)
	}
}

func TestAuthChallenge(t *testing.T) {
	a := AuthChallenge{Methods: []uint16{1, 3}}
	a.Challenge[0] = 0xaa
	b, _ := a.Append(nil)
	got, err := ParseAuthChallenge(b)
	if err != nil || !reflect.DeepEqual(got, a) {
		t.Fatalf("%v %v", got, err)
	}
	if _, err := ParseAuthChallenge(b[:35]); err == nil {
		t.Fatal("truncated AUTH_CHALLENGE accepted")
	}
}

func TestNetinfo(t *testing.T) {
	n := Netinfo{Time: 1700000000, OtherAddr: netip.MustParseAddr("127.0.0.1"),
		MyAddrs: []netip.Addr{netip.MustParseAddr("10.1.2.3"), netip.MustParseAddr("2001:db8::1")}}
	b, err := n.Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	want := "6553f100" + "0404" + "7f000001" + "02" + "04040a010203" + "0610" + "20010db8000000000000000000000001"
	if hex.EncodeToString(b) != want {
		t.Fatalf("NETINFO = %x", b)
	}
	got, err := ParseNetinfo(append(b, 0, 0, 0))
	if err != nil || !reflect.DeepEqual(got, n) {
		t.Fatalf("%+v %v", got, err)
	}
	// An address of unknown type is skipped; a wrong ALEN is ignored.
	odd, _ := hex.DecodeString("00000000" + "0403010203" + "02" + "0902aaaa" + "04047f000002")
	got, err = ParseNetinfo(odd)
	if err != nil || got.OtherAddr.IsValid() || len(got.MyAddrs) != 1 || got.MyAddrs[0].String() != "127.0.0.2" {
		t.Fatalf("%+v %v", got, err)
	}
	if _, err := ParseNetinfo(odd[:10]); err == nil {
		t.Fatal("truncated NETINFO accepted")
	}
}

func TestCreate2(t *testing.T) {
	c := Create2{HType: HTypeNtor, HData: bytes.Repeat([]byte{7}, 84)}
	b, _ := c.Append(nil)
	got, err := ParseCreate2(b)
	if err != nil || !reflect.DeepEqual(got, c) {
		t.Fatal(got, err)
	}
	if _, err := ParseCreate2(b[:50]); err == nil {
		t.Fatal("short CREATE2 accepted")
	}
	r := Created2{HData: []byte{1, 2, 3}}
	b, _ = r.Append(nil)
	got2, err := ParseCreated2(b)
	if err != nil || !reflect.DeepEqual(got2, r) {
		t.Fatal(got2, err)
	}
	if _, err := ParseCreated2([]byte{0, 9, 1}); err == nil {
		t.Fatal("short CREATED2 accepted")
	}
}

func TestRelayHeaderLayout(t *testing.T) {
	var c Cell
	n, err := c.SetRelay(0x80000005, CmdRelayEarly, 0x1234, &Data{Data: []byte("hello")})
	if err != nil || n != 5 {
		t.Fatal(n, err)
	}
	want := "80000005" + "09" + "02" + "0000" + "1234" + "00000000" + "0005" + hex.EncodeToString([]byte("hello"))
	if got := hex.EncodeToString(c[:16+5]); got != want {
		t.Fatalf("relay cell = %s\nwant        %s", got, want)
	}
	h, body, err := c.RelayBody()
	if err != nil || h.Cmd != RelayData || h.StreamID != 0x1234 || string(body) != "hello" {
		t.Fatal(h, body, err)
	}
	if pad := c.RelayPadding(); len(pad) != RelayBodyMax-5-4 || &pad[0] != &c[16+5+4] {
		t.Fatalf("padding region %d", len(pad))
	}
	// A full cell leaves no padding.
	if _, err := c.SetRelay(1, CmdRelay, 1, &Data{Data: make([]byte, RelayBodyMax)}); err != nil {
		t.Fatal(err)
	}
	if c.RelayPadding() != nil {
		t.Fatal("full cell has padding")
	}
	if _, err := c.SetRelay(1, CmdRelay, 1, &Data{Data: make([]byte, RelayBodyMax+1)}); err == nil {
		t.Fatal("oversized DATA accepted")
	}
	// A header whose length exceeds the payload is rejected.
	c.Payload()[9], c.Payload()[10] = 0x01, 0xf3
	if _, _, err := c.RelayBody(); err == nil {
		t.Fatal("bad relay length accepted")
	}
}

func TestSetRelayBody(t *testing.T) {
	var a, b Cell
	if _, err := a.SetRelay(9, CmdRelay, 4, &Data{Data: []byte("same")}); err != nil {
		t.Fatal(err)
	}
	b[100] = 1 // stale bytes must be cleared
	if err := b.SetRelayBody(9, CmdRelay, RelayData, 4, []byte("same")); err != nil {
		t.Fatal(err)
	}
	if a != b {
		t.Fatal("SetRelayBody differs from SetRelay")
	}
	if err := b.SetRelayBody(9, CmdRelay, RelayData, 4, make([]byte, RelayBodyMax+1)); err == nil {
		t.Fatal("oversized body accepted")
	}
	if n := testing.AllocsPerRun(100, func() { b.SetRelayBody(9, CmdRelay, RelayData, 4, a[20:400]) }); n != 0 {
		t.Fatalf("SetRelayBody allocates %v times", n)
	}
}

func TestSetRelayDoesNotAllocate(t *testing.T) {
	var c Cell
	d := &Data{Data: make([]byte, 400)}
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := c.SetRelay(1, CmdRelay, 1, d); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("SetRelay allocates %v times", allocs)
	}
}

// relayCases are valid messages and their exact encodings.
var relayCases = []struct {
	msg RelayMsg
	hex string
}{
	{&Begin{Host: "Example.COM", Port: 80}, hex.EncodeToString([]byte("example.com:80\x00")) + "00000000"},
	{&Begin{Host: "2001:db8::1", Port: 443, Flags: BeginIPv6OK}, hex.EncodeToString([]byte("[2001:db8::1]:443\x00")) + "00000001"},
	{&BeginDir{}, ""},
	{&Data{Data: []byte("GET /")}, hex.EncodeToString([]byte("GET /"))},
	{&End{Reason: EndDone, TTL: 0xffffffff}, "06"},
	{&End{Reason: EndExitPolicy, Addr: netip.MustParseAddr("1.2.3.4"), TTL: 60}, "04" + "01020304" + "0000003c"},
	{&Connected{Addr: netip.MustParseAddr("127.0.0.1"), TTL: 300}, "7f000001" + "0000012c"},
	{&Connected{Addr: netip.MustParseAddr("2001:db8::2"), TTL: 5}, "0000000006" + "20010db8000000000000000000000002" + "00000005"},
	{&Connected{}, ""},
	{&Sendme{}, ""},
	{&Sendme{Version: 1, Digest: [20]byte{1, 2, 3}}, "010014" + "0102030000000000000000000000000000000000"},
	{&Extend2{Specs: []LinkSpec{LinkSpecAddr(netip.MustParseAddrPort("127.0.0.1:9001")), {Type: LinkSpecRSAID, Data: bytes.Repeat([]byte{0xab}, 20)}},
		Create: Create2{HType: HTypeNtor, HData: []byte{9, 9}}},
		"02" + "00067f0000012329" + "0214" + "abababababababababababababababababababab" + "0002" + "0002" + "0909"},
	{&Extended2{HData: []byte{5, 6}}, "00020506"},
	{&Truncate{}, ""},
	{&Truncated{Reason: DestroyORIdentity}, "07"},
	{&Drop{}, ""},
	{&Resolve{Query: "example.org"}, hex.EncodeToString([]byte("example.org\x00"))},
	{&Resolved{Answers: []Answer{{Type: AnswerIPv4, Addr: netip.MustParseAddr("9.8.7.6"), TTL: 10},
		{Type: AnswerHostname, Value: []byte("a.b"), TTL: 1}}}, "040409080706" + "0000000a" + "0003612e62" + "00000001"},
	{&Unknown{Command: 200, Body: []byte{1}}, "01"},
	{&Xoff{}, "00"},
	{&Xon{}, "0000000000"},
	{&Xon{KBpsEWMA: 0x01020304}, "0001020304"},
}

func TestXonXoffParse(t *testing.T) {
	for _, tc := range []struct {
		cmd  RelayCmd
		body string
		ok   bool
	}{
		{RelayXoff, "", false},
		{RelayXoff, "\x01", false},
		{RelayXoff, "\x00junk", true},
		{RelayXon, "\x00\x00\x00\x01", false},
		{RelayXon, "\x02\x00\x00\x00\x01", false},
		{RelayXon, "\x00\x00\x00\x00\x07pad", true},
	} {
		m, err := ParseRelayMsg(tc.cmd, []byte(tc.body))
		if (err == nil) != tc.ok {
			t.Errorf("%v %q: %v %v", tc.cmd, tc.body, m, err)
		}
	}
	m, _ := ParseXon([]byte("\x00\x00\x00\x01\x00"))
	if m.KBpsEWMA != 256 {
		t.Fatalf("rate %d", m.KBpsEWMA)
	}
}

func TestRelayMsgRoundTrip(t *testing.T) {
	for _, tc := range relayCases {
		b, err := tc.msg.Append(nil)
		if err != nil {
			t.Fatalf("%v: %v", tc.msg.Cmd(), err)
		}
		if got := hex.EncodeToString(b); got != tc.hex {
			t.Errorf("%v encodes to %s, want %s", tc.msg.Cmd(), got, tc.hex)
		}
		back, err := ParseRelayMsg(tc.msg.Cmd(), b)
		if err != nil {
			t.Fatalf("%v: parse: %v", tc.msg.Cmd(), err)
		}
		b2, _ := back.Append(nil)
		if !bytes.Equal(b, b2) {
			t.Errorf("%v: re-encoding differs: %x vs %x", tc.msg.Cmd(), b2, b)
		}
	}
}

func TestRelayMsgParseDetails(t *testing.T) {
	b, _ := ParseBegin([]byte("host.example:8080\x00"))
	if b.Host != "host.example" || b.Port != 8080 || b.Flags != 0 {
		t.Fatalf("%+v", b)
	}
	e, _ := ParseEnd(nil)
	if e.Reason != EndMisc {
		t.Fatal("empty END is not MISC")
	}
	e, _ = ParseEnd([]byte{4, 1, 2})
	if e.Addr.IsValid() || e.TTL != 0xffffffff {
		t.Fatal("malformed EXITPOLICY address not ignored")
	}
	c, _ := ParseConnected(make([]byte, 8))
	if c.Addr.IsValid() {
		t.Fatal("all-zero CONNECTED has an address")
	}
	s, err := ParseSendme([]byte{2, 0, 0})
	if err != nil || s.Version != 2 {
		t.Fatal("unknown SENDME version not passed through", err)
	}
	ls := LinkSpecAddr(netip.MustParseAddrPort("[2001:db8::5]:443"))
	if ap, ok := ls.AddrPort(); !ok || ls.Type != LinkSpecIPv6 || ap.String() != "[2001:db8::5]:443" {
		t.Fatal(ap, ok)
	}
}

func TestRelayMsgRejects(t *testing.T) {
	bad := []struct {
		cmd  RelayCmd
		body string
	}{
		{RelayBegin, "example.com:80"},        // no NUL
		{RelayBegin, "example.com\x00"},       // no port
		{RelayBegin, "example.com:0\x00"},     // port zero
		{RelayBegin, "example.com:70000\x00"}, // port too big
		{RelayBegin, "[1.2.3.4]:80\x00"},      // brackets around IPv4
		{RelayBegin, "a:b:80\x00"},            // bare colon
		{RelaySendme, "\x01\x00"},             // short header
		{RelaySendme, "\x01\x00\x04abcd"},     // v1 digest too short
		{RelaySendme, "\x01\x00\x20abc"},      // data length beyond body
		{RelayExtend2, "\x01\x00\x06\x7f"},    // truncated specifier
		{RelayExtend2, "\x00\x00\x02\x00\x05a"},
		{RelayExtended2, "\x00\x05ab"},
		{RelayResolve, "\x00"},
		{RelayResolved, "\x04\x04\x01\x02\x03\x04\x00"},
		{RelayResolved, "\x04\x03\x01\x02\x03\x00\x00\x00\x00"},
		{RelayConnected, "\x00\x00\x00\x00\x06\x01"},
	}
	for _, tc := range bad {
		if m, err := ParseRelayMsg(tc.cmd, []byte(tc.body)); err == nil {
			t.Errorf("%v %q parsed as %+v", tc.cmd, tc.body, m)
		}
	}
	enc := []RelayMsg{
		&Begin{Host: "", Port: 1}, &Begin{Host: "a", Port: 0}, &Begin{Host: "a\x00b", Port: 1},
		&Begin{Host: "[::1]", Port: 1}, &Begin{Host: "a:b", Port: 1},
		&Data{Data: make([]byte, RelayBodyMax+1)}, &Sendme{Version: 7},
		&Resolve{}, &Resolved{Answers: []Answer{{Type: AnswerIPv4}}},
	}
	for _, m := range enc {
		if _, err := m.Append(nil); err == nil {
			t.Errorf("%v %+v encoded", m.Cmd(), m)
		}
	}
}

func TestPool(t *testing.T) {
	p := NewPool(2)
	ctx := context.Background()
	a, err := p.Get(ctx)
	if err != nil {
		t.Fatal(err)
	}
	a[100] = 7
	b := p.TryGet()
	if b == nil {
		t.Fatal("second buffer refused")
	}
	if p.TryGet() != nil {
		t.Fatal("pool exceeded its cap")
	}
	cctx, cancel := context.WithCancelCause(ctx)
	stop := errors.New("stop")
	cancel(stop)
	if _, err := p.Get(cctx); !errors.Is(err, stop) {
		t.Fatalf("Get at cap with done context: %v", err)
	}
	st := p.Stats()
	if st.InUse != 2 || st.Max != 2 || st.Gets != 4 || st.Waits != 2 || st.Bytes() != 2*Len {
		t.Fatalf("stats %+v", st)
	}
	done := make(chan *Cell)
	go func() {
		c, _ := p.Get(ctx)
		done <- c
	}()
	p.Put(a)
	c := <-done
	for i, v := range c {
		if v != 0 {
			t.Fatalf("reused buffer not zeroed at %d", i)
		}
	}
	p.Put(b)
	p.Put(c)
	if p.Stats().InUse != 0 {
		t.Fatal("buffers still counted in use")
	}
	defer func() {
		if r := recover(); r == nil {
			t.Fatal("Put without Get did not panic")
		}
	}()
	p.Put(new(Cell))
}

func BenchmarkPool(b *testing.B) {
	p := NewPool(16)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		c, _ := p.Get(ctx)
		p.Put(c)
	}
}
