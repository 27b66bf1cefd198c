package cell

import (
	"bytes"
	"encoding/hex"
	"strings"
	"testing"
)

func TestConfluxMessages(t *testing.T) {
	var nonce [32]byte
	for i := range nonce {
		nonce[i] = byte(i)
	}
	link := &ConfluxLink{Nonce: nonce, LastSent: 0x0102, LastRecv: 0x0304, UX: ConfluxUXHighThroughput}
	b, _ := link.Append(nil)
	// version, nonce, last_seqno_sent, last_seqno_recv, desired_ux (trunnel's order).
	want := "01" + hex.EncodeToString(nonce[:]) + "0000000000000102" + "0000000000000304" + "03"
	if got := hex.EncodeToString(b); got != want {
		t.Fatalf("LINK encodes to %s, want %s", got, want)
	}
	if link.Cmd() != RelayConfluxLink || (&ConfluxLink{Linked: true}).Cmd() != RelayConfluxLinked {
		t.Fatal("commands")
	}
	m, err := ParseRelayMsg(RelayConfluxLinked, append(b, 0xff)) // trailing byte ignored
	if err != nil {
		t.Fatal(err)
	}
	back := m.(*ConfluxLink)
	if !back.Linked || back.Nonce != nonce || back.LastSent != 0x0102 || back.LastRecv != 0x0304 || back.UX != 3 {
		t.Fatalf("%+v", back)
	}
	for _, bad := range [][]byte{nil, {2}, b[:len(b)-1], append([]byte{0}, b[1:]...)} {
		if _, err := ParseConfluxLink(RelayConfluxLink, bad); err == nil {
			t.Errorf("%x parsed", bad)
		}
	}
	sw, _ := (&ConfluxSwitch{Seq: 0x01020304}).Append(nil)
	if !bytes.Equal(sw, []byte{1, 2, 3, 4}) {
		t.Fatalf("SWITCH %x", sw)
	}
	if m, err := ParseRelayMsg(RelayConfluxSwitch, sw); err != nil || m.(*ConfluxSwitch).Seq != 0x01020304 {
		t.Fatal(m, err)
	}
	if _, err := ParseConfluxSwitch([]byte{1, 2, 3}); err == nil {
		t.Fatal("short SWITCH parsed")
	}
	if m, err := ParseRelayMsg(RelayConfluxLinkedAck, nil); err != nil || m.Cmd() != RelayConfluxLinkedAck {
		t.Fatal(m, err)
	}
	if !strings.Contains(RelayConfluxSwitch.String(), "SWITCH") {
		t.Fatal(RelayConfluxSwitch.String())
	}
	for cmd, want := range map[RelayCmd]bool{RelayData: true, RelayBegin: true, RelayEnd: true,
		RelayConnected: true, RelayResolve: true, RelayResolved: true, RelayXon: true, RelayXoff: true,
		RelaySendme: false, RelayDrop: false, RelayBeginDir: false, RelayExtended2: false,
		RelayConfluxSwitch: false, RelayConfluxLinked: false} {
		if ConfluxSequenced(cmd) != want {
			t.Errorf("ConfluxSequenced(%v) = %v", cmd, !want)
		}
	}
}
