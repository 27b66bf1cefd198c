package cell

import (
	"encoding/binary"
	"fmt"
)

// Conflux relay commands (proposal 329, tor-spec "Conflux").
const (
	RelayConfluxLink      RelayCmd = 19
	RelayConfluxLinked    RelayCmd = 20
	RelayConfluxLinkedAck RelayCmd = 21
	RelayConfluxSwitch    RelayCmd = 22
)

func init() {
	relayNames[RelayConfluxLink] = "CONFLUX_LINK"
	relayNames[RelayConfluxLinked] = "CONFLUX_LINKED"
	relayNames[RelayConfluxLinkedAck] = "CONFLUX_LINKED_ACK"
	relayNames[RelayConfluxSwitch] = "CONFLUX_SWITCH"
}

// ConfluxUX is the desired_ux field of a CONFLUX_LINK: how the exit
// should schedule data over the legs.
type ConfluxUX uint8

// Desired UX values (C tor's CONFLUX_UX_*).
const (
	ConfluxUXNoOpinion        ConfluxUX = 0
	ConfluxUXMinLatency       ConfluxUX = 1
	ConfluxUXLowMemLatency    ConfluxUX = 2
	ConfluxUXHighThroughput   ConfluxUX = 3
	ConfluxUXLowMemThroughput ConfluxUX = 4
)

// ConfluxLinkVersion is the only CONFLUX_LINK version defined.
const ConfluxLinkVersion = 1

// confluxLinkLen is the v1 body: version, nonce, two sequence numbers
// and the desired UX.
const confluxLinkLen = 1 + 32 + 8 + 8 + 1

// ConfluxLink is the body of CONFLUX_LINK and of CONFLUX_LINKED (the two
// share their format): a leg joins the set named by Nonce.
type ConfluxLink struct {
	// Linked makes the message a CONFLUX_LINKED (the exit's answer).
	Linked bool
	Nonce  [32]byte
	// LastSent and LastRecv are the sender's absolute sequence numbers
	// (zero for a new set).
	LastSent, LastRecv uint64
	UX                 ConfluxUX
}

// Cmd implements RelayMsg.
func (m *ConfluxLink) Cmd() RelayCmd {
	if m.Linked {
		return RelayConfluxLinked
	}
	return RelayConfluxLink
}

// Append implements RelayMsg.
func (m *ConfluxLink) Append(b []byte) ([]byte, error) {
	b = append(b, ConfluxLinkVersion)
	b = append(b, m.Nonce[:]...)
	b = binary.BigEndian.AppendUint64(b, m.LastSent)
	b = binary.BigEndian.AppendUint64(b, m.LastRecv)
	return append(b, byte(m.UX)), nil
}

// ParseConfluxLink decodes a CONFLUX_LINK or CONFLUX_LINKED body of
// version 1; trailing bytes are ignored, as trunnel's parser does.
func ParseConfluxLink(cmd RelayCmd, body []byte) (*ConfluxLink, error) {
	if len(body) < 1 {
		return nil, fmt.Errorf("cell: %v: %w", cmd, ErrTruncated)
	}
	if body[0] != ConfluxLinkVersion {
		return nil, fmt.Errorf("cell: %v version %d unsupported", cmd, body[0])
	}
	if len(body) < confluxLinkLen {
		return nil, fmt.Errorf("cell: %v: %w", cmd, ErrTruncated)
	}
	m := &ConfluxLink{Linked: cmd == RelayConfluxLinked}
	copy(m.Nonce[:], body[1:33])
	m.LastSent = binary.BigEndian.Uint64(body[33:41])
	m.LastRecv = binary.BigEndian.Uint64(body[41:49])
	m.UX = ConfluxUX(body[49])
	return m, nil
}

// ConfluxLinkedAck is CONFLUX_LINKED_ACK: an empty body.
type ConfluxLinkedAck struct{}

// Cmd implements RelayMsg.
func (*ConfluxLinkedAck) Cmd() RelayCmd { return RelayConfluxLinkedAck }

// Append implements RelayMsg.
func (*ConfluxLinkedAck) Append(b []byte) ([]byte, error) { return b, nil }

// ConfluxSwitch is CONFLUX_SWITCH: the sender moved to this leg, and
// Seq cells were sent on other legs since it last sent on this one.
type ConfluxSwitch struct {
	Seq uint32
}

// Cmd implements RelayMsg.
func (*ConfluxSwitch) Cmd() RelayCmd { return RelayConfluxSwitch }

// Append implements RelayMsg.
func (m *ConfluxSwitch) Append(b []byte) ([]byte, error) {
	return binary.BigEndian.AppendUint32(b, m.Seq), nil
}

// ParseConfluxSwitch decodes a CONFLUX_SWITCH body.
func ParseConfluxSwitch(body []byte) (*ConfluxSwitch, error) {
	if len(body) < 4 {
		return nil, fmt.Errorf("cell: CONFLUX_SWITCH: %w", ErrTruncated)
	}
	return &ConfluxSwitch{Seq: binary.BigEndian.Uint32(body)}, nil
}

// ConfluxSequenced reports whether cmd counts towards a conflux set's
// sequence numbers (and so must be delivered in the set's order). This
// is C tor's conflux_should_multiplex: stream messages and flow control
// are, circuit-level and conflux control messages are not.
func ConfluxSequenced(cmd RelayCmd) bool {
	switch cmd {
	case RelayBegin, RelayData, RelayEnd, RelayConnected, RelayResolve, RelayResolved, RelayXoff, RelayXon:
		return true
	}
	return false
}
