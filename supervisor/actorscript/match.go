package actorscript

import (
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Match reports whether got is of want's type and has every field that is
// set in want, with the same value: a subset match. Nested messages match
// by subset too; lists must have the same length, each element matching.
func Match(want, got proto.Message) bool {
	if want.ProtoReflect().Descriptor().FullName() != got.ProtoReflect().Descriptor().FullName() {
		return false
	}
	return matchMessage(want.ProtoReflect(), got.ProtoReflect())
}

func matchMessage(want, got protoreflect.Message) bool {
	ok := true
	want.Range(func(fd protoreflect.FieldDescriptor, wv protoreflect.Value) bool {
		if !got.Has(fd) {
			ok = false
			return false
		}
		ok = matchValue(fd, wv, got.Get(fd))
		return ok
	})
	return ok
}

func matchValue(fd protoreflect.FieldDescriptor, want, got protoreflect.Value) bool {
	switch {
	case fd.IsList():
		wl, gl := want.List(), got.List()
		if wl.Len() != gl.Len() {
			return false
		}
		for i := 0; i < wl.Len(); i++ {
			if !matchScalar(fd, wl.Get(i), gl.Get(i)) {
				return false
			}
		}
		return true
	case fd.IsMap():
		ok := true
		want.Map().Range(func(k protoreflect.MapKey, wv protoreflect.Value) bool {
			gv := got.Map().Get(k)
			ok = got.Map().Has(k) && matchScalar(fd.MapValue(), wv, gv)
			return ok
		})
		return ok
	}
	return matchScalar(fd, want, got)
}

func matchScalar(fd protoreflect.FieldDescriptor, want, got protoreflect.Value) bool {
	if fd.Kind() == protoreflect.MessageKind || fd.Kind() == protoreflect.GroupKind {
		return matchMessage(want.Message(), got.Message())
	}
	return want.Equal(got)
}
