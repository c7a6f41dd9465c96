//go:build tools

// Package tools pins the main package that build.sh compiles, so that
// `go mod tidy` records all of its dependencies in go.mod and go.sum.
package tools

import (
	_ "github.com/jaegertracing/jaeger/cmd/all-in-one"
)
