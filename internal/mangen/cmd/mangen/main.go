// Command mangen writes the roff manual page made from a Markdown source
// by hush.im/internal/mangen:
//
//	mangen -o docs/hush.1 docs/hush.1.md
//
// cmd/hush runs it through go generate.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"

	"hush.im/internal/mangen"
)

func main() {
	out := flag.String("o", "", "write the page to `FILE` (default: standard output)")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: mangen [-o FILE] SOURCE.md")
		os.Exit(2)
	}
	if err := run(flag.Arg(0), *out); err != nil {
		fmt.Fprintf(os.Stderr, "mangen: %v\n", err)
		os.Exit(1)
	}
}

func run(src, dst string) error {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	md, err := io.ReadAll(io.LimitReader(f, mangen.MaxSource+1))
	if err != nil {
		return err
	}
	roff, err := mangen.Convert(md)
	if err != nil {
		return err
	}
	if dst == "" {
		_, err = os.Stdout.Write(roff)
		return err
	}
	return os.WriteFile(dst, roff, 0o644)
}
