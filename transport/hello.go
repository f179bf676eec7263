package transport

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"
)

// Every connection opens with a hello from the dialling node and an
// answer from the accepting one, before any byte of its stream:
//
//	hello:  "CPX2", stream id (uint32, big-endian), then three strings
//	        (a length byte and the bytes): the dialler's cluster ID ("" when
//	        it belongs to none yet), its node name, and the name of the node
//	        it means to reach ("" for whichever answers)
//	answer: a status byte, then two strings: the accepting node's name and
//	        cluster ID
//
// The accepting node refuses (answers a status other than helloOK, then
// closes) a dialler of another cluster, a connection meant for another
// node, a stream it does not serve, every dialler while it is joining a
// cluster whose ID it has not learnt yet (Mux.RefuseUntilCluster), and,
// when TLS checks names (MutualTLS.WithNames), a dialler whose
// certificate does not carry the name it gives; the dialler, with names
// checked, refuses an answer whose name the acceptor's certificate does
// not carry. So an address handed out again (a
// container's IP given to another node) never lets traffic meant for the
// node that had it reach the one that has it now: with Raft, a leader
// would otherwise append its entries to, and win the votes of, another
// node's group, of its own cluster or of another (a follower takes
// AppendEntries from any leader with a term at least its own). The answer
// costs one round trip per connection; Raft and remote requests keep
// theirs open.
//
// The hello's fourth byte is the wire version. A hello of a later version
// than this node's is answered at once, after its first eight bytes, with
// helloVersion and, in place of the cluster ID, the magic this node
// speaks ("CPX2"): a later node can dial again in this version, so a
// cluster can be upgraded one node at a time, and a later node that no
// longer speaks this version answers this one's hello the same way, which
// the dialler reports as ErrVersion. A hello of an earlier version (CPX1,
// from before the hello, with no answer to read) is dropped as a bad
// header.
const (
	magic      = "CPX2"
	maxString  = 255
	headerWait = 5 * time.Second
)

// Answer statuses.
const (
	helloOK byte = iota
	helloOtherCluster
	helloOtherNode
	helloNoStream
	helloCertName
	helloVersion
	helloNoCluster
)

// Errors of the hello: the accepting node refused the connection.
var (
	ErrBadHeader    = errors.New("transport: bad stream header")
	ErrOtherCluster = errors.New("transport: node of another cluster")
	ErrOtherNode    = errors.New("transport: another node than the one meant")
	ErrUnknownPeer  = errors.New("transport: no such stream")
	ErrVersion      = errors.New("transport: wire version not spoken")
	ErrNoCluster    = errors.New("transport: node has not joined its cluster yet")
)

type hello struct {
	stream              uint32
	clusterID, from, to string
}

type answer struct {
	status          byte
	name, clusterID string
}

func putString(b []byte, s string) ([]byte, error) {
	if len(s) > maxString {
		return nil, fmt.Errorf("transport: %q is %d bytes long, at most %d fit a connection's hello", s, len(s), maxString)
	}
	return append(append(b, byte(len(s))), s...), nil
}

func readString(r io.Reader) (string, error) {
	var n [1]byte
	if _, err := io.ReadFull(r, n[:]); err != nil {
		return "", err
	}
	b := make([]byte, n[0])
	if _, err := io.ReadFull(r, b); err != nil {
		return "", err
	}
	return string(b), nil
}

func (h hello) encode() ([]byte, error) {
	b := binary.BigEndian.AppendUint32([]byte(magic), h.stream)
	var err error
	for _, s := range []string{h.clusterID, h.from, h.to} {
		if b, err = putString(b, s); err != nil {
			return nil, err
		}
	}
	return b, nil
}

func readHello(r io.Reader) (hello, error) {
	var fixed [len(magic) + 4]byte
	if _, err := io.ReadFull(r, fixed[:]); err != nil {
		return hello{}, fmt.Errorf("%w: %v", ErrBadHeader, err)
	}
	if string(fixed[:len(magic)-1]) == magic[:len(magic)-1] && fixed[len(magic)-1] > magic[len(magic)-1] {
		return hello{}, fmt.Errorf("%w: a hello of %q, this node speaks %q", ErrVersion, fixed[:len(magic)], magic)
	}
	if string(fixed[:len(magic)]) != magic {
		return hello{}, fmt.Errorf("%w: starts %q, want %q", ErrBadHeader, fixed[:len(magic)], magic)
	}
	h := hello{stream: binary.BigEndian.Uint32(fixed[len(magic):])}
	for _, s := range []*string{&h.clusterID, &h.from, &h.to} {
		var err error
		if *s, err = readString(r); err != nil {
			return hello{}, fmt.Errorf("%w: %v", ErrBadHeader, err)
		}
	}
	return h, nil
}

func (a answer) encode() []byte {
	b := []byte{a.status}
	// The node's name fits (SetNode checks it); a cluster ID too long
	// for a hello string (coppice makes 16 hex digits) is cut here, and
	// this node's own dials with it fail (hello.encode).
	b, _ = putString(b, a.name)
	id := a.clusterID
	if len(id) > maxString {
		id = id[:maxString]
	}
	b, _ = putString(b, id)
	return b
}

func readAnswer(r io.Reader) (answer, error) {
	var st [1]byte
	if _, err := io.ReadFull(r, st[:]); err != nil {
		return answer{}, err
	}
	a := answer{status: st[0]}
	var err error
	if a.name, err = readString(r); err != nil {
		return answer{}, err
	}
	if a.clusterID, err = readString(r); err != nil {
		return answer{}, err
	}
	return a, nil
}

// err is the dialler's error for an answer that refuses: it names the
// node that answered at addr and what it refused.
func (a answer) err(addr string, h hello) error {
	switch a.status {
	case helloOK:
		return nil
	case helloOtherCluster:
		return fmt.Errorf("%w: %s is node %q of cluster %q, this node is of cluster %q", ErrOtherCluster, addr, a.name, a.clusterID, h.clusterID)
	case helloOtherNode:
		return fmt.Errorf("%w: %s is node %q, not %q", ErrOtherNode, addr, a.name, h.to)
	case helloNoStream:
		return fmt.Errorf("%w: node %q at %s serves no stream %d", ErrUnknownPeer, a.name, addr, h.stream)
	case helloCertName:
		return fmt.Errorf("%w: node %q at %s refused this node's certificate: it does not carry the name %q", ErrCertName, a.name, addr, h.from)
	case helloNoCluster:
		return fmt.Errorf("%w: node %q at %s is joining a cluster and does not know its ID yet", ErrNoCluster, a.name, addr)
	case helloVersion:
		return fmt.Errorf("%w: node %q at %s speaks %q, this node %q: start this node on a build that speaks its version", ErrVersion, a.name, addr, a.clusterID, magic)
	}
	return fmt.Errorf("%w: node %q at %s answered status %d", ErrBadHeader, a.name, addr, a.status)
}
