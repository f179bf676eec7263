package gossip

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log"
	"log/slog"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/serf/serf"
)

// MaxNameLen is the longest node name ValidateName accepts, in bytes.
const MaxNameLen = 64

// Config configures one Gossip. Start validates it.
type Config struct {
	// Name is the node name: the serf member name and the Raft server ID.
	Name string
	// BindAddr is the ip:port serf listens on (TCP and UDP); port 0 picks
	// a free port (see Gossip.Addr).
	BindAddr string
	// AdvertiseAddr is the ip:port others reach us at, when it is not
	// BindAddr (NAT, containers, binding 0.0.0.0). Optional.
	AdvertiseAddr string
	Tags          Tags
	// EncryptKey turns on gossip encryption with a 16, 24 or 32 byte key.
	// Optional; not together with KeyringFile.
	EncryptKey []byte
	// KeyringFile is a serf keyring file: a JSON array of base64 keys, the
	// first one primary. Serf writes key changes back to it. Optional.
	KeyringFile string
	// SnapshotPath is a file where serf records the members it knows, so a
	// restarted node rejoins them without seeds. A Leave clears it.
	// Optional.
	SnapshotPath string
	// Log receives this package's logs and serf's; nil means slog.Default.
	Log *slog.Logger
	// Fast sets tight timers for tests on loopback: failures are detected
	// in well under a second. Never use it across a real network.
	Fast bool
	// OnRefused, if set, is told of each member the merge checks keep out
	// outside a Join (a member already known that comes back with another
	// cluster ID, say), with the refusal. It is called with memberlist's
	// lock held, as often as the member's messages arrive: it must only
	// pass the news on (and must not call serf or memberlist).
	OnRefused func(member string, err error)
}

// ValidateName checks a node name: 1 to MaxNameLen bytes of [A-Za-z0-9._-],
// not starting with '-' or '.'.
func ValidateName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: empty", ErrBadName)
	case len(name) > MaxNameLen:
		return fmt.Errorf("%w: %q is %d bytes, at most %d", ErrBadName, name, len(name), MaxNameLen)
	case name[0] == '-' || name[0] == '.':
		return fmt.Errorf("%w: %q starts with %q", ErrBadName, name, name[0])
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("%w: %q has %q at byte %d; use only A-Z a-z 0-9 . _ -", ErrBadName, name, c, i)
		}
	}
	return nil
}

// Validate checks the config once, naming the first bad value.
func (c Config) Validate() error {
	if err := ValidateName(c.Name); err != nil {
		return err
	}
	if _, _, err := splitIPPort("BindAddr", c.BindAddr, true); err != nil {
		return err
	}
	if c.AdvertiseAddr != "" {
		if _, _, err := splitIPPort("AdvertiseAddr", c.AdvertiseAddr, false); err != nil {
			return err
		}
	}
	if err := c.Tags.Validate(); err != nil {
		return err
	}
	if len(c.EncryptKey) > 0 {
		if c.KeyringFile != "" {
			return fmt.Errorf("%w: EncryptKey and KeyringFile %q both set; use one", ErrBadConfig, c.KeyringFile)
		}
		if err := memberlist.ValidateKey(c.EncryptKey); err != nil {
			return fmt.Errorf("%w: EncryptKey is %d bytes: %v", ErrBadConfig, len(c.EncryptKey), err)
		}
	}
	return nil
}

// splitIPPort parses ip:port; port 0 is allowed only when zeroOK.
func splitIPPort(field, addr string, zeroOK bool) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("%w: %s %q: %v", ErrBadConfig, field, addr, err)
	}
	if net.ParseIP(host) == nil {
		return "", 0, fmt.Errorf("%w: %s %q: host must be an IP address", ErrBadConfig, field, addr)
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 || port == 0 && !zeroOK {
		return "", 0, fmt.Errorf("%w: %s %q: bad port", ErrBadConfig, field, addr)
	}
	return host, port, nil
}

// loadKeyring reads a serf keyring file.
func loadKeyring(path string) (*memberlist.Keyring, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrKeyring, err)
	}
	var encoded []string
	if err := json.Unmarshal(data, &encoded); err != nil {
		return nil, fmt.Errorf("%w: %s: want a JSON array of base64 keys: %v", ErrKeyring, path, err)
	}
	if len(encoded) == 0 {
		return nil, fmt.Errorf("%w: %s holds no keys", ErrKeyring, path)
	}
	keys := make([][]byte, len(encoded))
	for i, e := range encoded {
		if keys[i], err = base64.StdEncoding.DecodeString(e); err != nil {
			return nil, fmt.Errorf("%w: %s: key %d: %v", ErrKeyring, path, i, err)
		}
		if err := memberlist.ValidateKey(keys[i]); err != nil {
			return nil, fmt.Errorf("%w: %s: key %d: %v", ErrKeyring, path, i, err)
		}
	}
	return memberlist.NewKeyring(keys, keys[0])
}

// deadNodeReclaim is how long after a node is declared dead its name may
// come back at another address (memberlist counts only a positive value).
const deadNodeReclaim = time.Millisecond

// serfConfig builds serf's config from a validated Config. The caller sets
// EventCh and Merge.
func (c Config) serfConfig(logger *log.Logger) (*serf.Config, error) {
	ml := memberlist.DefaultLANConfig()
	sc := serf.DefaultConfig()
	if c.Fast {
		ml = memberlist.DefaultLocalConfig()
		ml.ProbeInterval = 50 * time.Millisecond
		ml.ProbeTimeout = 25 * time.Millisecond
		ml.GossipInterval = 20 * time.Millisecond
		ml.PushPullInterval = time.Second
		ml.GossipToTheDeadTime = 2 * time.Second
		ml.SuspicionMult = 3
		sc.BroadcastTimeout = time.Second
		sc.LeavePropagateDelay = 100 * time.Millisecond
		sc.ReapInterval = time.Second
		sc.ReconnectInterval = time.Second
	}
	// A name whose node was declared dead may come back at another
	// address at once: a node restarted on other ports or another host.
	// Its joins are refused on its own side (admit) while a seed still
	// lists its earlier run, but each pushes its state to the seed, which
	// takes the new address once it has declared the earlier run dead; the
	// next join passes. memberlist's default (0) never lets a dead name
	// move: the others ignored the node until they forgot the dead one
	// (GossipToTheDeadTime, 30 s on a LAN) and a push-pull brought it in.
	// A dead one that was only cut off and comes back contends for the
	// name through serf's conflict resolution.
	ml.DeadNodeReclaimTime = deadNodeReclaim
	host, port, _ := splitIPPort("BindAddr", c.BindAddr, true)
	ml.BindAddr, ml.BindPort, ml.AdvertisePort = host, port, port
	if c.AdvertiseAddr != "" {
		ml.AdvertiseAddr, ml.AdvertisePort, _ = splitIPPort("AdvertiseAddr", c.AdvertiseAddr, false)
	}
	switch {
	case len(c.EncryptKey) > 0:
		ml.SecretKey = c.EncryptKey
	case c.KeyringFile != "":
		kr, err := loadKeyring(c.KeyringFile)
		if err != nil {
			return nil, err
		}
		ml.Keyring = kr
		sc.KeyringFile = c.KeyringFile
	}
	ml.Logger, ml.LogOutput = logger, nil
	sc.Logger, sc.LogOutput = logger, nil
	sc.MemberlistConfig = ml
	sc.NodeName = c.Name
	sc.Tags = c.Tags.Encode()
	sc.SnapshotPath = c.SnapshotPath
	sc.DisableCoordinates = true
	sc.ValidateNodeNames = false // serf's rule forbids '_'; ValidateName is ours
	return sc, nil
}
