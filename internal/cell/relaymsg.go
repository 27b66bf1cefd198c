package cell

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// RelayMsg is a decoded relay message body.
type RelayMsg interface {
	// Cmd is the relay command that carries this message.
	Cmd() RelayCmd
	// Append appends the encoded body to b.
	Append(b []byte) ([]byte, error)
}

// ParseRelayMsg decodes the body of a relay message. Commands this package
// does not know are returned as *Unknown, without error: the spec says such
// cells are dropped, and the caller decides. Parsed messages may alias body.
func ParseRelayMsg(cmd RelayCmd, body []byte) (RelayMsg, error) {
	switch cmd {
	case RelayBegin:
		return ParseBegin(body)
	case RelayData:
		return &Data{Data: body}, nil
	case RelayEnd:
		return ParseEnd(body)
	case RelayConnected:
		return ParseConnected(body)
	case RelaySendme:
		return ParseSendme(body)
	case RelayExtend2:
		return ParseExtend2(body)
	case RelayExtended2:
		c, err := ParseCreated2(body)
		if err != nil {
			return nil, fmt.Errorf("cell: EXTENDED2: %w", err)
		}
		return &Extended2{HData: c.HData}, nil
	case RelayTruncate:
		return &Truncate{}, nil
	case RelayTruncated:
		return ParseTruncated(body)
	case RelayDrop:
		return &Drop{}, nil
	case RelayResolve:
		return ParseResolve(body)
	case RelayResolved:
		return ParseResolved(body)
	case RelayBeginDir:
		return &BeginDir{}, nil
	case RelayXon:
		return ParseXon(body)
	case RelayXoff:
		return ParseXoff(body)
	case RelayConfluxLink, RelayConfluxLinked:
		return ParseConfluxLink(cmd, body)
	case RelayConfluxLinkedAck:
		return &ConfluxLinkedAck{}, nil
	case RelayConfluxSwitch:
		return ParseConfluxSwitch(body)
	}
	return &Unknown{Command: cmd, Body: body}, nil
}

// Unknown is a relay message of a command this package does not decode.
type Unknown struct {
	Command RelayCmd
	Body    []byte
}

// Cmd implements RelayMsg.
func (u *Unknown) Cmd() RelayCmd { return u.Command }

// Append implements RelayMsg.
func (u *Unknown) Append(b []byte) ([]byte, error) { return append(b, u.Body...), nil }

// BEGIN flags (tor-spec 6.2).
const (
	BeginIPv6OK        uint32 = 1 << 0
	BeginIPv4NotOK     uint32 = 1 << 1
	BeginIPv6Preferred uint32 = 1 << 2
)

// Begin opens a stream to Host:Port at the exit (tor-spec 6.2). Host is a
// DNS name, a dotted-quad IPv4 address, or an IPv6 address without
// brackets.
type Begin struct {
	Host  string
	Port  uint16
	Flags uint32
}

// Cmd implements RelayMsg.
func (*Begin) Cmd() RelayCmd { return RelayBegin }

// Append implements RelayMsg. The host is sent in lower case.
func (m *Begin) Append(b []byte) ([]byte, error) {
	if m.Host == "" || m.Port == 0 {
		return b, errors.New("cell: BEGIN needs a host and a nonzero port")
	}
	v6 := false
	for i := 0; i < len(m.Host); i++ {
		switch c := m.Host[i]; {
		case c == 0:
			return b, errors.New("cell: BEGIN host contains NUL")
		case c == ':':
			v6 = true
		case c == '[' || c == ']':
			return b, errors.New("cell: BEGIN host must not contain brackets")
		}
	}
	if v6 {
		if a, err := netip.ParseAddr(m.Host); err != nil || !a.Is6() {
			return b, errors.New("cell: BEGIN host contains ':' but is not an IPv6 address")
		}
		b = append(b, '[')
	}
	for i := 0; i < len(m.Host); i++ {
		c := m.Host[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		b = append(b, c)
	}
	if v6 {
		b = append(b, ']')
	}
	b = append(b, ':')
	b = strconv.AppendUint(b, uint64(m.Port), 10)
	b = append(b, 0)
	return binary.BigEndian.AppendUint32(b, m.Flags), nil
}

// ParseBegin decodes a BEGIN body. A missing FLAGS field reads as 0.
func ParseBegin(body []byte) (*Begin, error) {
	i := bytes.IndexByte(body, 0)
	if i < 0 {
		return nil, errors.New("cell: BEGIN address is not NUL-terminated")
	}
	ap := string(body[:i])
	rest := body[i+1:]
	colon := bytes.LastIndexByte(body[:i], ':')
	if colon <= 0 {
		return nil, errors.New("cell: BEGIN address has no port")
	}
	host, portStr := ap[:colon], ap[colon+1:]
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil || port == 0 {
		return nil, fmt.Errorf("cell: BEGIN bad port %q", portStr)
	}
	if len(host) >= 2 && host[0] == '[' && host[len(host)-1] == ']' {
		host = host[1 : len(host)-1]
		if a, err := netip.ParseAddr(host); err != nil || !a.Is6() {
			return nil, errors.New("cell: BEGIN bracketed host is not an IPv6 address")
		}
	} else if strings.ContainsAny(host, ":[]") || host == "" {
		return nil, errors.New("cell: BEGIN bad host")
	}
	m := &Begin{Host: host, Port: uint16(port)}
	if len(rest) >= 4 {
		m.Flags = binary.BigEndian.Uint32(rest)
	}
	return m, nil
}

// BeginDir opens a stream to the relay's directory service (tor-spec
// 6.2.1). Its body is empty.
type BeginDir struct{}

// Cmd implements RelayMsg.
func (*BeginDir) Cmd() RelayCmd { return RelayBeginDir }

// Append implements RelayMsg.
func (*BeginDir) Append(b []byte) ([]byte, error) { return b, nil }

// Data carries stream bytes. A parsed Data aliases the cell it came from.
type Data struct {
	Data []byte
}

// Cmd implements RelayMsg.
func (*Data) Cmd() RelayCmd { return RelayData }

// Append implements RelayMsg.
func (m *Data) Append(b []byte) ([]byte, error) {
	if len(m.Data) > RelayBodyMax {
		return b, fmt.Errorf("cell: DATA of %d bytes exceeds %d", len(m.Data), RelayBodyMax)
	}
	return append(b, m.Data...), nil
}

// EndReason is the reason byte of RELAY_END (tor-spec 6.3).
type EndReason uint8

// END reasons.
const (
	EndMisc           EndReason = 1
	EndResolveFailed  EndReason = 2
	EndConnectRefused EndReason = 3
	EndExitPolicy     EndReason = 4
	EndDestroy        EndReason = 5
	EndDone           EndReason = 6
	EndTimeout        EndReason = 7
	EndNoRoute        EndReason = 8
	EndHibernating    EndReason = 9
	EndInternal       EndReason = 10
	EndResourceLimit  EndReason = 11
	EndConnReset      EndReason = 12
	EndTorProtocol    EndReason = 13
	EndNotDirectory   EndReason = 14
)

var endNames = map[EndReason]string{
	EndMisc: "MISC", EndResolveFailed: "RESOLVEFAILED", EndConnectRefused: "CONNECTREFUSED",
	EndExitPolicy: "EXITPOLICY", EndDestroy: "DESTROY", EndDone: "DONE", EndTimeout: "TIMEOUT",
	EndNoRoute: "NOROUTE", EndHibernating: "HIBERNATING", EndInternal: "INTERNAL",
	EndResourceLimit: "RESOURCELIMIT", EndConnReset: "CONNRESET", EndTorProtocol: "TORPROTOCOL",
	EndNotDirectory: "NOTDIRECTORY",
}

func (r EndReason) String() string {
	if s, ok := endNames[r]; ok {
		return s
	}
	return fmt.Sprintf("END_REASON(%d)", uint8(r))
}

// End closes a stream (tor-spec 6.3). For EXITPOLICY it may carry the
// address the exit resolved and a TTL.
type End struct {
	Reason EndReason
	Addr   netip.Addr // valid only when present
	TTL    uint32     // 0xffffffff when absent
}

// Cmd implements RelayMsg.
func (*End) Cmd() RelayCmd { return RelayEnd }

// Append implements RelayMsg.
func (m *End) Append(b []byte) ([]byte, error) {
	b = append(b, byte(m.Reason))
	if m.Reason == EndExitPolicy && m.Addr.IsValid() {
		b = append(b, m.Addr.Unmap().AsSlice()...)
		b = binary.BigEndian.AppendUint32(b, m.TTL)
	}
	return b, nil
}

// ParseEnd decodes an END body. An empty body means MISC; a malformed
// address is ignored, as the spec asks.
func ParseEnd(body []byte) (*End, error) {
	m := &End{Reason: EndMisc, TTL: 0xffffffff}
	if len(body) == 0 {
		return m, nil
	}
	m.Reason = EndReason(body[0])
	if m.Reason != EndExitPolicy {
		return m, nil
	}
	rest := body[1:]
	switch len(rest) {
	case 4, 8:
		m.Addr = netip.AddrFrom4([4]byte(rest[:4]))
		rest = rest[4:]
	case 16, 20:
		m.Addr = netip.AddrFrom16([16]byte(rest[:16]))
		rest = rest[16:]
	}
	if m.Addr.IsValid() && len(rest) == 4 {
		m.TTL = binary.BigEndian.Uint32(rest)
	}
	return m, nil
}

// Connected confirms a stream (tor-spec 6.2). Addr is invalid for the
// empty body of a BEGIN_DIR reply.
type Connected struct {
	Addr netip.Addr
	TTL  uint32
}

// Cmd implements RelayMsg.
func (*Connected) Cmd() RelayCmd { return RelayConnected }

// Append implements RelayMsg.
func (m *Connected) Append(b []byte) ([]byte, error) {
	switch {
	case !m.Addr.IsValid():
		return b, nil
	case m.Addr.Is4() || m.Addr.Is4In6():
		b = append(b, m.Addr.Unmap().AsSlice()...)
	default:
		b = append(b, 0, 0, 0, 0, 6)
		b = append(b, m.Addr.AsSlice()...)
	}
	return binary.BigEndian.AppendUint32(b, m.TTL), nil
}

// ParseConnected decodes a CONNECTED body. An empty or all-zero body (as
// BEGIN_DIR replies carry) yields an invalid Addr.
func ParseConnected(body []byte) (*Connected, error) {
	m := &Connected{}
	if len(body) < 4 {
		return m, nil
	}
	if body[0]|body[1]|body[2]|body[3] != 0 {
		m.Addr = netip.AddrFrom4([4]byte(body[:4]))
		if len(body) >= 8 {
			m.TTL = binary.BigEndian.Uint32(body[4:8])
		}
		return m, nil
	}
	if len(body) >= 5 && body[4] == 6 {
		if len(body) < 5+16+4 {
			return nil, fmt.Errorf("cell: CONNECTED IPv6: %w", ErrTruncated)
		}
		m.Addr = netip.AddrFrom16([16]byte(body[5:21]))
		m.TTL = binary.BigEndian.Uint32(body[21:25])
	}
	return m, nil
}

// SendmeDigestLen is the size of the digest in an authenticated (v1)
// SENDME (prop 289).
const SendmeDigestLen = 20

// Sendme is a circuit- or stream-level SENDME (tor-spec 7.3.1). Version 0
// has an empty body; version 1 carries Digest.
type Sendme struct {
	Version uint8
	Digest  [SendmeDigestLen]byte
}

// Cmd implements RelayMsg.
func (*Sendme) Cmd() RelayCmd { return RelaySendme }

// Append implements RelayMsg. Version 0 encodes as an empty body.
func (m *Sendme) Append(b []byte) ([]byte, error) {
	switch m.Version {
	case 0:
		return b, nil
	case 1:
		b = append(b, 1, 0, SendmeDigestLen)
		return append(b, m.Digest[:]...), nil
	}
	return b, fmt.Errorf("cell: cannot encode SENDME version %d", m.Version)
}

// ParseSendme decodes a SENDME body. Versions above 1 parse with only
// Version set; the caller rejects what it cannot accept.
func ParseSendme(body []byte) (*Sendme, error) {
	m := &Sendme{}
	if len(body) == 0 {
		return m, nil
	}
	if len(body) < 3 {
		return nil, fmt.Errorf("cell: SENDME header: %w", ErrTruncated)
	}
	m.Version = body[0]
	n := int(binary.BigEndian.Uint16(body[1:3]))
	if len(body) < 3+n {
		return nil, fmt.Errorf("cell: SENDME data: %w", ErrTruncated)
	}
	if m.Version == 1 {
		if n < SendmeDigestLen {
			return nil, errors.New("cell: SENDME v1 digest shorter than 20 bytes")
		}
		copy(m.Digest[:], body[3:3+SendmeDigestLen])
	}
	return m, nil
}

// Link specifier types (tor-spec 5.1.2).
const (
	LinkSpecIPv4    uint8 = 0
	LinkSpecIPv6    uint8 = 1
	LinkSpecRSAID   uint8 = 2
	LinkSpecEd25519 uint8 = 3
)

// LinkSpec is one link specifier of EXTEND2.
type LinkSpec struct {
	Type uint8
	Data []byte
}

// LinkSpecAddr returns the IPv4 or IPv6 link specifier for ap.
func LinkSpecAddr(ap netip.AddrPort) LinkSpec {
	a := ap.Addr().Unmap()
	var d []byte
	t := LinkSpecIPv4
	if a.Is6() {
		t = LinkSpecIPv6
	}
	d = append(a.AsSlice(), byte(ap.Port()>>8), byte(ap.Port()))
	return LinkSpec{Type: t, Data: d}
}

// AddrPort decodes an IPv4 or IPv6 link specifier.
func (l LinkSpec) AddrPort() (netip.AddrPort, bool) {
	switch {
	case l.Type == LinkSpecIPv4 && len(l.Data) == 6:
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte(l.Data[:4])), binary.BigEndian.Uint16(l.Data[4:])), true
	case l.Type == LinkSpecIPv6 && len(l.Data) == 18:
		return netip.AddrPortFrom(netip.AddrFrom16([16]byte(l.Data[:16])), binary.BigEndian.Uint16(l.Data[16:])), true
	}
	return netip.AddrPort{}, false
}

// Extend2 asks the last hop to extend the circuit (tor-spec 5.1.2).
type Extend2 struct {
	Specs  []LinkSpec
	Create Create2
}

// Cmd implements RelayMsg.
func (*Extend2) Cmd() RelayCmd { return RelayExtend2 }

// Append implements RelayMsg.
func (m *Extend2) Append(b []byte) ([]byte, error) {
	if len(m.Specs) > 255 {
		return b, errors.New("cell: too many link specifiers")
	}
	b = append(b, byte(len(m.Specs)))
	for _, s := range m.Specs {
		if len(s.Data) > 255 {
			return b, errors.New("cell: link specifier too long")
		}
		b = append(b, s.Type, byte(len(s.Data)))
		b = append(b, s.Data...)
	}
	return m.Create.Append(b)
}

// ParseExtend2 decodes an EXTEND2 body. Fields alias body.
func ParseExtend2(body []byte) (*Extend2, error) {
	if len(body) < 1 {
		return nil, ErrTruncated
	}
	n := int(body[0])
	p := body[1:]
	m := &Extend2{Specs: make([]LinkSpec, 0, n)}
	for i := 0; i < n; i++ {
		if len(p) < 2 || len(p) < 2+int(p[1]) {
			return nil, fmt.Errorf("cell: EXTEND2 link specifier %d: %w", i, ErrTruncated)
		}
		m.Specs = append(m.Specs, LinkSpec{Type: p[0], Data: p[2 : 2+int(p[1])]})
		p = p[2+int(p[1]):]
	}
	c, err := ParseCreate2(p)
	if err != nil {
		return nil, fmt.Errorf("cell: EXTEND2 handshake: %w", err)
	}
	m.Create = c
	return m, nil
}

// Extended2 answers EXTEND2 with the new hop's handshake reply.
type Extended2 struct {
	HData []byte
}

// Cmd implements RelayMsg.
func (*Extended2) Cmd() RelayCmd { return RelayExtended2 }

// Append implements RelayMsg.
func (m *Extended2) Append(b []byte) ([]byte, error) { return Created2{HData: m.HData}.Append(b) }

// Truncate asks a hop to tear down the rest of the circuit.
type Truncate struct{}

// Cmd implements RelayMsg.
func (*Truncate) Cmd() RelayCmd { return RelayTruncate }

// Append implements RelayMsg.
func (*Truncate) Append(b []byte) ([]byte, error) { return b, nil }

// Truncated reports that the circuit was cut after the sending hop.
type Truncated struct {
	Reason DestroyReason
}

// Cmd implements RelayMsg.
func (*Truncated) Cmd() RelayCmd { return RelayTruncated }

// Append implements RelayMsg.
func (m *Truncated) Append(b []byte) ([]byte, error) { return append(b, byte(m.Reason)), nil }

// ParseTruncated decodes a TRUNCATED body; an empty body reads as NONE.
func ParseTruncated(body []byte) (*Truncated, error) {
	if len(body) == 0 {
		return &Truncated{}, nil
	}
	return &Truncated{Reason: DestroyReason(body[0])}, nil
}

// Drop is long-range padding; its body is ignored.
type Drop struct{}

// Cmd implements RelayMsg.
func (*Drop) Cmd() RelayCmd { return RelayDrop }

// Append implements RelayMsg.
func (*Drop) Append(b []byte) ([]byte, error) { return b, nil }

// Resolve asks the exit to resolve Query (tor-spec 6.4).
type Resolve struct {
	Query string
}

// Cmd implements RelayMsg.
func (*Resolve) Cmd() RelayCmd { return RelayResolve }

// Append implements RelayMsg.
func (m *Resolve) Append(b []byte) ([]byte, error) {
	if m.Query == "" || strings.IndexByte(m.Query, 0) >= 0 {
		return b, errors.New("cell: RESOLVE query must be non-empty and contain no NUL")
	}
	b = append(b, m.Query...)
	return append(b, 0), nil
}

// ParseResolve decodes a RESOLVE body.
func ParseResolve(body []byte) (*Resolve, error) {
	i := bytes.IndexByte(body, 0)
	if i <= 0 {
		return nil, errors.New("cell: RESOLVE query empty or not NUL-terminated")
	}
	return &Resolve{Query: string(body[:i])}, nil
}

// Resolved answer types.
const (
	AnswerHostname       uint8 = 0x00
	AnswerIPv4           uint8 = 0x04
	AnswerIPv6           uint8 = 0x06
	AnswerErrorTransient uint8 = 0xF0
	AnswerErrorPermanent uint8 = 0xF1
)

// Answer is one RESOLVED answer. Value holds a hostname or the raw error
// text; Addr holds IPv4/IPv6 answers.
type Answer struct {
	Type  uint8
	Addr  netip.Addr
	Value []byte
	TTL   uint32
}

// Resolved answers a RESOLVE.
type Resolved struct {
	Answers []Answer
}

// Cmd implements RelayMsg.
func (*Resolved) Cmd() RelayCmd { return RelayResolved }

// Append implements RelayMsg.
func (m *Resolved) Append(b []byte) ([]byte, error) {
	for _, a := range m.Answers {
		v := a.Value
		switch a.Type {
		case AnswerIPv4:
			if !a.Addr.Unmap().Is4() {
				return b, errors.New("cell: RESOLVED IPv4 answer without IPv4 address")
			}
			v = a.Addr.Unmap().AsSlice()
		case AnswerIPv6:
			if !a.Addr.Is6() || a.Addr.Is4In6() {
				return b, errors.New("cell: RESOLVED IPv6 answer without IPv6 address")
			}
			v = a.Addr.AsSlice()
		}
		if len(v) > 255 {
			return b, errors.New("cell: RESOLVED answer too long")
		}
		b = append(b, a.Type, byte(len(v)))
		b = append(b, v...)
		b = binary.BigEndian.AppendUint32(b, a.TTL)
	}
	return b, nil
}

// ParseResolved decodes a RESOLVED body. Values alias body.
func ParseResolved(body []byte) (*Resolved, error) {
	m := &Resolved{}
	for len(body) > 0 {
		if len(body) < 2 || len(body) < 2+int(body[1])+4 {
			return nil, fmt.Errorf("cell: RESOLVED answer: %w", ErrTruncated)
		}
		t, l := body[0], int(body[1])
		v := body[2 : 2+l]
		a := Answer{Type: t, TTL: binary.BigEndian.Uint32(body[2+l:])}
		switch {
		case t == AnswerIPv4 && l == 4:
			a.Addr = netip.AddrFrom4([4]byte(v))
		case t == AnswerIPv6 && l == 16:
			a.Addr = netip.AddrFrom16([16]byte(v))
		case t == AnswerIPv4 || t == AnswerIPv6:
			return nil, fmt.Errorf("cell: RESOLVED address of length %d for type %d", l, t)
		default:
			a.Value = v
		}
		m.Answers = append(m.Answers, a)
		body = body[2+l+4:]
	}
	return m, nil
}

// Xoff asks the other end to stop sending on a stream (prop 324 4.1,
// congestion-controlled circuits only). Version 0 is the only one.
type Xoff struct{}

// Cmd implements RelayMsg.
func (*Xoff) Cmd() RelayCmd { return RelayXoff }

// Append implements RelayMsg: the version byte, 0.
func (*Xoff) Append(b []byte) ([]byte, error) { return append(b, 0), nil }

// ParseXoff decodes an XOFF body: version 0. Bytes after the version are
// ignored (trunnel's rule); other versions are an error, which prop 324
// asks to treat as a protocol violation.
func ParseXoff(body []byte) (*Xoff, error) {
	if len(body) < 1 {
		return nil, fmt.Errorf("cell: XOFF: %w", ErrTruncated)
	}
	if body[0] != 0 {
		return nil, fmt.Errorf("cell: XOFF version %d unsupported", body[0])
	}
	return &Xoff{}, nil
}

// Xon lets the other end resume sending on a stream (prop 324 4.1), with
// an advisory drain rate in units of 1000 bytes per second; 0 means
// unlimited.
type Xon struct {
	KBpsEWMA uint32
}

// Cmd implements RelayMsg.
func (*Xon) Cmd() RelayCmd { return RelayXon }

// Append implements RelayMsg: version 0, then the rate.
func (m *Xon) Append(b []byte) ([]byte, error) {
	b = append(b, 0)
	return binary.BigEndian.AppendUint32(b, m.KBpsEWMA), nil
}

// ParseXon decodes an XON body: version 0 and a 4-byte rate. Trailing
// bytes are ignored; other versions are an error.
func ParseXon(body []byte) (*Xon, error) {
	if len(body) < 5 {
		return nil, fmt.Errorf("cell: XON: %w", ErrTruncated)
	}
	if body[0] != 0 {
		return nil, fmt.Errorf("cell: XON version %d unsupported", body[0])
	}
	return &Xon{KBpsEWMA: binary.BigEndian.Uint32(body[1:5])}, nil
}
