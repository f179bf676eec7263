package kv

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/coppice-kv/coppice/messages"
)

// SlotCount is the number of hash slots, as in Redis Cluster.
const SlotCount = 16384

// crc16 is CRC-16/XMODEM (polynomial 0x1021), Redis Cluster's key hash.
var crc16tab = func() (t [256]uint16) {
	for i := range t {
		crc := uint16(i) << 8
		for j := 0; j < 8; j++ {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
		t[i] = crc
	}
	return t
}()

func crc16(b []byte) uint16 {
	var crc uint16
	for _, c := range b {
		crc = crc<<8 ^ crc16tab[byte(crc>>8)^c]
	}
	return crc
}

// Slot is key's hash slot: CRC16 of the key, or of its hash tag (the part
// between the first '{' and the next '}', when not empty), mod 16384.
func Slot(key []byte) int {
	for i, c := range key {
		if c == '{' {
			for j := i + 1; j < len(key); j++ {
				if key[j] == '}' {
					if j > i+1 {
						key = key[i+1 : j]
					}
					break
				}
			}
			break
		}
	}
	return int(crc16(key) & (SlotCount - 1))
}

// ShardOf maps a slot to one of shards shards: contiguous slot ranges, as
// Redis Cluster assigns them to masters.
func ShardOf(slot, shards int) int { return slot * shards / SlotCount }

// patternSlot is Redis Cluster's patternHashSlot: the one slot every key a
// glob pattern matches is in (its hash tag's, or the whole pattern's when
// it has no wildcard), or -1 when they may be in any.
func patternSlot(p []byte) int {
	open := -1 // the first '{'
	for i, c := range p {
		switch {
		case c == '*' || c == '?' || c == '[' || c == '\\':
			return -1
		case open == -1 && c == '{':
			open = i
		case open >= 0 && c == '}' && i == open+1:
			open = -2 // "{}": the whole key is hashed
		case open >= 0 && c == '}':
			return int(crc16(p[open+1:i]) & (SlotCount - 1))
		}
	}
	return int(crc16(p) & (SlotCount - 1))
}

// CheckSortPatterns refuses SORT's BY and GET patterns whose keys may be on
// another shard than the sorted key's (Redis Cluster refuses them unless
// they are in its slot; one shard is enough here): such a pattern needs
// the key's {hash tag} before its '*'.
func CheckSortPatterns(args [][]byte, shards int) *messages.Reply {
	shard := ShardOf(Slot(args[1]), shards)
	for i := 2; i+1 < len(args); i++ {
		opt := string(bytes.ToLower(args[i]))
		switch opt {
		case "limit":
			i += 2
		case "store":
			i++
		case "by", "get":
			i++
			p := args[i]
			if (opt == "by" && bytes.IndexByte(p, '*') < 0) || (opt == "get" && string(p) == "#") {
				continue
			}
			if slot := patternSlot(p); slot < 0 || ShardOf(slot, shards) != shard {
				return errReply(fmt.Sprintf("ERR %s option of SORT denied: the keys the pattern forms may be on another shard than the key's; give the pattern the key's {hash tag} before its '*'", strings.ToUpper(opt)))
			}
		}
	}
	return nil
}

// SlotKeysName is the internal read of CLUSTER COUNTKEYSINSLOT and
// GETKEYSINSLOT, on the shard that holds the slot: args [SlotKeysName,
// slot, max]. With max negative its reply is the number of the slot's
// live keys; else an array of up to max of them, in key order. Keys are
// stored by name, not by slot: both scan the shard's keys (all of them
// for the count, until max are found for the keys).
const SlotKeysName = "\x00slot-keys"

// SlotKeysCommand is the SlotKeysName read of slot, up to max keys
// (negative: the count).
func SlotKeysCommand(slot int, max int64, nowMs int64) *messages.Command {
	return &messages.Command{Args: [][]byte{[]byte(SlotKeysName), []byte(fmt.Sprint(slot)), []byte(fmt.Sprint(max))}, NowMs: nowMs}
}

func readSlotKeys(t *txn, a [][]byte) *messages.Reply {
	if len(a) != 3 {
		return errArity(SlotKeysName)
	}
	slot, ok1 := parseInt(a[1])
	limit, ok2 := parseInt(a[2])
	if !ok1 || !ok2 || slot < 0 || slot >= SlotCount {
		return errNotInteger
	}
	var n int64
	var keys []*messages.Reply
	if limit != 0 {
		t.eachKey(nil, nil, func(key []byte, _ *record) bool {
			if Slot(key) != int(slot) {
				return true
			}
			n++
			if limit > 0 {
				keys = append(keys, bulk(bytes.Clone(key)))
				return n < limit
			}
			return true
		})
	}
	if limit < 0 {
		return integer(n)
	}
	return array(keys)
}
