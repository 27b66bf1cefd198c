package channel

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"time"

	"github.com/onionlite/onionlite/internal/cell"
	"github.com/onionlite/onionlite/internal/torcrypto"
)

// supportedVersions are the link protocols offered, lowest first.
var supportedVersions = []uint16{4, 5}

// ErrProtocol is wrapped by handshake failures caused by a relay that
// breaks the link protocol.
var ErrProtocol = errors.New("channel: link protocol violation")

// ErrIdentity is matched (errors.Is) by an *IdentityError.
var ErrIdentity = errors.New("channel: relay identity is not the expected one")

// ClockSkewThreshold is how far the relay's NETINFO time must be from our
// clock for a certificate that failed only on time to be reported as a
// ClockSkewError.
const ClockSkewThreshold = time.Hour

// ClockSkewError reports a handshake that failed because the relay's
// certificates are not valid at our clock's time while the relay's
// NETINFO clock is more than ClockSkewThreshold from ours: most likely our
// clock is wrong. The channel is not opened (nothing is trusted on the
// relay's word); Skew is the relay's clock minus ours, as
// Channel.ClockSkew.
type ClockSkewError struct {
	Skew time.Duration
	Err  error
}

func (e *ClockSkewError) Error() string {
	return fmt.Sprintf("%v (the relay's clock is %v from ours)", e.Err, e.Skew.Round(time.Second))
}

func (e *ClockSkewError) Unwrap() error { return e.Err }

// IdentityError reports a relay that proved identities other than the
// ones expected of it. The channel is not opened.
type IdentityError struct {
	WantRSA     [20]byte
	WantEd25519 [32]byte // zero when not checked
	Got         torcrypto.RelayIdentity
}

func (e *IdentityError) Error() string {
	return fmt.Sprintf("channel: relay proved identity %s (ed25519 %s), expected %s",
		hex.EncodeToString(e.Got.RSA[:]), hex.EncodeToString(e.Got.Ed25519[:]), hex.EncodeToString(e.WantRSA[:]))
}

// Is reports whether target is ErrIdentity.
func (e *IdentityError) Is(target error) bool { return target == ErrIdentity }

func protoErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrProtocol, fmt.Sprintf(format, args...))
}

// randomHostname returns a server name like C tor's: "www." followed by 8
// to 20 base32 characters and ".com". It carries no meaning; it only
// makes the ClientHello look ordinary.
func randomHostname(r io.Reader) (string, error) {
	const alphabet = "abcdefghijklmnopqrstuvwxyz234567"
	n, err := torcrypto.Uint64n(r, 13)
	if err != nil {
		return "", err
	}
	b := make([]byte, 8+n)
	if err := torcrypto.RandomBytes(r, b); err != nil {
		return "", err
	}
	for i := range b {
		b[i] = alphabet[b[i]&31]
	}
	return "www." + string(b) + ".com", nil
}

func (ch *Channel) handshake(ctx context.Context, t Target) error {
	if t.RSAID == ([20]byte{}) {
		return errors.New("channel: target has no RSA identity")
	}
	sni, err := randomHostname(ch.cfg.Rand)
	if err != nil {
		return fmt.Errorf("channel: %w", err)
	}
	tc := tls.Client(ch.raw, &tls.Config{
		// The relay's certificate is self-signed; CERTS authenticates it.
		InsecureSkipVerify:     true,
		ServerName:             sni,
		MinVersion:             tls.VersionTLS12,
		SessionTicketsDisabled: true, // tor-spec 2.2: no session resumption
		// One batch of cells is one full record: fewer record headers
		// on slow links than Go's slow-start record sizes.
		DynamicRecordSizingDisabled: true,
		Time:                        ch.cfg.Clock.Now,
	})
	if err := tc.HandshakeContext(ctx); err != nil {
		return fmt.Errorf("channel: TLS: %w", err)
	}
	ch.conn = tc
	st := tc.ConnectionState()
	if len(st.PeerCertificates) == 0 {
		return protoErr("relay sent no TLS certificate")
	}
	linkCert := st.PeerCertificates[0].Raw
	ch.br = bufio.NewReaderSize(tc, 2*16<<10)

	v, _ := cell.AppendVar(nil, 2, cell.VarCell{Command: cell.CmdVersions,
		Payload: cell.AppendVersions(nil, supportedVersions)})
	if _, err := tc.Write(v); err != nil {
		return fmt.Errorf("channel: sending VERSIONS: %w", err)
	}
	if ch.linkVersion, err = ch.readVersions(); err != nil {
		return err
	}
	if err := ch.readResponderCells(t, linkCert); err != nil {
		return err
	}

	var other netip.Addr
	if host, _, err := net.SplitHostPort(t.Addr); err == nil {
		if a, err := netip.ParseAddr(host); err == nil {
			other = a
		}
	}
	// Clients send time 0 (tor-spec 4.5) and no addresses of their own.
	p, _ := cell.Netinfo{OtherAddr: other}.Append(nil)
	var c cell.Cell
	if err := c.SetPayload(0, cell.CmdNetinfo, p); err != nil {
		return err
	}
	out := c[:]
	if ch.cfg.Padding == PaddingOff && ch.linkVersion >= 5 {
		// Right after NETINFO, as tor does (padding-spec 2.5):
		// version 0, command STOP, no timeouts.
		var pn cell.Cell
		pn.SetPayload(0, cell.CmdPaddingNegotiate, []byte{0, 1, 0, 0, 0, 0})
		out = append(out, pn[:]...)
	}
	if _, err := tc.Write(out); err != nil {
		return fmt.Errorf("channel: sending NETINFO: %w", err)
	}
	return nil
}

// readVersions reads the relay's VERSIONS cell (2-byte circuit ID),
// skipping VPADDING, and picks the highest common version.
func (ch *Channel) readVersions() (int, error) {
	for {
		var hdr [5]byte // CircID [2] | Command | Length [2]
		if _, err := io.ReadFull(ch.br, hdr[:]); err != nil {
			return 0, fmt.Errorf("channel: reading VERSIONS: %w", err)
		}
		cmd := cell.Command(hdr[2])
		n := int(binary.BigEndian.Uint16(hdr[3:]))
		if cmd == cell.CmdVPadding {
			if _, err := ch.br.Discard(n); err != nil {
				return 0, fmt.Errorf("channel: reading VERSIONS: %w", err)
			}
			continue
		}
		if cmd != cell.CmdVersions {
			return 0, protoErr("expected VERSIONS, got %v", cmd)
		}
		p := make([]byte, n)
		if _, err := io.ReadFull(ch.br, p); err != nil {
			return 0, fmt.Errorf("channel: reading VERSIONS: %w", err)
		}
		theirs, err := cell.ParseVersions(p)
		if err != nil {
			return 0, protoErr("%v", err)
		}
		best := 0
		for _, v := range supportedVersions {
			if slices.Contains(theirs, v) {
				best = int(v)
			}
		}
		if best == 0 {
			return 0, protoErr("no common link protocol in %v", theirs)
		}
		return best, nil
	}
}

// readResponderCells reads CERTS, AUTH_CHALLENGE and NETINFO (and any
// padding), verifying CERTS when it arrives.
func (ch *Channel) readResponderCells(t Target, linkCert []byte) error {
	gotCerts := false
	// certTime holds a CERTS failure that is only about time: the
	// handshake still fails, but reads on to NETINFO so that the error
	// can say whether our clock is the likely cause.
	var certTime error
	for {
		var hdr [cell.HeaderLen]byte
		if _, err := io.ReadFull(ch.br, hdr[:]); err != nil {
			return fmt.Errorf("channel: reading handshake: %w", err)
		}
		cmd := cell.Command(hdr[4])
		if cmd.IsVariable() {
			var l [2]byte
			if _, err := io.ReadFull(ch.br, l[:]); err != nil {
				return fmt.Errorf("channel: reading handshake: %w", err)
			}
			n := int(binary.BigEndian.Uint16(l[:]))
			if cmd == cell.CmdVPadding {
				if _, err := ch.br.Discard(n); err != nil {
					return fmt.Errorf("channel: reading handshake: %w", err)
				}
				continue
			}
			p := make([]byte, n)
			if _, err := io.ReadFull(ch.br, p); err != nil {
				return fmt.Errorf("channel: reading %v: %w", cmd, err)
			}
			switch cmd {
			case cell.CmdCerts:
				if gotCerts {
					return protoErr("second CERTS cell")
				}
				if err := ch.checkCerts(p, t, linkCert); err != nil {
					if !errors.Is(err, torcrypto.ErrCertTime) {
						return err
					}
					certTime = err
				}
				gotCerts = true
			case cell.CmdAuthChallenge:
				// Clients do not authenticate; the challenge only has to
				// be well-formed and come after CERTS.
				if !gotCerts {
					return protoErr("AUTH_CHALLENGE before CERTS")
				}
				if _, err := cell.ParseAuthChallenge(p); err != nil {
					return protoErr("%v", err)
				}
			default:
				return protoErr("unexpected %v during handshake", cmd)
			}
			continue
		}
		var c cell.Cell
		copy(c[:], hdr[:])
		if _, err := io.ReadFull(ch.br, c[cell.HeaderLen:]); err != nil {
			return fmt.Errorf("channel: reading %v: %w", cmd, err)
		}
		switch cmd {
		case cell.CmdPadding:
			continue
		case cell.CmdNetinfo:
			if !gotCerts {
				return protoErr("NETINFO before CERTS")
			}
			n, err := cell.ParseNetinfo(c.Payload()[:])
			if err != nil {
				return protoErr("%v", err)
			}
			ch.netinfo = n
			if n.Time != 0 {
				ch.skew = time.Unix(int64(n.Time), 0).Sub(ch.cfg.Clock.Now())
				ch.skewKnown = true
			}
			if certTime != nil {
				if ch.skewKnown && (ch.skew > ClockSkewThreshold || ch.skew < -ClockSkewThreshold) {
					return &ClockSkewError{Skew: ch.skew, Err: certTime}
				}
				return certTime
			}
			return nil
		default:
			return protoErr("unexpected %v during handshake", cmd)
		}
	}
}

// testHookCerts, when set by a test, sees every CERTS payload and TLS
// certificate before they are checked.
var testHookCerts func(payload, linkCert []byte)

// checkCerts verifies a CERTS payload against the TLS certificate and the
// expected identities.
func (ch *Channel) checkCerts(p []byte, t Target, linkCert []byte) error {
	if testHookCerts != nil {
		testHookCerts(p, linkCert)
	}
	entries, err := cell.ParseCerts(p)
	if err != nil {
		return protoErr("CERTS: %v", err)
	}
	var rc torcrypto.ResponderCerts
	var seen [256]bool
	for _, e := range entries {
		if seen[e.Type] {
			return protoErr("CERTS has two certificates of type %d", e.Type)
		}
		seen[e.Type] = true
		switch e.Type {
		case cell.CertTypeRSAIdentity:
			rc.RSAIdentity = e.Body
		case cell.CertTypeEdIDSigning:
			rc.IDToSigning = e.Body
		case cell.CertTypeEdSigningLink:
			rc.SigningToLink = e.Body
		case cell.CertTypeRSAEdCrosscert:
			rc.Crosscert = e.Body
		}
	}
	id, err := rc.Verify(linkCert, ch.cfg.Clock.Now())
	if err != nil {
		return fmt.Errorf("channel: CERTS: %w", err)
	}
	if id.RSA != t.RSAID || (t.Ed25519ID != [32]byte{} && id.Ed25519 != t.Ed25519ID) {
		return &IdentityError{WantRSA: t.RSAID, WantEd25519: t.Ed25519ID, Got: id}
	}
	ch.peer = id
	return nil
}
