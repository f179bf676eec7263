package gossip

import (
	"fmt"
	"math"
	"net"
	"strconv"
)

// Tags is what a node tells the others about itself through serf's member
// tags. Empty fields are not sent.
type Tags struct {
	ClusterAddr string // host:port for Raft, actor remoting and sync streams
	ClientAddr  string // host:port of the RESP listener
	HTTPAddr    string // host:port of the HTTP listener
	Role        string
	ClusterID   string // empty until the node belongs to a bootstrapped cluster
	Shards      int    // 0 when not known yet
	// DiskLow: the node's data dir has less free space than its floor
	// (--min-free-disk-mib).
	DiskLow bool
	// BootstrapExpect is the node's --bootstrap-expect while it belongs to
	// no cluster: how many nodes must see each other before the first of
	// them by name founds one (0: none asked).
	BootstrapExpect int
	// DataDirID is the ID of the node's data dir (node.json): a node
	// whose ID changed runs on a new data dir.
	DataDirID string
}

// Serf tag keys: short, because all tags together must fit in memberlist's
// 512-byte node meta.
const (
	tagClusterAddr = "ca"
	tagClientAddr  = "cl"
	tagHTTPAddr    = "ht"
	tagRole        = "ro"
	tagClusterID   = "id"
	tagShards      = "sh"
	tagDiskLow     = "dl"
	tagBootstrap   = "bx"
	tagDataDir     = "dd"
)

// metaMaxSize is memberlist.MetaMaxSize: the limit on encoded tags.
const metaMaxSize = 512

// tagField pairs a serf key with a string field of Tags.
type tagField struct {
	key string
	val *string
}

// fields lists the string fields, so encoding and decoding walk one list.
func (t *Tags) fields() []tagField {
	return []tagField{
		{tagClusterAddr, &t.ClusterAddr},
		{tagClientAddr, &t.ClientAddr},
		{tagHTTPAddr, &t.HTTPAddr},
		{tagRole, &t.Role},
		{tagClusterID, &t.ClusterID},
		{tagDataDir, &t.DataDirID},
	}
}

// Encode returns the tags as serf's map, leaving out empty fields.
func (t Tags) Encode() map[string]string {
	m := make(map[string]string, 6)
	for _, f := range t.fields() {
		if *f.val != "" {
			m[f.key] = *f.val
		}
	}
	if t.Shards != 0 {
		m[tagShards] = strconv.Itoa(t.Shards)
	}
	if t.DiskLow {
		m[tagDiskLow] = "1"
	}
	if t.BootstrapExpect != 0 {
		m[tagBootstrap] = strconv.Itoa(t.BootstrapExpect)
	}
	return m
}

// DecodeTags reads the tags out of serf's map and validates them. Keys it
// does not know are ignored (see extraTags).
func DecodeTags(m map[string]string) (Tags, error) {
	var t Tags
	for _, f := range t.fields() {
		*f.val = m[f.key]
	}
	if s, ok := m[tagShards]; ok {
		n, err := strconv.ParseUint(s, 10, 32)
		if err != nil {
			return Tags{}, fmt.Errorf("%w: shard count %q (tag %q) is not a number", ErrBadTags, s, tagShards)
		}
		t.Shards = int(n)
	}
	if s, ok := m[tagBootstrap]; ok {
		n, err := strconv.ParseUint(s, 10, 16)
		if err != nil {
			return Tags{}, fmt.Errorf("%w: bootstrap expect %q (tag %q) is not a number", ErrBadTags, s, tagBootstrap)
		}
		t.BootstrapExpect = int(n)
	}
	switch v, ok := m[tagDiskLow]; {
	case !ok:
	case v == "1":
		t.DiskLow = true
	default:
		return Tags{}, fmt.Errorf("%w: disk low %q (tag %q) is not 1", ErrBadTags, v, tagDiskLow)
	}
	if err := t.Validate(); err != nil {
		return Tags{}, err
	}
	return t, nil
}

// extraTags returns the entries of m that are not Tags fields, or nil.
func extraTags(m map[string]string) map[string]string {
	var extra map[string]string
	for k, v := range m {
		switch k {
		case tagClusterAddr, tagClientAddr, tagHTTPAddr, tagRole, tagClusterID, tagShards, tagDiskLow, tagBootstrap, tagDataDir:
			continue
		}
		if extra == nil {
			extra = make(map[string]string)
		}
		extra[k] = v
	}
	return extra
}

// Validate checks that addresses are host:port, the shard count fits, and
// the encoded tags fit memberlist's node meta.
func (t Tags) Validate() error {
	addrs := []struct{ name, val string }{
		{"ClusterAddr", t.ClusterAddr}, {"ClientAddr", t.ClientAddr}, {"HTTPAddr", t.HTTPAddr},
	}
	for _, a := range addrs {
		if a.val == "" {
			continue
		}
		if _, port, err := net.SplitHostPort(a.val); err != nil || port == "" {
			return fmt.Errorf("%w: %s %q is not host:port", ErrBadTags, a.name, a.val)
		}
	}
	if t.Shards < 0 || int64(t.Shards) > math.MaxUint32 {
		return fmt.Errorf("%w: shard count %d out of range", ErrBadTags, t.Shards)
	}
	if t.BootstrapExpect < 0 || t.BootstrapExpect > math.MaxUint16 {
		return fmt.Errorf("%w: bootstrap expect %d out of range", ErrBadTags, t.BootstrapExpect)
	}
	// Serf msgpack-encodes the map behind one magic byte: a map header of
	// at most 3 bytes and, per string, at most 3 header bytes. Bounding it
	// here means serf never refuses our tags later.
	size := 1 + 3
	for k, v := range t.Encode() {
		size += len(k) + len(v) + 6
	}
	if size > metaMaxSize {
		return fmt.Errorf("%w: tags take up to %d bytes encoded, limit %d", ErrBadTags, size, metaMaxSize)
	}
	return nil
}
