package messages

import (
	"bytes"
	"math"
	"math/rand/v2"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// TestCommandBatchCodecAsProto: the hand-written codec writes what
// proto.Marshal writes, byte for byte, and reads what proto.Unmarshal
// reads, for random batches: empty and big arguments, every field set or
// not, negative and extreme times; and fails as proto.Unmarshal fails on
// damaged batches. It also fails when Command gains a field, which the
// codec would drop: teach it the field first.
func TestCommandBatchCodecAsProto(t *testing.T) {
	known := map[protoreflect.FieldNumber]bool{1: true, 2: true, 3: true, 4: true, 5: true}
	fields := (&Command{}).ProtoReflect().Descriptor().Fields()
	for i := range fields.Len() {
		if f := fields.Get(i); !known[f.Number()] {
			t.Fatalf("Command has field %d (%s), which AppendCommandBatch and DecodeCommandBatch do not know", f.Number(), f.Name())
		}
	}
	if n := fields.Len(); n != len(known) {
		t.Fatalf("Command has %d fields, the codec knows %d", n, len(known))
	}

	rng := rand.New(rand.NewPCG(3, 5))
	times := []int64{0, 1, -1, 1_765_000_000_000, math.MaxInt64, math.MinInt64}
	for round := range 2000 {
		cmds := make([]*Command, rng.IntN(6))
		for i := range cmds {
			c := &Command{}
			for range rng.IntN(5) {
				a := make([]byte, []int{0, 1, 64, 300, 70000}[rng.IntN(5)])
				for j := range a {
					a[j] = byte(rng.IntN(256))
				}
				c.Args = append(c.Args, a)
			}
			if rng.IntN(2) == 0 {
				c.NowMs = times[rng.IntN(len(times))]
			}
			if rng.IntN(3) == 0 {
				c.Origin = []string{"", "n1/3:17", "ü"}[rng.IntN(3)]
			}
			if rng.IntN(3) == 0 {
				c.Trace = []uint32{0, 1, 7, math.MaxUint32}[rng.IntN(4)]
			}
			c.Bulks = rng.IntN(2) == 0
			cmds[i] = c
		}
		want, err := proto.Marshal(&CommandBatch{Commands: cmds})
		if err != nil {
			t.Fatal(err)
		}
		got := AppendCommandBatch([]byte("x"), cmds)[1:]
		if !bytes.Equal(got, want) {
			t.Fatalf("round %d: AppendCommandBatch wrote %d bytes, proto.Marshal %d, not the same", round, len(got), len(want))
		}
		size := 0
		for _, c := range cmds {
			if n, want := CommandSize(c), proto.Size(c); n != want {
				t.Fatalf("round %d: CommandSize %d, want %d", round, n, want)
			}
			size += CommandSize(c)
		}
		if room := CommandBatchRoom(size, len(cmds)); room < len(want) || room > len(want)+6*len(cmds) {
			t.Fatalf("round %d: CommandBatchRoom %d for %d bytes", round, room, len(want))
		}
		// An unknown field, in the batch and in a command, is skipped.
		if round%7 == 0 && len(cmds) > 0 {
			unknown := protowire.AppendVarint(protowire.AppendTag(nil, 9, protowire.VarintType), 5)
			cmds[0].ProtoReflect().SetUnknown(unknown)
			if want, err = proto.Marshal(&CommandBatch{Commands: cmds}); err != nil {
				t.Fatal(err)
			}
			want = append(want, unknown...)
		}
		decoded, err := DecodeCommandBatch(want)
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		var viaProto CommandBatch
		if err := proto.Unmarshal(want, &viaProto); err != nil {
			t.Fatal(err)
		}
		if !sameCommands(decoded, viaProto.Commands) {
			t.Fatalf("round %d: DecodeCommandBatch read %v, proto.Unmarshal %v", round, decoded, viaProto.Commands)
		}
		// The commands hold copies: data may change after.
		if len(want) > 0 {
			for i := range want {
				want[i] ^= 0xff
			}
			if !sameCommands(decoded, viaProto.Commands) {
				t.Fatalf("round %d: the decoded commands changed with the data", round)
			}
		}
	}

	// Damage: cut short, a bad tag, a string that is not UTF-8.
	good := AppendCommandBatch(nil, []*Command{{Args: [][]byte{[]byte("SET"), []byte("k"), []byte("v")}, NowMs: 7, Origin: "o"}})
	badOrigin := AppendCommandBatch(nil, []*Command{{Args: [][]byte{[]byte("GET")}, Origin: "\xff"}})
	for name, data := range map[string][]byte{
		"cut short":   good[:len(good)-1],
		"field 0":     append(bytes.Clone(good), 0x00),
		"bad varint":  append(bytes.Clone(good), 0x10, 0xff),
		"not UTF-8":   badOrigin,
		"length over": {0x0a, 0x7f, 0x0a},
	} {
		var viaProto CommandBatch
		perr := proto.Unmarshal(data, &viaProto)
		_, err := DecodeCommandBatch(data)
		if perr == nil || err == nil {
			t.Errorf("%s: DecodeCommandBatch error %v, proto.Unmarshal's %v: want both to fail", name, err, perr)
		}
	}
}

func sameCommands(a, b []*Command) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		// proto.Equal tells nil and empty apart for neither.
		x, y := proto.Clone(a[i]).(*Command), proto.Clone(b[i]).(*Command)
		x.ProtoReflect().SetUnknown(nil)
		y.ProtoReflect().SetUnknown(nil)
		if !proto.Equal(x, y) {
			return false
		}
	}
	return true
}
