package kv

import "testing"

func TestSlotMatchesRedisCluster(t *testing.T) {
	if got := crc16([]byte("123456789")); got != 0x31C3 {
		t.Fatalf("crc16 = %#x, want 0x31c3", got)
	}
	// Values from Redis Cluster's CLUSTER KEYSLOT.
	for key, want := range map[string]int{
		"foo": 12182, "bar": 5061, "{user1000}.following": 3443, "{user1000}.followers": 3443,
		"foo{}{bar}": 8363, "foo{{bar}}zap": 4015, "foo{bar}{zap}": 5061, "": 0,
	} {
		if got := Slot([]byte(key)); got != want {
			t.Errorf("Slot(%q) = %d, want %d", key, got, want)
		}
	}
}

func TestShardOfCoversEveryShard(t *testing.T) {
	for _, n := range []int{1, 3, 4, 16} {
		seen := map[int]bool{}
		for s := 0; s < SlotCount; s++ {
			sh := ShardOf(s, n)
			if sh < 0 || sh >= n {
				t.Fatalf("slot %d -> shard %d of %d", s, sh, n)
			}
			seen[sh] = true
		}
		if len(seen) != n {
			t.Fatalf("%d shards, %d used", n, len(seen))
		}
	}
}
