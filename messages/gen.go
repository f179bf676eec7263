// Package messages holds every message coppice's actors exchange, as protobuf.
//
// The .proto files sit beside their generated .pb.go. Regenerate with
//
//	go generate ./messages
//
// which runs protoc (Debian's protobuf-compiler) with the protoc-gen-go
// pinned in go.mod. CI regenerates and fails when the result differs from
// what is committed.
package messages

//go:generate sh gen.sh
