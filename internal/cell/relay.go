package cell

import (
	"encoding/binary"
	"fmt"
)

// Relay cell layout (tor-spec 6.1).
const (
	// RelayHeaderLen is the relay header: command, recognized, stream ID,
	// digest and length.
	RelayHeaderLen = 11
	// RelayBodyMax is the most body bytes one relay cell carries.
	RelayBodyMax = PayloadLen - RelayHeaderLen

	// Offsets of the relay header fields inside a relay payload.
	relayOffCmd        = 0
	relayOffRecognized = 1
	relayOffStreamID   = 3
	relayOffDigest     = 5
	relayOffLength     = 9
	relayOffBody       = RelayHeaderLen
)

// RelayCmd is a relay command (tor-spec 6.1).
type RelayCmd uint8

// Relay commands.
const (
	RelayBegin     RelayCmd = 1
	RelayData      RelayCmd = 2
	RelayEnd       RelayCmd = 3
	RelayConnected RelayCmd = 4
	RelaySendme    RelayCmd = 5
	RelayExtend    RelayCmd = 6
	RelayExtended  RelayCmd = 7
	RelayTruncate  RelayCmd = 8
	RelayTruncated RelayCmd = 9
	RelayDrop      RelayCmd = 10
	RelayResolve   RelayCmd = 11
	RelayResolved  RelayCmd = 12
	RelayBeginDir  RelayCmd = 13
	RelayExtend2   RelayCmd = 14
	RelayExtended2 RelayCmd = 15
	// XOFF is 43 and XON 44 as C tor and arti send them; the 2023
	// tor-spec table (section 6.1) has the two swapped.
	RelayXoff RelayCmd = 43
	RelayXon  RelayCmd = 44
)

var relayNames = map[RelayCmd]string{
	RelayBegin: "BEGIN", RelayData: "DATA", RelayEnd: "END", RelayConnected: "CONNECTED",
	RelaySendme: "SENDME", RelayExtend: "EXTEND", RelayExtended: "EXTENDED",
	RelayTruncate: "TRUNCATE", RelayTruncated: "TRUNCATED", RelayDrop: "DROP",
	RelayResolve: "RESOLVE", RelayResolved: "RESOLVED", RelayBeginDir: "BEGIN_DIR",
	RelayExtend2: "EXTEND2", RelayExtended2: "EXTENDED2", RelayXon: "XON", RelayXoff: "XOFF",
}

func (c RelayCmd) String() string {
	if s, ok := relayNames[c]; ok {
		return s
	}
	return fmt.Sprintf("RELAY_CMD(%d)", uint8(c))
}

// RelayHeader is the decoded relay header of a relay payload.
type RelayHeader struct {
	Cmd        RelayCmd
	Recognized uint16
	StreamID   uint16
	Digest     [4]byte
	Length     uint16
}

// Append encodes h (RelayHeaderLen bytes).
func (h RelayHeader) Append(b []byte) []byte {
	b = append(b, byte(h.Cmd))
	b = binary.BigEndian.AppendUint16(b, h.Recognized)
	b = binary.BigEndian.AppendUint16(b, h.StreamID)
	b = append(b, h.Digest[:]...)
	return binary.BigEndian.AppendUint16(b, h.Length)
}

// ParseRelayHeader decodes the relay header at the start of a decrypted
// relay payload p. It checks that Length fits the payload.
func ParseRelayHeader(p []byte) (RelayHeader, error) {
	if len(p) < RelayHeaderLen {
		return RelayHeader{}, ErrTruncated
	}
	h := RelayHeader{
		Cmd:        RelayCmd(p[relayOffCmd]),
		Recognized: binary.BigEndian.Uint16(p[relayOffRecognized:]),
		StreamID:   binary.BigEndian.Uint16(p[relayOffStreamID:]),
		Digest:     [4]byte(p[relayOffDigest : relayOffDigest+4]),
		Length:     binary.BigEndian.Uint16(p[relayOffLength:]),
	}
	if int(h.Length) > len(p)-RelayHeaderLen {
		return h, fmt.Errorf("cell: relay length %d exceeds payload", h.Length)
	}
	return h, nil
}

// Relay header field accessors on a whole cell, used by relay crypto.

// RelayRecognized returns the recognized field of c's relay payload.
func (c *Cell) RelayRecognized() uint16 {
	return binary.BigEndian.Uint16(c[HeaderLen+relayOffRecognized:])
}

// RelayDigestField returns the 4-byte digest field of c's relay payload.
func (c *Cell) RelayDigestField() *[4]byte {
	return (*[4]byte)(c[HeaderLen+relayOffDigest:])
}

// RelayHeader decodes c's relay header.
func (c *Cell) RelayHeader() (RelayHeader, error) { return ParseRelayHeader(c[HeaderLen:]) }

// RelayBody returns the relay body of c (aliasing c), checked against the
// header's length.
func (c *Cell) RelayBody() (RelayHeader, []byte, error) {
	h, err := c.RelayHeader()
	if err != nil {
		return h, nil, err
	}
	return h, c[HeaderLen+relayOffBody : HeaderLen+relayOffBody+int(h.Length)], nil
}

// SetRelay writes a relay cell: circuit ID id, command cmd (RELAY or
// RELAY_EARLY), a header with zero recognized and digest fields, the
// encoded msg, and zero bytes up to the end. It returns the body length.
// The caller may fill RelayPadding with random bytes before encryption.
func (c *Cell) SetRelay(id uint32, cmd Command, streamID uint16, msg RelayMsg) (int, error) {
	body, err := msg.Append(c[HeaderLen+relayOffBody : HeaderLen+relayOffBody : Len])
	if err != nil {
		return 0, err
	}
	if len(body) > RelayBodyMax {
		return 0, fmt.Errorf("cell: relay %s body of %d bytes exceeds %d", msg.Cmd(), len(body), RelayBodyMax)
	}
	if len(body) > 0 && &body[0] != &c[HeaderLen+relayOffBody] {
		panic("BUG: relay message appended out of place")
	}
	c.SetCircID(id)
	c.SetCommand(cmd)
	h := RelayHeader{Cmd: msg.Cmd(), StreamID: streamID, Length: uint16(len(body))}
	h.Append(c[HeaderLen:HeaderLen])
	clear(c[HeaderLen+relayOffBody+len(body):])
	return len(body), nil
}

// SetRelayBody is SetRelay for an already encoded body (such as DATA
// bytes); it allocates nothing.
func (c *Cell) SetRelayBody(id uint32, cmd Command, rcmd RelayCmd, streamID uint16, body []byte) error {
	if len(body) > RelayBodyMax {
		return fmt.Errorf("cell: relay %s body of %d bytes exceeds %d", rcmd, len(body), RelayBodyMax)
	}
	c.SetCircID(id)
	c.SetCommand(cmd)
	h := RelayHeader{Cmd: rcmd, StreamID: streamID, Length: uint16(len(body))}
	h.Append(c[HeaderLen:HeaderLen])
	n := copy(c[HeaderLen+relayOffBody:], body)
	clear(c[HeaderLen+relayOffBody+n:])
	return nil
}

// RelayPadding returns the part of c's relay payload that the spec asks
// to fill with random bytes: everything after the body and four zero
// bytes. It may be empty.
func (c *Cell) RelayPadding() []byte {
	n := int(binary.BigEndian.Uint16(c[HeaderLen+relayOffLength:]))
	start := HeaderLen + relayOffBody + n + 4
	if start >= Len {
		return nil
	}
	return c[start:]
}
