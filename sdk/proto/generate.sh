#!/bin/sh
# Regenerates sdk/internal/pluginpb from the .proto files beside this script.
# Pure Go: buf and the protoc plugins are fetched from the Go module proxy at
# pinned versions (no protoc download). Run from anywhere.
set -eu
cd "$(dirname "$0")"
BUF_VERSION=v1.75.0
exec go run "github.com/bufbuild/buf/cmd/buf@${BUF_VERSION}" generate
