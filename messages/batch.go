package messages

import (
	"errors"
	"fmt"
	"math"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
)

// A Raft entry of a shard is a CommandBatch, encoded by the shard's actor
// and decoded by every replica's state machine for every write: through
// the generated code, a command cost the encoder a size pass by
// reflection and the decoder an allocation for the Command, one for each
// argument and more for the growing argument list (7% of a node's CPU
// under pipelined SETs). The functions here do the same work by hand:
// AppendCommandBatch writes the bytes proto.Marshal writes, and
// DecodeCommandBatch reads what proto.Unmarshal reads into a handful of
// allocations a batch. TestCommandBatchCodecAsProto holds them to the
// generated code, and fails when Command gains a field they do not know.

// Command's field numbers.
const (
	commandArgs  protowire.Number = 1
	commandNowMs protowire.Number = 2
	commandOrig  protowire.Number = 3
	commandTrace protowire.Number = 4
	commandBulks protowire.Number = 5

	batchCommands protowire.Number = 1
)

// CommandSize is proto.Size(c).
func CommandSize(c *Command) int {
	n := 0
	for _, a := range c.Args {
		n += protowire.SizeTag(commandArgs) + protowire.SizeBytes(len(a))
	}
	if c.NowMs != 0 {
		n += protowire.SizeTag(commandNowMs) + protowire.SizeVarint(uint64(c.NowMs))
	}
	if c.Origin != "" {
		n += protowire.SizeTag(commandOrig) + protowire.SizeBytes(len(c.Origin))
	}
	if c.Trace != 0 {
		n += protowire.SizeTag(commandTrace) + protowire.SizeVarint(uint64(c.Trace))
	}
	if c.Bulks {
		n += protowire.SizeTag(commandBulks) + 1
	}
	return n
}

// AppendCommandBatch appends CommandBatch{Commands: cmds} to dst, encoded
// as proto.Marshal encodes it.
func AppendCommandBatch(dst []byte, cmds []*Command) []byte {
	for _, c := range cmds {
		dst = protowire.AppendTag(dst, batchCommands, protowire.BytesType)
		dst = protowire.AppendVarint(dst, uint64(CommandSize(c)))
		for _, a := range c.Args {
			dst = protowire.AppendTag(dst, commandArgs, protowire.BytesType)
			dst = protowire.AppendBytes(dst, a)
		}
		if c.NowMs != 0 {
			dst = protowire.AppendTag(dst, commandNowMs, protowire.VarintType)
			dst = protowire.AppendVarint(dst, uint64(c.NowMs))
		}
		if c.Origin != "" {
			dst = protowire.AppendTag(dst, commandOrig, protowire.BytesType)
			dst = protowire.AppendString(dst, c.Origin)
		}
		if c.Trace != 0 {
			dst = protowire.AppendTag(dst, commandTrace, protowire.VarintType)
			dst = protowire.AppendVarint(dst, uint64(c.Trace))
		}
		if c.Bulks {
			dst = protowire.AppendTag(dst, commandBulks, protowire.VarintType)
			dst = protowire.AppendVarint(dst, 1)
		}
	}
	return dst
}

// CommandBatchRoom is room enough for AppendCommandBatch of n commands
// whose CommandSize add up to size: each adds its tag and length. The
// shard actor sums the sizes as commands come (its batch's limit), so the
// encoding takes no size pass of its own.
func CommandBatchRoom(size, n int) int {
	return size + n*(protowire.SizeTag(batchCommands)+protowire.SizeVarint(math.MaxUint32))
}

var errBadUTF8 = errors.New("string field contains invalid UTF-8")

// DecodeCommandBatch decodes a CommandBatch's commands from data as
// proto.Unmarshal does (fields it does not know are skipped; a string
// that is not UTF-8 is an error), with every argument in one copy of data:
// the commands do not alias data.
func DecodeCommandBatch(data []byte) ([]*Command, error) {
	// First pass: how many commands and arguments, and whether data is
	// well formed; the second fills them in, without checks.
	ncmds, nargs := 0, 0
	err := eachField(data, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		if num != batchCommands || typ != protowire.BytesType {
			return nil
		}
		ncmds++
		return eachField(v, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
			switch {
			case num == commandArgs && typ == protowire.BytesType:
				nargs++
			case num == commandOrig && typ == protowire.BytesType && !utf8.Valid(v):
				return errBadUTF8
			}
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	buf := append([]byte(nil), data...)
	cmds := make([]Command, ncmds)
	out := make([]*Command, 0, ncmds)
	args := make([][]byte, 0, nargs)
	_ = eachField(buf, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		if num != batchCommands || typ != protowire.BytesType {
			return nil
		}
		c := &cmds[len(out)]
		out = append(out, c)
		start := len(args)
		_ = eachField(v, func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error {
			switch {
			case num == commandArgs && typ == protowire.BytesType:
				args = append(args, v[:len(v):len(v)])
			case num == commandNowMs && typ == protowire.VarintType:
				c.NowMs = int64(x)
			case num == commandOrig && typ == protowire.BytesType:
				c.Origin = string(v)
			case num == commandTrace && typ == protowire.VarintType:
				c.Trace = uint32(x)
			case num == commandBulks && typ == protowire.VarintType:
				c.Bulks = x != 0
			}
			return nil
		})
		if len(args) > start {
			c.Args = args[start:len(args):len(args)]
		}
		return nil
	})
	return out, nil
}

// eachField calls fn with each field of the message in b: its number,
// its wire type, and its value (a length-delimited field's bytes, or a
// varint's value).
func eachField(b []byte, fn func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return fmt.Errorf("bad field tag: %w", protowire.ParseError(n))
		}
		b = b[n:]
		var v []byte
		var x uint64
		switch typ {
		case protowire.BytesType:
			v, n = protowire.ConsumeBytes(b)
		case protowire.VarintType:
			x, n = protowire.ConsumeVarint(b)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return fmt.Errorf("bad field %d: %w", num, protowire.ParseError(n))
		}
		b = b[n:]
		if err := fn(num, typ, v, x); err != nil {
			return err
		}
	}
	return nil
}
