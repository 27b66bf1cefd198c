package dircache

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/fb"
	"github.com/dgraph-io/badger/v4/options"
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

// preflight checks and repairs the badger directory bdir before badger
// opens it. It returns what it repaired, for the report; an error means
// the directory cannot be repaired and should be moved aside.
//
// Repairs, each losing only what was damaged:
//   - a table that fails checkTable is dropped from the MANIFEST (an
//     ordinary badger delete record) and deleted;
//   - a MANIFEST that badger would refuse (or a missing one beside
//     tables) is rebuilt listing every good table at level 0, where
//     badger accepts overlapping tables and resolves keys by version;
//   - tables the MANIFEST lists but that are gone are dropped from it;
//   - a KEYREGISTRY badger would refuse is removed (this store never
//     encrypts, so the fresh one badger writes is equivalent);
//   - a damaged data-key id in a log file header is reset to 0.
func preflight(bdir string, bopt badger.Options) (report []string, err error) {
	ents, err := os.ReadDir(bdir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	good := map[uint64]bool{}
	var bad []string // paths
	var badIDs []uint64
	var buf []byte
	for _, e := range ents {
		name := e.Name()
		path := filepath.Join(bdir, name)
		switch {
		case name == "KEYREGISTRY":
			if why := checkKeyRegistry(bdir); why != nil {
				if err := os.Remove(path); err != nil {
					return report, err
				}
				report = append(report, fmt.Sprintf("%s: %v (replaced)", name, why))
			}
		case strings.HasSuffix(name, ".vlog") || strings.HasSuffix(name, ".mem"):
			fixed, err := repairLogHeader(path)
			if err != nil {
				return report, err
			}
			if fixed {
				report = append(report, name+": damaged key id in header (reset to 0)")
			}
		case strings.HasSuffix(name, ".sst"):
			id, perr := strconv.ParseUint(strings.TrimSuffix(name, ".sst"), 10, 64)
			if perr != nil {
				continue // not badger's; badger ignores it too
			}
			var cerr error
			if buf, cerr = checkTable(path, buf); cerr != nil {
				bad = append(bad, path)
				badIDs = append(badIDs, id)
				report = append(report, fmt.Sprintf("%s: %v (dropped)", name, cerr))
			} else {
				good[id] = true
			}
		}
	}

	mpath := filepath.Join(bdir, "MANIFEST")
	mf, err := os.OpenFile(mpath, os.O_RDWR, 0)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if len(good) > 0 {
			report = append(report, "MANIFEST missing")
			if err := rebuildManifest(bdir, good, bopt.ExternalMagicVersion); err != nil {
				return report, err
			}
		}
	case err != nil:
		return report, fmt.Errorf("manifest: %w", err)
	default:
		var magic [8]byte
		if _, err := mf.ReadAt(magic[:], 0); err == nil && string(magic[:4]) == "Bdgr" && binary.BigEndian.Uint16(magic[6:]) != badgerManifestVersion {
			// Written by another badger version, not damaged: leave
			// it to badger (and to moving it aside).
			mf.Close()
			return report, fmt.Errorf("MANIFEST has format version %d, this build reads %d", binary.BigEndian.Uint16(magic[6:]), badgerManifestVersion)
		}
		m, valid, rerr := replayManifest(mf, bopt)
		if rerr != nil {
			mf.Close()
			report = append(report, fmt.Sprintf("MANIFEST: %v (rebuilt from %d tables)", rerr, len(good)))
			if err := rebuildManifest(bdir, good, bopt.ExternalMagicVersion); err != nil {
				return report, err
			}
			break
		}
		var cs pb.ManifestChangeSet
		for _, id := range badIDs {
			if _, ok := m.Tables[id]; ok {
				cs.Changes = append(cs.Changes, &pb.ManifestChange{Id: id, Op: pb.ManifestChange_DELETE})
			}
		}
		for id := range m.Tables {
			if !good[id] && !slices.Contains(badIDs, id) {
				cs.Changes = append(cs.Changes, &pb.ManifestChange{Id: id, Op: pb.ManifestChange_DELETE})
				report = append(report, fmt.Sprintf("table %d listed but missing (dropped)", id))
			}
		}
		err := appendManifest(mf, valid, &cs)
		if cerr := mf.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return report, fmt.Errorf("manifest: %w", err)
		}
	}
	for _, p := range bad {
		if err := os.Remove(p); err != nil {
			return report, err
		}
	}
	return report, nil
}

// badgerManifestVersion is badger v4's MANIFEST format version
// (badgerMagicVersion in its manifest.go).
const badgerManifestVersion = 8

// replayManifest runs badger's own MANIFEST reader, turning a panic into
// an error.
func replayManifest(f *os.File, bopt badger.Options) (m badger.Manifest, valid int64, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panicked: %v", r)
		}
	}()
	return badger.ReplayManifestFile(f, bopt.ExternalMagicVersion, bopt)
}

func manifestRecord(cs *pb.ManifestChangeSet) ([]byte, error) {
	rec, err := proto.Marshal(cs)
	if err != nil {
		return nil, err
	}
	var hdr [8]byte
	binary.BigEndian.PutUint32(hdr[:4], uint32(len(rec)))
	binary.BigEndian.PutUint32(hdr[4:], crc32.Checksum(rec, y.CastagnoliCrcTable))
	return append(hdr[:], rec...), nil
}

// appendManifest appends cs at valid, first cutting a torn tail as badger
// would, so that the record lands where badger reads.
func appendManifest(mf *os.File, valid int64, cs *pb.ManifestChangeSet) error {
	if len(cs.Changes) == 0 {
		return nil
	}
	rec, err := manifestRecord(cs)
	if err != nil {
		return err
	}
	if err := mf.Truncate(valid); err != nil {
		return err
	}
	if _, err := mf.WriteAt(rec, valid); err != nil {
		return err
	}
	return mf.Sync()
}

// rebuildManifest writes a new MANIFEST listing the given tables at level
// 0 (uncompressed, unencrypted, as this store writes them), in badger's
// file format: "Bdgr", u16 external magic, u16 format version 8, then
// length-and-CRC framed change sets.
func rebuildManifest(bdir string, tables map[uint64]bool, extMagic uint16) error {
	var cs pb.ManifestChangeSet
	ids := slices.Sorted(maps.Keys(tables))
	for _, id := range ids {
		cs.Changes = append(cs.Changes, &pb.ManifestChange{
			Id: id, Op: pb.ManifestChange_CREATE, Level: 0,
			EncryptionAlgo: pb.EncryptionAlgo_aes, Compression: uint32(options.None),
		})
	}
	b := []byte("Bdgr")
	b = binary.BigEndian.AppendUint16(b, extMagic)
	b = binary.BigEndian.AppendUint16(b, badgerManifestVersion)
	if len(ids) > 0 {
		rec, err := manifestRecord(&cs)
		if err != nil {
			return err
		}
		b = append(b, rec...)
	}
	return writeFileSync(filepath.Join(bdir, "MANIFEST"), b)
}

// checkKeyRegistry opens badger's key registry read-only, as badger will.
func checkKeyRegistry(bdir string) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panicked: %v", r)
		}
	}()
	kr, err := badger.OpenKeyRegistry(badger.KeyRegistryOptions{Dir: bdir, ReadOnly: true})
	if err != nil {
		return err
	}
	return kr.Close()
}

// repairLogHeader resets the data-key id at the start of a value-log or
// memtable log file. Without encryption it is always 0, and badger refuses
// the whole directory when it names an unknown key.
func repairLogHeader(path string) (bool, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return false, err
	}
	defer f.Close()
	var id [8]byte
	if _, err := io.ReadFull(f, id[:]); err != nil {
		return false, nil // too short to matter; badger handles it
	}
	if id == [8]byte{} {
		return false, nil
	}
	if _, err := f.WriteAt(make([]byte, 8), 0); err != nil {
		return false, err
	}
	return true, f.Sync()
}
