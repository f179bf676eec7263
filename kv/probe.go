package kv

import (
	"bytes"

	"github.com/coppice-kv/coppice/messages"
)

// Probe answers a write command that would change nothing, as Redis
// answers it without propagating it: an LPOP of an empty list, an SADD of
// members already there, a DEL of missing keys, a SET NX of a key that
// exists, a command refused for its input or a key's type. It runs the
// command as Exec would, on r, at cmd's time, with a writer that stops it
// at its first write: ok is true when the command ran to its end without
// writing and without firing a keyspace event, and reply is then the
// reply Exec would give on that state. Otherwise ok is false, and the
// command must go through the log as any write.
//
// Only commands that often change nothing are probed (Probed): for the
// others, a SET or an INCR, the probe would cost a read for nothing. A
// storage error also gives ok false. r must be one consistent state:
// the probe may read it several times.
func Probe(r Reader, cmd *messages.Command) (reply *messages.Reply, ok bool) {
	args := cmd.GetArgs()
	if !Probed(args) {
		return nil, false
	}
	defer func() {
		if p := recover(); p != nil {
			if _, stopped := p.(wouldWrite); !stopped {
				if _, storage := p.(*StorageError); !storage {
					panic(p)
				}
			}
			reply, ok = nil, false
		}
	}()
	ev := &EventLog{Want: ^Classes(0)}
	reply = execArgs(probeWriter{r}, args, cmd.GetNowMs(), ev, nil)
	return reply, len(ev.Events) == 0
}

// probedNames are the write commands Probe runs: those a client often
// sends when they change nothing (a worker polling an empty queue, a lock
// taken already, idempotent adds and removals, a capped list or stream
// trimmed to a length it is within, deletions and expiries of keys that
// are gone).
var probedNames = map[string]bool{
	"lpop": true, "rpop": true, "lmpop": true, "lmove": true, "rpoplpush": true,
	"lrem": true, "lpushx": true, "rpushx": true, "ltrim": true, "linsert": true,
	"sadd": true, "srem": true, "spop": true, "smove": true,
	"zadd": true, "zrem": true, "zpopmin": true, "zpopmax": true, "zmpop": true,
	"zremrangebyscore": true, "zremrangebyrank": true, "zremrangebylex": true,
	"hdel": true, "hsetnx": true,
	"setnx": true, "msetnx": true, "getdel": true, "getex": true,
	"del": true, "unlink": true, "expire": true, "pexpire": true, "expireat": true,
	"pexpireat": true, "persist": true, "renamenx": true, "copy": true,
	"pfadd": true, "xdel": true, "xack": true, "xtrim": true,
}

// Probed reports whether Probe runs args: a command of probedNames, or a
// SET with NX or XX (a lock's: SET lock token NX PX 30000). A caller may
// ask first, and spare a write Probe would not run whatever it needs to
// run one (a consistent view of the store).
func Probed(args [][]byte) bool {
	if len(args) == 0 {
		return false
	}
	s, ok := Lookup(args[0])
	if !ok || !s.Write {
		return false
	}
	if s.Name == "set" {
		for _, a := range args[min(3, len(args)):] {
			if bytes.EqualFold(a, []byte("nx")) || bytes.EqualFold(a, []byte("xx")) {
				return true
			}
		}
		return false
	}
	return probedNames[s.Name]
}

// wouldWrite is what probeWriter panics with: the command writes.
type wouldWrite struct{}

// probeWriter reads r and stops the command at its first write.
type probeWriter struct{ Reader }

func (probeWriter) Set(_, _ []byte) error         { panic(wouldWrite{}) }
func (probeWriter) Delete(_ []byte) error         { panic(wouldWrite{}) }
func (probeWriter) DeleteRange(_, _ []byte) error { panic(wouldWrite{}) }
