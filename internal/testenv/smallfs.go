package testenv

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
)

// SmallFS mounts a tmpfs of size bytes on a new folder and returns it;
// it is unmounted when the test ends (after whatever the test registered
// later, such as closing a store on it, has run). Disk-full tests need it:
// on a file system that small, filling it takes a moment and frees in one
// call. Mounting needs root (CAP_SYS_ADMIN), which CI has here; without it
// the test is skipped, saying why.
func SmallFS(tb testing.TB, size int64) string {
	tb.Helper()
	dir := filepath.Join(tb.TempDir(), "smallfs")
	if err := os.Mkdir(dir, 0o755); err != nil {
		tb.Fatalf("testenv: %v", err)
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+strconv.FormatInt(size, 10)); err != nil {
		tb.Skipf("testenv: cannot mount a %d-byte tmpfs on %s (%v): a disk-full test needs root with CAP_SYS_ADMIN", size, dir, err)
	}
	tb.Cleanup(func() {
		if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
			tb.Errorf("testenv: unmount %s: %v", dir, err)
		}
	})
	return dir
}

// Fill writes a file in dir until the file system is full and returns its
// name; removing it gives the space back.
func Fill(tb testing.TB, dir string) string {
	tb.Helper()
	f, err := os.CreateTemp(dir, "ballast-*")
	if err != nil {
		tb.Fatalf("testenv: fill %s: %v", dir, err)
	}
	defer f.Close()
	chunk := make([]byte, 64<<10)
	for {
		if _, err := f.Write(chunk); err != nil {
			if errors.Is(err, syscall.ENOSPC) || errors.Is(err, io.ErrShortWrite) {
				break
			}
			tb.Fatalf("testenv: fill %s: %v", dir, err)
		}
	}
	// The last pages of a partly written chunk.
	for _, n := range []int{4096, 512, 1} {
		for {
			if _, err := f.Write(chunk[:n]); err != nil {
				break
			}
		}
	}
	return f.Name()
}
