package main

import (
	"errors"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
)

// resolve maps a workspace-relative path to a real one. Absolute paths and paths that climb out of
// the workspace with ".." are refused. (Symlinks are followed: sandboxd runs inside the sandbox, so
// a link can only reach what the sandbox itself can see.)
func (s *server) resolve(w http.ResponseWriter, r *http.Request, allowEmpty bool) (string, bool) {
	p := r.URL.Query().Get("path")
	switch {
	case p == "" && allowEmpty:
		p = "."
	case p == "":
		writeError(w, http.StatusBadRequest, "bad_path", "query parameter path is required")
		return "", false
	case strings.ContainsRune(p, 0):
		writeError(w, http.StatusBadRequest, "bad_path", "path contains a NUL byte")
		return "", false
	case filepath.IsAbs(p):
		writeError(w, http.StatusBadRequest, "bad_path", "path must be relative to the workspace: "+p)
		return "", false
	}
	clean := filepath.Clean(p)
	if clean == ".." || strings.HasPrefix(clean, "../") {
		writeError(w, http.StatusBadRequest, "path_escape", "path leaves the workspace: "+p)
		return "", false
	}
	return filepath.Join(s.opts.workspace, clean), true
}

func writeFSError(w http.ResponseWriter, err error, p string) {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		writeError(w, http.StatusNotFound, "not_found", "no such file or directory: "+p)
	case errors.Is(err, fs.ErrPermission):
		writeError(w, http.StatusForbidden, "permission_denied", "permission denied: "+p)
	default:
		writeError(w, http.StatusBadRequest, "fs_error", err.Error())
	}
}

func (s *server) readFile(w http.ResponseWriter, r *http.Request) {
	full, ok := s.resolve(w, r, false)
	if !ok {
		return
	}
	rel := r.URL.Query().Get("path")
	f, err := os.Open(full)
	if err != nil {
		writeFSError(w, err, rel)
		return
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		writeFSError(w, err, rel)
		return
	}
	if info.IsDir() {
		writeError(w, http.StatusBadRequest, "is_directory", "path is a directory: "+rel)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	_, _ = io.Copy(w, f)
}

func (s *server) writeFile(w http.ResponseWriter, r *http.Request) {
	full, ok := s.resolve(w, r, false)
	if !ok {
		return
	}
	rel := r.URL.Query().Get("path")
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		writeFSError(w, err, rel)
		return
	}
	// Write beside the target and rename, so a reader never sees half a file.
	tmp, err := os.CreateTemp(filepath.Dir(full), ".sandboxd-put-*")
	if err != nil {
		writeFSError(w, err, rel)
		return
	}
	_, err = io.Copy(tmp, r.Body)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		_ = os.Chmod(tmp.Name(), 0o644)
		err = os.Rename(tmp.Name(), full)
	}
	if err != nil {
		_ = os.Remove(tmp.Name())
		writeFSError(w, err, rel)
		return
	}
	writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
}

type fileEntry struct {
	Name string `json:"name"`
	Type string `json:"type"`
	Size int64  `json:"size"`
}

func (s *server) list(w http.ResponseWriter, r *http.Request) {
	full, ok := s.resolve(w, r, true)
	if !ok {
		return
	}
	rel := r.URL.Query().Get("path")
	entries, err := os.ReadDir(full)
	if err != nil {
		writeFSError(w, err, rel)
		return
	}
	out := make([]fileEntry, 0, len(entries))
	for _, e := range entries {
		entry := fileEntry{Name: e.Name(), Type: "other"}
		switch t := e.Type(); {
		case t.IsDir():
			entry.Type = "dir"
		case t&fs.ModeSymlink != 0:
			entry.Type = "symlink"
		case t.IsRegular():
			entry.Type = "file"
			if info, err := e.Info(); err == nil {
				entry.Size = info.Size()
			}
		}
		out = append(out, entry)
	}
	writeJSON(w, http.StatusOK, map[string]any{"entries": out})
}
