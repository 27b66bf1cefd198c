package dircache

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/fb"
	"github.com/dgraph-io/badger/v4/pb"
	"github.com/dgraph-io/badger/v4/y"
	"google.golang.org/protobuf/proto"
)

// Why a preflight: badger trusts its table files. A damaged footer makes
// it call log.Fatalf, and a damaged block trailer makes a table-opening
// goroutine index out of range; either ends the process before Open
// returns, and again at every launch. So before badger opens the
// directory, every .sst is checked the way badger would read it (footer
// bounds, index checksum, every block checksum, uncompressed and
// unencrypted as this package writes them). A table that fails is removed
// from the MANIFEST with an ordinary badger change record and deleted:
// only the entries in that table are lost, and everything that survives
// is re-verified on load anyway.

// checkTable checks one table file. buf is scratch space, returned grown.
func checkTable(path string, buf []byte) (_ []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("table parse panicked: %v", r)
		}
	}()
	f, err := os.Open(path)
	if err != nil {
		return buf, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return buf, err
	}
	if st.Size() > 1<<30 {
		return buf, fmt.Errorf("%d bytes is too large for a table", st.Size())
	}
	n := int(st.Size())
	if cap(buf) < n {
		buf = make([]byte, n)
	}
	data := buf[:n]
	if _, err := io.ReadFull(f, data); err != nil {
		return buf, err
	}
	// Footer: ... index | u32 index length | checksum | u32 checksum length.
	if n < 8 {
		return buf, errors.New("table too short")
	}
	ckLen := int(binary.BigEndian.Uint32(data[n-4:]))
	if ckLen > n-8 {
		return buf, errors.New("bad checksum length in footer")
	}
	ckPos := n - 4 - ckLen
	idxLen := int(binary.BigEndian.Uint32(data[ckPos-4 : ckPos]))
	if idxLen > ckPos-4 {
		return buf, errors.New("bad index length in footer")
	}
	idxPos := ckPos - 4 - idxLen
	var ck pb.Checksum
	if err := proto.Unmarshal(data[ckPos:n-4], &ck); err != nil {
		return buf, fmt.Errorf("index checksum: %v", err)
	}
	if err := y.VerifyChecksum(data[idxPos:ckPos-4], &ck); err != nil {
		return buf, fmt.Errorf("index: %v", err)
	}
	index := fb.GetRootAsTableIndex(data[idxPos:ckPos-4], 0)
	if index.OffsetsLength() == 0 {
		return buf, errors.New("table has no blocks")
	}
	var bo fb.BlockOffset
	for i := 0; i < index.OffsetsLength(); i++ {
		if !index.Offsets(&bo, i) {
			return buf, fmt.Errorf("block %d: no offset", i)
		}
		off, l := int(bo.Offset()), int(bo.Len())
		if off < 0 || l < 8 || off+l > idxPos {
			return buf, fmt.Errorf("block %d out of bounds", i)
		}
		blk := data[off : off+l]
		// Block: entries | entry offsets | u32 count | checksum | u32 checksum length.
		bl := int(binary.BigEndian.Uint32(blk[l-4:]))
		if bl > l-8 {
			return buf, fmt.Errorf("block %d: bad checksum length", i)
		}
		body := blk[:l-4-bl]
		var bck pb.Checksum
		if err := proto.Unmarshal(blk[l-4-bl:l-4], &bck); err != nil {
			return buf, fmt.Errorf("block %d checksum: %v", i, err)
		}
		if err := y.VerifyChecksum(body, &bck); err != nil {
			return buf, fmt.Errorf("block %d: %v", i, err)
		}
		entries := int(binary.BigEndian.Uint32(body[len(body)-4:]))
		if entries > (len(body)-4)/4 {
			return buf, fmt.Errorf("block %d: bad entry count", i)
		}
	}
	return buf, nil
}

// preflight checks every table in bdir and drops the bad ones. It returns
// what it dropped, for the report; an error means the directory cannot be
// repaired and should be moved aside.
func preflight(bdir string, bopt badger.Options) (dropped []string, err error) {
	ents, err := os.ReadDir(bdir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	type badTable struct {
		id   uint64
		path string
	}
	var bad []badTable
	var buf []byte
	for _, e := range ents {
		name := e.Name()
		if !strings.HasSuffix(name, ".sst") {
			continue
		}
		id, perr := strconv.ParseUint(strings.TrimSuffix(name, ".sst"), 10, 64)
		if perr != nil {
			continue // not badger's; badger ignores it too
		}
		path := filepath.Join(bdir, name)
		var cerr error
		if buf, cerr = checkTable(path, buf); cerr != nil {
			bad = append(bad, badTable{id, path})
			dropped = append(dropped, fmt.Sprintf("%s: %v", name, cerr))
		}
	}
	if len(bad) == 0 {
		return nil, nil
	}
	mpath := filepath.Join(bdir, "MANIFEST")
	mf, err := os.OpenFile(mpath, os.O_RDWR, 0)
	if err != nil {
		return dropped, fmt.Errorf("manifest: %w", err)
	}
	defer mf.Close()
	m, valid, err := badger.ReplayManifestFile(mf, bopt.ExternalMagicVersion, bopt)
	if err != nil {
		return dropped, fmt.Errorf("manifest: %w", err)
	}
	var cs pb.ManifestChangeSet
	for _, b := range bad {
		if _, ok := m.Tables[b.id]; ok {
			cs.Changes = append(cs.Changes, &pb.ManifestChange{Id: b.id, Op: pb.ManifestChange_DELETE})
		}
	}
	if len(cs.Changes) > 0 {
		rec, err := proto.Marshal(&cs)
		if err != nil {
			return dropped, fmt.Errorf("manifest: %w", err)
		}
		var hdr [8]byte
		binary.BigEndian.PutUint32(hdr[:4], uint32(len(rec)))
		binary.BigEndian.PutUint32(hdr[4:], crc32.Checksum(rec, y.CastagnoliCrcTable))
		// Cut a torn tail first, as badger would, so that the record
		// lands where badger reads.
		if err := mf.Truncate(valid); err != nil {
			return dropped, fmt.Errorf("manifest: %w", err)
		}
		if _, err := mf.WriteAt(append(hdr[:], rec...), valid); err != nil {
			return dropped, fmt.Errorf("manifest: %w", err)
		}
		if err := mf.Sync(); err != nil {
			return dropped, fmt.Errorf("manifest: %w", err)
		}
	}
	for _, b := range bad {
		if err := os.Remove(b.path); err != nil {
			return dropped, err
		}
	}
	return dropped, nil
}
