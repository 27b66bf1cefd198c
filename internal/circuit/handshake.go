package circuit

import (
	"errors"
	"fmt"
	"io"

	"github.com/onionlite/onionlite/internal/cell"
	"github.com/onionlite/onionlite/internal/torcrypto"
)

// handshake is the client half of one hop's key exchange.
type handshake struct {
	kind      Handshake
	requestCC bool   // the ntor-v3 message asks for congestion control
	htype     uint16 // CREATE2/EXTEND2 HTYPE (unused for CREATE_FAST)
	data      []byte
	complete  func(reply []byte) (*torcrypto.RelayKeys, []byte, error)
}

// chooseHandshake resolves HandshakeAuto for r.
func chooseHandshake(r Relay, first bool) (Handshake, error) {
	var zero [32]byte
	k := r.Handshake
	if k == HandshakeAuto {
		switch {
		case r.NtorV3 && r.Ed25519ID != zero && r.NtorKey != zero:
			k = HandshakeNtorV3
		case r.NtorKey != zero:
			k = HandshakeNtor
		case first:
			k = HandshakeFast
		default:
			return 0, errors.New("circuit: no ntor key for a hop past the first")
		}
	}
	switch k {
	case HandshakeNtorV3:
		if r.Ed25519ID == zero || r.NtorKey == zero {
			return 0, errors.New("circuit: ntor-v3 needs the relay's Ed25519 identity and ntor key")
		}
	case HandshakeNtor:
		if r.NtorKey == zero {
			return 0, errors.New("circuit: ntor needs the relay's ntor key")
		}
	case HandshakeFast:
		if !first {
			return 0, errors.New("circuit: CREATE_FAST is only for the first hop")
		}
	default:
		return 0, fmt.Errorf("circuit: unknown handshake %d", k)
	}
	return k, nil
}

// newHandshake starts r's handshake. requestCC asks for congestion control
// (prop 324 10.3), which only ntor-v3 can carry.
func newHandshake(rand io.Reader, r Relay, first, requestCC bool) (*handshake, error) {
	k, err := chooseHandshake(r, first)
	if err != nil {
		return nil, err
	}
	switch k {
	case HandshakeNtorV3:
		// The CC request is an empty extension; without it the message
		// is an empty extension list, as C tor sends.
		var exts []torcrypto.Extension
		if requestCC {
			exts = append(exts, torcrypto.Extension{Type: torcrypto.ExtCCRequest})
		}
		msg, _ := torcrypto.AppendExtensions(nil, exts)
		c, err := torcrypto.NewNtorV3Client(rand, r.Ed25519ID, r.NtorKey, msg, torcrypto.NtorV3CircuitVerification)
		if err != nil {
			return nil, err
		}
		return &handshake{kind: k, requestCC: requestCC, htype: cell.HTypeNtorV3, data: c.Handshake(),
			complete: func(reply []byte) (*torcrypto.RelayKeys, []byte, error) {
				sm, keys, err := c.Complete(reply)
				return keys, sm, err
			}}, nil
	case HandshakeNtor:
		c, err := torcrypto.NewNtorClient(rand, r.RSAID, r.NtorKey)
		if err != nil {
			return nil, err
		}
		return &handshake{kind: k, htype: cell.HTypeNtor, data: c.Handshake(),
			complete: func(reply []byte) (*torcrypto.RelayKeys, []byte, error) {
				keys, err := c.Complete(reply)
				return keys, nil, err
			}}, nil
	default: // HandshakeFast
		c, err := torcrypto.NewFastClient(rand)
		if err != nil {
			return nil, err
		}
		return &handshake{kind: k, data: c.Handshake(),
			complete: func(reply []byte) (*torcrypto.RelayKeys, []byte, error) {
				keys, err := c.Complete(reply)
				return keys, nil, err
			}}, nil
	}
}
