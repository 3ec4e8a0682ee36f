//go:build unix

package bolt

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"
	"time"
)

const pathSeparator = '/'

// checkOwner refuses a file or directory that another user owns or that
// group or others can write, and returns whether its permissions are
// wider than want (readable by others) and should be tightened.
func checkOwner(path string, fi fs.FileInfo, want fs.FileMode) (tighten bool, err error) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return false, ErrUnsupported
	}
	if int(st.Uid) != os.Geteuid() {
		return false, &PermissionError{Path: path, Mode: fi.Mode(), Reason: fmt.Sprintf("owned by user %d, not by this user", st.Uid)}
	}
	if fi.Mode().Perm()&0o022 != 0 {
		return false, &PermissionError{Path: path, Mode: fi.Mode(), Reason: "writable by group or others; fix it (chmod go-w) and check its contents"}
	}
	return fi.Mode().Perm() != want, nil
}

// prepareDir creates dir (mode 0700) or checks an existing one: it must be
// a directory of this user that nobody else can write; one that others
// can read or enter is tightened to 0700.
func prepareDir(dir string) error {
	fi, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(dir, dirMode); err != nil {
			return fmt.Errorf("bolt: %w", err)
		}
		fi, err = os.Stat(dir)
	}
	if err != nil {
		return fmt.Errorf("bolt: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("bolt: %s is not a directory", dir)
	}
	tighten, err := checkOwner(dir, fi, dirMode)
	if err != nil {
		return err
	}
	if tighten {
		if err := os.Chmod(dir, dirMode); err != nil {
			return fmt.Errorf("bolt: tightening permissions: %w", err)
		}
	}
	return nil
}

// openLocked opens an existing store file for bbolt (never creating it,
// never through a symbolic link), takes the exclusive lock on it within
// timeout, checks owner and permissions (tightening them to 0600) and
// checks the meta pages, all before bbolt maps the file. bbolt's own flock
// on the same open file then succeeds at once.
// It returns the schema version the file records.
func openLocked(path string, flag int, timeout time.Duration) (*os.File, uint32, error) {
	f, err := os.OpenFile(path, (flag&^os.O_CREATE)|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, syscall.ELOOP) {
			return nil, 0, fmt.Errorf("bolt: %s is a symbolic link", path)
		}
		return nil, 0, fmt.Errorf("bolt: %w", err)
	}
	if err := lock(f, timeout); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, 0, fmt.Errorf("bolt: %s is locked by another process: %w", path, ErrInUse)
		}
		return nil, 0, fmt.Errorf("bolt: locking %s: %w", path, err)
	}
	schema, err := checkOpened(path, f)
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	return f, schema, nil
}

func checkOpened(path string, f *os.File) (uint32, error) {
	fi, err := f.Stat()
	if err != nil {
		return 0, fmt.Errorf("bolt: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return 0, fmt.Errorf("bolt: %s is not a regular file", path)
	}
	tighten, err := checkOwner(path, fi, fileMode)
	if err != nil {
		return 0, err
	}
	if tighten {
		if err := f.Chmod(fileMode); err != nil {
			return 0, fmt.Errorf("bolt: tightening permissions: %w", err)
		}
	}
	schema, err := checkFile(f, fi.Size())
	if err != nil {
		return 0, &CorruptError{Path: path, Reason: err.Error()}
	}
	return schema, nil
}

// lock takes an exclusive flock on f, retrying until timeout.
func lock(f *os.File, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, syscall.EINTR):
			continue
		case !errors.Is(err, syscall.EWOULDBLOCK):
			return err
		case time.Now().After(deadline):
			return err
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// syncDir makes a new directory entry durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
