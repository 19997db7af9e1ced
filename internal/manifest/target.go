package manifest

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Target returns where the file at rel (a checked manifest path) goes under
// root, creating its folders. It never writes outside root: the folders are
// made through os.Root, which refuses to follow a symbolic link out of it,
// and a folder on the way that is a link at all is refused, so a tree
// prepared with links cannot redirect the download.
func Target(root, rel string) (string, error) {
	if err := CheckPath(rel); err != nil {
		return "", err
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return "", err
	}
	r, err := os.OpenRoot(root)
	if err != nil {
		return "", err
	}
	defer r.Close()
	// Each folder on the way must be a real folder: a link (even one that
	// stays inside root) would put the file elsewhere than rel says.
	parts := strings.Split(rel, "/")
	cur := ""
	for _, p := range parts[:len(parts)-1] {
		cur = filepath.Join(cur, p)
		fi, err := r.Lstat(cur)
		if errors.Is(err, os.ErrNotExist) {
			if err = r.Mkdir(cur, 0o755); err == nil || errors.Is(err, os.ErrExist) {
				fi, err = r.Lstat(cur)
			}
		}
		if err != nil {
			return "", fmt.Errorf("%s: %w", filepath.Join(root, cur), unwrapPath(err))
		}
		if fi.Mode()&os.ModeSymlink != 0 {
			return "", fmt.Errorf("%s is a symbolic link; refusing to write through it", filepath.Join(root, cur))
		}
		if !fi.IsDir() {
			return "", fmt.Errorf("%s is a file, but the manifest needs a folder there", filepath.Join(root, cur))
		}
	}
	return filepath.Join(root, filepath.FromSlash(rel)), nil
}

// unwrapPath drops a *PathError (our message names the path already).
func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
