//go:build tools

// Package tools pins goofys for the bench (see go.mod); nothing here is
// built into bucketfs.
package tools

import _ "github.com/kahing/goofys"
