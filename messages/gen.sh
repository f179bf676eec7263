#!/bin/sh
# Regenerates the .pb.go files beside their .proto, with the protoc-gen-go
# version pinned in go.mod (a tool dependency). Run from anywhere.
set -eu
cd "$(dirname "$0")"
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
go build -o "$bin/protoc-gen-go" google.golang.org/protobuf/cmd/protoc-gen-go
protoc --plugin=protoc-gen-go="$bin/protoc-gen-go" -I . -I /usr/include \
  --go_out=. --go_opt=paths=source_relative ./*.proto
