package cell

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Sizes of a fixed cell on a link of protocol version 4 or higher.
const (
	// CircIDLen is the width of a circuit ID on link protocol 4 and later.
	CircIDLen = 4
	// HeaderLen is CircID plus Command.
	HeaderLen = CircIDLen + 1
	// PayloadLen is the payload of every fixed cell (tor-spec PAYLOAD_LEN).
	PayloadLen = 509
	// Len is the size of a fixed cell on the wire (CELL_LEN(4+)).
	Len = HeaderLen + PayloadLen
	// VarHeaderLen is the header of a variable-length cell: CircID, Command
	// and a 2-byte length, for link protocol 4 and later.
	VarHeaderLen = HeaderLen + 2
	// MaxVarPayload is the largest payload a variable-length cell can carry.
	MaxVarPayload = 0xffff
)

// ErrTruncated means a message ended before its fields did.
var ErrTruncated = errors.New("cell: truncated")

// Command is a cell command (tor-spec section 3).
type Command uint8

// Cell commands. Values below 128 (except VERSIONS) are fixed-length.
const (
	CmdPadding          Command = 0
	CmdCreate           Command = 1
	CmdCreated          Command = 2
	CmdRelay            Command = 3
	CmdDestroy          Command = 4
	CmdCreateFast       Command = 5
	CmdCreatedFast      Command = 6
	CmdVersions         Command = 7
	CmdNetinfo          Command = 8
	CmdRelayEarly       Command = 9
	CmdCreate2          Command = 10
	CmdCreated2         Command = 11
	CmdPaddingNegotiate Command = 12
	CmdVPadding         Command = 128
	CmdCerts            Command = 129
	CmdAuthChallenge    Command = 130
	CmdAuthenticate     Command = 131
	CmdAuthorize        Command = 132
)

var commandNames = map[Command]string{
	CmdPadding: "PADDING", CmdCreate: "CREATE", CmdCreated: "CREATED", CmdRelay: "RELAY",
	CmdDestroy: "DESTROY", CmdCreateFast: "CREATE_FAST", CmdCreatedFast: "CREATED_FAST",
	CmdVersions: "VERSIONS", CmdNetinfo: "NETINFO", CmdRelayEarly: "RELAY_EARLY",
	CmdCreate2: "CREATE2", CmdCreated2: "CREATED2", CmdPaddingNegotiate: "PADDING_NEGOTIATE",
	CmdVPadding: "VPADDING", CmdCerts: "CERTS", CmdAuthChallenge: "AUTH_CHALLENGE",
	CmdAuthenticate: "AUTHENTICATE", CmdAuthorize: "AUTHORIZE",
}

func (c Command) String() string {
	if s, ok := commandNames[c]; ok {
		return s
	}
	return fmt.Sprintf("CMD(%d)", uint8(c))
}

// IsVariable reports whether cells with this command are variable-length
// on a link of protocol version 3 or higher.
func (c Command) IsVariable() bool { return c == CmdVersions || c >= 128 }

// Cell is one fixed-length cell exactly as it travels on a link of protocol
// version 4 or higher. Cells are normally borrowed from a Pool.
type Cell [Len]byte

// CircID returns the circuit ID.
func (c *Cell) CircID() uint32 { return binary.BigEndian.Uint32(c[0:4]) }

// SetCircID sets the circuit ID.
func (c *Cell) SetCircID(id uint32) { binary.BigEndian.PutUint32(c[0:4], id) }

// Command returns the cell command.
func (c *Cell) Command() Command { return Command(c[4]) }

// SetCommand sets the cell command.
func (c *Cell) SetCommand(cmd Command) { c[4] = byte(cmd) }

// Payload returns the payload, aliasing the cell.
func (c *Cell) Payload() *[PayloadLen]byte { return (*[PayloadLen]byte)(c[HeaderLen:]) }

// Reset sets the header to id and cmd and zeroes the payload.
func (c *Cell) Reset(id uint32, cmd Command) {
	c.SetCircID(id)
	c.SetCommand(cmd)
	clear(c[HeaderLen:])
}

// SetPayload writes a fixed cell with header id/cmd whose payload is p,
// padded with zero bytes. p longer than PayloadLen is an error.
func (c *Cell) SetPayload(id uint32, cmd Command, p []byte) error {
	if len(p) > PayloadLen {
		return fmt.Errorf("cell: %s payload of %d bytes exceeds %d", cmd, len(p), PayloadLen)
	}
	c.SetCircID(id)
	c.SetCommand(cmd)
	n := copy(c[HeaderLen:], p)
	clear(c[HeaderLen+n:])
	return nil
}

// VarCell is a variable-length cell (VERSIONS, VPADDING, CERTS,
// AUTH_CHALLENGE, AUTHENTICATE, AUTHORIZE).
type VarCell struct {
	CircID  uint32
	Command Command
	Payload []byte
}

// AppendVar encodes a variable-length cell with a circuit ID of circIDLen
// bytes (2 for VERSIONS and before it, 4 afterwards).
func AppendVar(b []byte, circIDLen int, v VarCell) ([]byte, error) {
	if len(v.Payload) > MaxVarPayload {
		return b, fmt.Errorf("cell: %s payload of %d bytes is too long", v.Command, len(v.Payload))
	}
	switch circIDLen {
	case 2:
		if v.CircID > 0xffff {
			return b, errors.New("cell: circuit ID does not fit 2 bytes")
		}
		b = binary.BigEndian.AppendUint16(b, uint16(v.CircID))
	case 4:
		b = binary.BigEndian.AppendUint32(b, v.CircID)
	default:
		panic("BUG: circuit ID length must be 2 or 4")
	}
	b = append(b, byte(v.Command))
	b = binary.BigEndian.AppendUint16(b, uint16(len(v.Payload)))
	return append(b, v.Payload...), nil
}

// Create2 is the body of a CREATE2 cell and of EXTEND2's handshake part.
type Create2 struct {
	HType uint16
	HData []byte
}

// Handshake types (CREATE2 HTYPE).
const (
	HTypeTAP    uint16 = 0
	HTypeNtor   uint16 = 2
	HTypeNtorV3 uint16 = 3
)

// Append encodes c.
func (c Create2) Append(b []byte) ([]byte, error) {
	if len(c.HData) > PayloadLen-4 {
		return b, errors.New("cell: CREATE2 handshake too long")
	}
	b = binary.BigEndian.AppendUint16(b, c.HType)
	b = binary.BigEndian.AppendUint16(b, uint16(len(c.HData)))
	return append(b, c.HData...), nil
}

// ParseCreate2 parses a CREATE2 payload. HData aliases p.
func ParseCreate2(p []byte) (Create2, error) {
	if len(p) < 4 {
		return Create2{}, ErrTruncated
	}
	n := int(binary.BigEndian.Uint16(p[2:4]))
	if len(p) < 4+n {
		return Create2{}, fmt.Errorf("cell: CREATE2 handshake length %d exceeds payload: %w", n, ErrTruncated)
	}
	return Create2{HType: binary.BigEndian.Uint16(p[0:2]), HData: p[4 : 4+n]}, nil
}

// Created2 is the body of a CREATED2 cell and of an EXTENDED2 message.
type Created2 struct {
	HData []byte
}

// Append encodes c.
func (c Created2) Append(b []byte) ([]byte, error) {
	if len(c.HData) > PayloadLen-2 {
		return b, errors.New("cell: CREATED2 handshake too long")
	}
	b = binary.BigEndian.AppendUint16(b, uint16(len(c.HData)))
	return append(b, c.HData...), nil
}

// ParseCreated2 parses a CREATED2 payload. HData aliases p.
func ParseCreated2(p []byte) (Created2, error) {
	if len(p) < 2 {
		return Created2{}, ErrTruncated
	}
	n := int(binary.BigEndian.Uint16(p[0:2]))
	if len(p) < 2+n {
		return Created2{}, fmt.Errorf("cell: CREATED2 handshake length %d exceeds payload: %w", n, ErrTruncated)
	}
	return Created2{HData: p[2 : 2+n]}, nil
}

// Sizes of the CREATE_FAST handshake (tor-spec 5.1.5).
const (
	CreateFastLen  = 20
	CreatedFastLen = 40
)

// DestroyReason is the reason byte of DESTROY and RELAY_TRUNCATED
// (tor-spec 5.4).
type DestroyReason uint8

// Destroy reasons.
const (
	DestroyNone           DestroyReason = 0
	DestroyProtocol       DestroyReason = 1
	DestroyInternal       DestroyReason = 2
	DestroyRequested      DestroyReason = 3
	DestroyHibernating    DestroyReason = 4
	DestroyResourceLimit  DestroyReason = 5
	DestroyConnectFailed  DestroyReason = 6
	DestroyORIdentity     DestroyReason = 7
	DestroyChannelClosed  DestroyReason = 8
	DestroyFinished       DestroyReason = 9
	DestroyTimeout        DestroyReason = 10
	DestroyDestroyed      DestroyReason = 11
	DestroyNoSuchService  DestroyReason = 12
	destroyReasonKnownMax               = DestroyNoSuchService
)

var destroyNames = [...]string{"NONE", "PROTOCOL", "INTERNAL", "REQUESTED", "HIBERNATING",
	"RESOURCELIMIT", "CONNECTFAILED", "OR_IDENTITY", "CHANNEL_CLOSED", "FINISHED", "TIMEOUT",
	"DESTROYED", "NOSUCHSERVICE"}

func (r DestroyReason) String() string {
	if r <= destroyReasonKnownMax {
		return destroyNames[r]
	}
	return fmt.Sprintf("REASON(%d)", uint8(r))
}

// ParseVersions parses a VERSIONS payload: a list of 2-byte versions.
func ParseVersions(p []byte) ([]uint16, error) {
	if len(p)%2 != 0 {
		return nil, errors.New("cell: VERSIONS payload has odd length")
	}
	vs := make([]uint16, 0, len(p)/2)
	for i := 0; i < len(p); i += 2 {
		vs = append(vs, binary.BigEndian.Uint16(p[i:]))
	}
	return vs, nil
}

// AppendVersions encodes a VERSIONS payload.
func AppendVersions(b []byte, vs []uint16) []byte {
	for _, v := range vs {
		b = binary.BigEndian.AppendUint16(b, v)
	}
	return b
}

// CertEntry is one certificate in a CERTS cell (tor-spec 4.2).
type CertEntry struct {
	Type uint8
	Body []byte
}

// CERTS cell certificate types.
const (
	CertTypeRSALink        uint8 = 1
	CertTypeRSAIdentity    uint8 = 2
	CertTypeRSAAuth        uint8 = 3
	CertTypeEdIDSigning    uint8 = 4
	CertTypeEdSigningLink  uint8 = 5
	CertTypeEdSigningAuth  uint8 = 6
	CertTypeRSAEdCrosscert uint8 = 7
)

// ParseCerts parses a CERTS payload. Bodies alias p; trailing bytes are
// ignored as the spec requires.
func ParseCerts(p []byte) ([]CertEntry, error) {
	if len(p) < 1 {
		return nil, ErrTruncated
	}
	n := int(p[0])
	p = p[1:]
	out := make([]CertEntry, 0, n)
	for i := 0; i < n; i++ {
		if len(p) < 3 {
			return nil, fmt.Errorf("cell: CERTS entry %d header: %w", i, ErrTruncated)
		}
		l := int(binary.BigEndian.Uint16(p[1:3]))
		if len(p) < 3+l {
			return nil, fmt.Errorf("cell: CERTS entry %d body: %w", i, ErrTruncated)
		}
		out = append(out, CertEntry{Type: p[0], Body: p[3 : 3+l]})
		p = p[3+l:]
	}
	return out, nil
}

// AppendCerts encodes a CERTS payload.
func AppendCerts(b []byte, certs []CertEntry) ([]byte, error) {
	if len(certs) > 255 {
		return b, errors.New("cell: too many certificates")
	}
	b = append(b, byte(len(certs)))
	for _, c := range certs {
		if len(c.Body) > 0xffff {
			return b, errors.New("cell: certificate too long")
		}
		b = append(b, c.Type)
		b = binary.BigEndian.AppendUint16(b, uint16(len(c.Body)))
		b = append(b, c.Body...)
	}
	return b, nil
}

// AuthChallenge is the body of an AUTH_CHALLENGE cell (tor-spec 4.3).
type AuthChallenge struct {
	Challenge [32]byte
	Methods   []uint16
}

// ParseAuthChallenge parses an AUTH_CHALLENGE payload, ignoring trailing
// bytes.
func ParseAuthChallenge(p []byte) (AuthChallenge, error) {
	var a AuthChallenge
	if len(p) < 34 {
		return a, ErrTruncated
	}
	copy(a.Challenge[:], p[:32])
	n := int(binary.BigEndian.Uint16(p[32:34]))
	p = p[34:]
	if len(p) < 2*n {
		return a, fmt.Errorf("cell: AUTH_CHALLENGE methods: %w", ErrTruncated)
	}
	a.Methods = make([]uint16, n)
	for i := range a.Methods {
		a.Methods[i] = binary.BigEndian.Uint16(p[2*i:])
	}
	return a, nil
}

// Append encodes a.
func (a AuthChallenge) Append(b []byte) ([]byte, error) {
	if len(a.Methods) > 0xffff {
		return b, errors.New("cell: too many methods")
	}
	b = append(b, a.Challenge[:]...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(a.Methods)))
	for _, m := range a.Methods {
		b = binary.BigEndian.AppendUint16(b, m)
	}
	return b, nil
}
