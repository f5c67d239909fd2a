//go:build !linux

package cache

func madviseHuge([]byte) {}
