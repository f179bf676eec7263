package server

// MIGRATE: keys moved (or copied) to another Redis-protocol server, as
// Redis's MIGRATE does it: each key's DUMP sent with RESTORE, then, unless
// COPY, the key deleted here.
//
// Redis runs MIGRATE with every other command held; here writes to the
// keys may go on meanwhile. So a key is deleted only if it is still what
// was sent (its digest, read before its DUMP, unchanged: the delete runs
// as a WATCHed transaction on its shard). A key changed in between is
// left here as well as there, and MIGRATE answers an error naming it:
// nothing written is lost.

import (
	"bufio"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/coppice-kv/coppice/kv"
	"github.com/coppice-kv/coppice/messages"
)

// migrate: MIGRATE host port key|"" destination-db timeout [COPY]
// [REPLACE] [AUTH password | AUTH2 username password] [KEYS key ...].
func (c *conn) migrate(args [][]byte) {
	if r := kv.CheckArity(args); r != nil {
		c.reply(r)
		return
	}
	var copyKeys, replace bool
	var user, pass []byte
	keys := args[3:4]
	for j := 6; j < len(args); j++ {
		more := len(args) - j - 1
		switch opt := strings.ToLower(string(args[j])); {
		case opt == "copy":
			copyKeys = true
		case opt == "replace":
			replace = true
		case opt == "auth":
			if more == 0 {
				c.reply(errorf("ERR syntax error"))
				return
			}
			j++
			user, pass = nil, args[j]
		case opt == "auth2":
			if more < 2 {
				c.reply(errorf("ERR syntax error"))
				return
			}
			user, pass = args[j+1], args[j+2]
			j += 2
		case opt == "keys":
			if len(args[3]) != 0 {
				c.reply(errorf("ERR When using MIGRATE KEYS option, the key argument must be set to the empty string"))
				return
			}
			keys = args[j+1:]
			j = len(args)
		default:
			c.reply(errorf("ERR syntax error"))
			return
		}
	}
	timeout, ok1 := kv.ParseInt(args[5])
	db, ok2 := kv.ParseInt(args[4])
	if !ok1 || !ok2 {
		c.reply(errorf("ERR value is not an integer or out of range"))
		return
	}
	if timeout <= 0 {
		timeout = 1000
	}
	c.drain() // the keys as every command before this one left them
	// Each key's digest, then its TTL and its value: every read issued
	// before the first is waited for.
	type sent struct {
		key, digest, payload []byte
		ttl                  int64
		restored             bool
	}
	reads := make([][3]Pending, len(keys))
	for i, k := range keys {
		k = clone(k)
		keys[i] = k
		shard := c.shardOf(k)
		for j, cmd := range [][][]byte{{[]byte(kv.DigestName), k}, {[]byte("PTTL"), k}, {[]byte("DUMP"), k}} {
			reads[i][j] = c.issueRead(shard, cmd)
		}
	}
	var move []sent
	for i, k := range keys {
		d, pttl, dump := reads[i][0].Wait(), reads[i][1].Wait(), reads[i][2].Wait()
		for _, r := range []*messages.Reply{d, pttl, dump} {
			if e := r.GetError(); e != "" {
				c.reply(r)
				return
			}
		}
		if dump.GetNullBulk() || dump.GetBulk() == nil {
			continue // missing, or expired meanwhile
		}
		ttl := pttl.GetInteger()
		if ttl == -1 {
			ttl = 0
		} else if ttl < 1 {
			ttl = 1
		}
		var digest []byte
		if items := d.GetArray().GetItems(); len(items) == 1 {
			digest = items[0].GetBulk()
		}
		move = append(move, sent{key: k, digest: digest, payload: dump.GetBulk(), ttl: ttl})
	}
	if len(move) == 0 {
		c.reply(status("NOKEY"))
		return
	}
	wait := time.Duration(timeout) * time.Millisecond
	nc, err := net.DialTimeout("tcp", net.JoinHostPort(string(args[1]), string(args[2])), wait)
	if err != nil {
		c.reply(errorf("IOERR error or timeout connecting to the client"))
		return
	}
	defer nc.Close()
	var cmds [][][]byte
	if pass != nil {
		if user != nil {
			cmds = append(cmds, [][]byte{[]byte("AUTH"), user, pass})
		} else {
			cmds = append(cmds, [][]byte{[]byte("AUTH"), pass})
		}
	}
	cmds = append(cmds, [][]byte{[]byte("SELECT"), []byte(strconv.FormatInt(db, 10))})
	for _, m := range move {
		cmd := [][]byte{[]byte("RESTORE-ASKING"), m.key, []byte(strconv.FormatInt(m.ttl, 10)), m.payload}
		if replace {
			cmd = append(cmd, []byte("REPLACE"))
		}
		cmds = append(cmds, cmd)
	}
	w := bufio.NewWriter(nc)
	for _, cmd := range cmds {
		fmt.Fprintf(w, "*%d\r\n", len(cmd))
		for _, a := range cmd {
			fmt.Fprintf(w, "$%d\r\n", len(a))
			w.Write(a)
			w.WriteString("\r\n")
		}
	}
	nc.SetDeadline(time.Now().Add(wait))
	if err := w.Flush(); err != nil {
		c.reply(errorf("IOERR error or timeout writing to target instance"))
		return
	}
	rd := bufio.NewReader(nc)
	var targetErr string
	for i := range cmds {
		nc.SetDeadline(time.Now().Add(wait))
		line, err := rd.ReadString('\n')
		if err != nil {
			c.reply(errorf("IOERR error or timeout reading to target instance"))
			return
		}
		line = strings.TrimRight(line, "\r\n")
		if strings.HasPrefix(line, "-") {
			if targetErr == "" {
				targetErr = line[1:]
			}
			continue
		}
		if m := i - (len(cmds) - len(move)); m >= 0 && line == "+OK" {
			move[m].restored = true
		}
	}
	var kept []string
	if !copyKeys {
		// Every key's guarded delete proposed, then each answer read.
		dels := make([]Pending, len(move))
		for i, m := range move {
			if m.restored {
				cmd := kv.ExecCommand(nowMs(), [][]byte{m.key}, [][]byte{m.digest}, [][][]byte{{[]byte("DEL"), m.key}})
				dels[i] = c.s.backend.Propose(c.shardOf(m.key), cmd)
			}
		}
		for i, p := range dels {
			if p == nil {
				continue
			}
			r := p.Wait()
			if e := r.GetError(); e != "" && targetErr == "" {
				targetErr = e
			}
			if r.GetNullArray() || r.GetNullBulk() {
				kept = append(kept, string(move[i].key))
			}
		}
	}
	switch {
	case targetErr != "":
		c.reply(errorf("ERR Target instance replied with error: " + targetErr))
	case len(kept) > 0:
		c.reply(errorf(fmt.Sprintf("ERR MIGRATE: %s changed while being sent: now on both servers, the target holding the value sent", strings.Join(kept, ", "))))
	default:
		c.reply(replyOK)
	}
}
