//go:build !race

package bolt

// raceBuild is true when the race detector is on (go test -race).
const raceBuild = false
