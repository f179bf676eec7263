package server

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
