package main

// The manual page docs/hush.1 is made from its source docs/hush.1.md by
// hush.im/internal/mangen; man_test.go keeps both in step with the usage
// texts, the flag sets and the exit codes.

//go:generate go run hush.im/internal/mangen/cmd/mangen -o ../../docs/hush.1 ../../docs/hush.1.md
