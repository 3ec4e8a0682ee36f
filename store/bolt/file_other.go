//go:build !unix

package bolt

import (
	"os"
	"time"
)

const pathSeparator = os.PathSeparator

func prepareDir(string) error { return ErrUnsupported }

func openLocked(string, int, time.Duration) (*os.File, uint32, error) { return nil, 0, ErrUnsupported }

func syncDir(string) error { return ErrUnsupported }
