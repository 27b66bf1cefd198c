// Package channel is a client's TLS link to one relay's ORPort (tor-spec
// sections 2-4): it dials through an injected transport.Dialer, runs the
// in-protocol ("v3") handshake, and then carries cells for the circuits
// registered on it.
//
// Handshake, as the initiator:
//
//	TLS (any certificate; the Tor handshake authenticates it)
//	-> VERSIONS [4, 5]                 (2-byte circuit IDs)
//	<- VERSIONS, CERTS, AUTH_CHALLENGE, NETINFO   (VPADDING/PADDING ignored)
//	-> NETINFO (time 0, the peer's address)
//
// CERTS must bind the TLS certificate to the relay's RSA identity and its
// Ed25519 identity (torcrypto.ResponderCerts.Verify); the proven identities
// must equal the expected ones or the channel is refused with an
// *IdentityError. AUTH_CHALLENGE is ignored: clients do not authenticate.
// The peer's NETINFO time gives its clock skew relative to the injected
// clock, for clock-skew detection.
//
// After the handshake one reader goroutine parses every cell of each TLS
// record into pooled *cell.Cell buffers and hands each to the Handler of
// its circuit, on the reader goroutine, in order; one writer goroutine
// drains up to Config.WriteBatch queued cells into each TLS write. PADDING,
// VPADDING and late handshake cells are dropped. Circuit IDs are random
// with the high bit set (link protocol 4: the initiator's half). Close
// waits for both goroutines, and every registered Handler then learns the
// cause through ChannelClosed.
//
// The outbound queue never blocks a sender (the reader must be able to
// queue SENDMEs without deadlock); data senders call WaitWritable first
// for backpressure. With Config.Memory each channel opens a top-level
// account in the memory quota (memquota), charges its outbound queue
// there without ever waiting on the hard limit, and offers the account to
// its circuits (Account). When the quota collapses it, the channel closes
// with the quota's error. A closed channel's account is retired: it stays,
// reclaimable, while a stream below it still holds unread data.
//
// Nudge makes the relay write to the channel: a CREATE_FAST on a
// throwaway circuit, destroyed when its CREATED_FAST is back (at most one
// in flight, one per 10 seconds). C tor relays can hold back a DESTROY for
// one of our circuits while their output towards us is backed up, until
// some other cell is queued for the channel; the reply releases it. The
// circuits nudge when a stream's data stopped and its reader waits
// (stream.StallSink).
//
// It is not a relay, and it knows nothing of circuits beyond their IDs; it
// does not reuse or pick channels (internal/chanmgr does).
package channel
