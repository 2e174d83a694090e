// tlogverify checks what `agentctl recorder` publishes with Go's own transparency-log code
// (golang.org/x/mod/sumdb/note and golang.org/x/mod/sumdb/tlog), written by others: the
// agentos test suite builds it (GOPATH mode, Debian's golang-golang-x-mod-dev, no network)
// and runs it on a checkpoint note, an inclusion proof and a consistency proof.
//
//	tlogverify note VKEY CHECKPOINT            the note's signature, then "origin size root"
//	tlogverify inclusion VKEY PROOF.json       `agentctl recorder prove SEQ --json`
//	tlogverify consistency VKEY PROOF.json     `agentctl recorder consistency OLD NEW --json`
//	tlogverify cosigned VKEY CHECKPOINT WVKEY... the log's signature, then a valid C2SP
//	                                           tlog-cosignature/v1 (Ed25519) by each witness
//
// Exit 0 and "ok ..." on stdout when it verifies; exit 1 and the reason on stderr otherwise.
package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

type checkpoint struct {
	origin string
	size   int64
	root   tlog.Hash
}

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "tlogverify: "+format+"\n", args...)
	os.Exit(1)
}

// open verifies a signed note with vkey and parses its C2SP tlog-checkpoint body.
func open(vkey string, msg []byte) checkpoint {
	v, err := note.NewVerifier(vkey)
	if err != nil {
		fail("bad verifier key: %v", err)
	}
	n, err := note.Open(msg, note.VerifierList(v))
	if err != nil {
		fail("checkpoint signature: %v", err)
	}
	lines := strings.Split(n.Text, "\n")
	if len(lines) < 4 {
		fail("checkpoint body has %d lines, want origin, size, root hash", len(lines))
	}
	if lines[0] != v.Name() {
		fail("checkpoint origin %q is not the key's name %q", lines[0], v.Name())
	}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil || size < 0 {
		fail("checkpoint size %q: %v", lines[1], err)
	}
	root, err := tlog.ParseHash(lines[2])
	if err != nil {
		fail("checkpoint root hash %q: %v", lines[2], err)
	}
	return checkpoint{lines[0], size, root}
}

func hashes(ss []string) []tlog.Hash {
	var hs []tlog.Hash
	for _, s := range ss {
		h, err := tlog.ParseHash(s)
		if err != nil {
			fail("proof hash %q: %v", s, err)
		}
		hs = append(hs, h)
	}
	return hs
}

func readJSON(path string, v interface{}) {
	b, err := os.ReadFile(path)
	if err != nil {
		fail("%v", err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		fail("%s: %v", path, err)
	}
}

// cosigned checks the cosignature/v1 of the witness with verifier key wvkey
// (name+hash+base64(0x04 || key)) on note n, per C2SP tlog-cosignature: key id =
// SHA-256(name || "\n" || 0x04 || key)[:4], signature = u64 timestamp || Ed25519 over
// "cosignature/v1\ntime <t>\n" || note text. Written from the spec, not from agentos code.
func cosigned(n *note.Note, wvkey string) uint64 {
	parts := strings.SplitN(wvkey, "+", 3)
	if len(parts) != 3 {
		fail("witness key %q: want name+hash+key", wvkey)
	}
	name := parts[0]
	raw, err := base64.StdEncoding.DecodeString(parts[2])
	if err != nil || len(raw) != 33 || raw[0] != 0x04 {
		fail("witness key %q: not an Ed25519 cosignature/v1 key", wvkey)
	}
	h := sha256.Sum256(append([]byte(name+"\n"), raw...))
	id := binary.BigEndian.Uint32(h[:4])
	if fmt.Sprintf("%08x", id) != parts[1] {
		fail("witness key %q: key hash mismatch", wvkey)
	}
	for _, sig := range append(n.UnverifiedSigs, n.Sigs...) {
		if sig.Name != name || sig.Hash != id {
			continue
		}
		b, err := base64.StdEncoding.DecodeString(sig.Base64)
		if err != nil || len(b) != 4+8+64 {
			fail("cosignature of %s: malformed", name)
		}
		t := binary.BigEndian.Uint64(b[4:12])
		var msg bytes.Buffer
		fmt.Fprintf(&msg, "cosignature/v1\ntime %d\n", t)
		msg.WriteString(n.Text)
		if !ed25519.Verify(ed25519.PublicKey(raw[1:]), msg.Bytes(), b[12:]) {
			fail("cosignature of %s does not verify", name)
		}
		return t
	}
	fail("no cosignature by %s", name)
	return 0
}

func main() {
	if len(os.Args) >= 5 && os.Args[1] == "cosigned" {
		b, err := os.ReadFile(os.Args[3])
		if err != nil {
			fail("%v", err)
		}
		v, err := note.NewVerifier(os.Args[2])
		if err != nil {
			fail("bad verifier key: %v", err)
		}
		open(os.Args[2], b)
		n, err := note.Open(b, note.VerifierList(v))
		if err != nil {
			fail("checkpoint signature: %v", err)
		}
		for _, w := range os.Args[4:] {
			t := cosigned(n, w)
			fmt.Printf("ok cosigned by %s at %d\n", strings.Split(w, "+")[0], t)
		}
		return
	}
	if len(os.Args) != 4 {
		fail("usage: tlogverify note|inclusion|consistency VKEY FILE, or cosigned VKEY CHECKPOINT WVKEY...")
	}
	vkey := os.Args[2]
	switch os.Args[1] {
	case "note":
		b, err := os.ReadFile(os.Args[3])
		if err != nil {
			fail("%v", err)
		}
		c := open(vkey, b)
		fmt.Printf("ok %s %d %s\n", c.origin, c.size, c.root)
	case "inclusion":
		var p struct {
			Checkpoint string   `json:"checkpoint"`
			Index      int64    `json:"index"`
			Leaf       []byte   `json:"leaf"`
			Proof      []string `json:"proof"`
		}
		readJSON(os.Args[3], &p)
		c := open(vkey, []byte(p.Checkpoint))
		if err := tlog.CheckRecord(hashes(p.Proof), c.size, c.root, p.Index, tlog.RecordHash(p.Leaf)); err != nil {
			fail("record %d is not in the tree of size %d: %v", p.Index, c.size, err)
		}
		fmt.Printf("ok record %d in tree %d\n", p.Index, c.size)
	case "consistency":
		var p struct {
			Old   string   `json:"old_checkpoint"`
			New   string   `json:"new_checkpoint"`
			Proof []string `json:"proof"`
		}
		readJSON(os.Args[3], &p)
		o := open(vkey, []byte(p.Old))
		n := open(vkey, []byte(p.New))
		if err := tlog.CheckTree(hashes(p.Proof), n.size, n.root, o.size, o.root); err != nil {
			fail("tree %d is not a prefix of tree %d: %v", o.size, n.size, err)
		}
		fmt.Printf("ok tree %d is a prefix of tree %d\n", o.size, n.size)
	default:
		fail("unknown mode %q", os.Args[1])
	}
}
