package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

type server struct {
	opts        execOptions
	maxFinished int
	startedAt   string

	mu    sync.Mutex
	execs map[string]*execRecord
}

func runServe(args []string) error {
	fs := flag.NewFlagSet("sandboxd", flag.ContinueOnError)
	listen := fs.String("listen", "", "unix:/path/to.sock, tcp:host:port or fd:N (an inherited listening socket)")
	workspace := fs.String("workspace", "/workspace", "directory that exec runs in and file paths are relative to")
	cpu := fs.Uint64("cpu-seconds", 0, "RLIMIT_CPU for every exec'd process (0: none)")
	fsize := fs.Uint64("file-bytes", 0, "RLIMIT_FSIZE for every exec'd process (0: none)")
	outputLimit := fs.Int("output-limit", 4<<20, "bytes of NDJSON output kept per exec")
	maxFinished := fs.Int("max-finished", 256, "finished exec records kept for attach")
	proxyBridge := fs.String("proxy-bridge", "", "host:port=unix:/path: forward loopback TCP to the vault proxy's socket (see bridge.go)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *proxyBridge != "" {
		if err := startProxyBridge(*proxyBridge); err != nil {
			return err
		}
	}
	ln, err := listenOn(*listen)
	if err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	s := &server{
		opts:        execOptions{workspace: *workspace, cpuSeconds: *cpu, fileBytes: *fsize, outputLimit: *outputLimit, reaperBinary: self},
		maxFinished: *maxFinished,
		startedAt:   time.Now().UTC().Format(time.RFC3339Nano),
		execs:       map[string]*execRecord{},
	}
	return (&http.Server{Handler: s.routes(), ReadHeaderTimeout: 30 * time.Second}).Serve(ln)
}

func listenOn(spec string) (net.Listener, error) {
	kind, addr, _ := strings.Cut(spec, ":")
	switch kind {
	case "unix":
		_ = os.Remove(addr) // a socket left by a previous sandboxd
		ln, err := net.Listen("unix", addr)
		if err == nil {
			_ = os.Chmod(addr, 0o600)
		}
		return ln, err
	case "tcp":
		return net.Listen("tcp", addr)
	case "fd":
		n, err := strconv.Atoi(addr)
		if err != nil || n < 3 {
			break
		}
		f := os.NewFile(uintptr(n), "listener")
		defer f.Close() // FileListener holds its own close-on-exec dup
		return net.FileListener(f)
	}
	return nil, fmt.Errorf("--listen must be unix:/path, tcp:host:port or fd:N, got %q", spec)
}

func (s *server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", s.health)
	mux.HandleFunc("POST /exec", s.exec)
	mux.HandleFunc("POST /exec/{id}/kill", s.kill)
	mux.HandleFunc("GET /files", s.readFile)
	mux.HandleFunc("PUT /files", s.writeFile)
	mux.HandleFunc("GET /list", s.list)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "not_found", "no route "+r.Method+" "+r.URL.Path)
	})
	return mux
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, code, message string) {
	writeJSON(w, status, map[string]any{"error": map[string]string{"code": code, "message": message}})
}

func (s *server) health(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"ok": true, "pid": os.Getpid(), "started_at": s.startedAt})
}

type execBody struct {
	ID        string            `json:"id"`
	Command   string            `json:"command"`
	TimeoutMs int64             `json:"timeout_ms"`
	Env       map[string]string `json:"env"`
}

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

func (b *execBody) validate() error {
	switch {
	case b.ID == "" || len(b.ID) > 256:
		return errors.New("id must be 1-256 characters")
	case b.Command == "":
		return errors.New("command is required")
	case b.TimeoutMs <= 0:
		return errors.New("timeout_ms must be a positive number of milliseconds")
	}
	for k := range b.Env {
		if !envName.MatchString(k) {
			return fmt.Errorf("env name %q is not a valid variable name", k)
		}
	}
	return nil
}

func (s *server) exec(w http.ResponseWriter, r *http.Request) {
	var body execBody
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", "invalid exec body: "+err.Error())
		return
	}
	if err := body.validate(); err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	rec, err := s.startOrAttach(body)
	if err != nil {
		if errors.Is(err, errExecConflict) {
			writeError(w, http.StatusConflict, "exec_id_conflict", err.Error())
		} else {
			writeError(w, http.StatusInternalServerError, "exec_failed", err.Error())
		}
		return
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	for next := 0; ; {
		lines, exit, changed := rec.snapshot(next)
		next += len(lines)
		for _, line := range lines {
			if _, err := w.Write(line); err != nil {
				return
			}
		}
		if exit != nil {
			_ = json.NewEncoder(w).Encode(map[string]any{"exit": exit})
			return
		}
		if flusher != nil {
			flusher.Flush()
		}
		select {
		case <-changed:
		case <-r.Context().Done(): // the client went away; the exec carries on
			return
		}
	}
}

var errExecConflict = errors.New("an exec with this id already exists with a different command")

func (s *server) startOrAttach(body execBody) (*execRecord, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if rec, ok := s.execs[body.ID]; ok {
		if rec.command != body.Command {
			return nil, errExecConflict
		}
		return rec, nil
	}
	env := os.Environ()
	for k, v := range body.Env {
		env = append(env, k+"="+v)
	}
	rec := newExecRecord(body.ID, body.Command, s.opts.outputLimit)
	if err := rec.start(s.opts, env, time.Duration(body.TimeoutMs)*time.Millisecond); err != nil {
		return nil, err
	}
	s.execs[body.ID] = rec
	s.evictLocked()
	return rec, nil
}

// evictLocked forgets the oldest finished execs beyond maxFinished; running ones are always kept.
func (s *server) evictLocked() {
	var finished []*execRecord
	for _, rec := range s.execs {
		rec.mu.Lock()
		if rec.exit != nil {
			finished = append(finished, rec)
		}
		rec.mu.Unlock()
	}
	if len(finished) <= s.maxFinished {
		return
	}
	sort.Slice(finished, func(i, j int) bool { return finished[i].ended.Before(finished[j].ended) })
	for _, rec := range finished[:len(finished)-s.maxFinished] {
		delete(s.execs, rec.id)
	}
}

func (s *server) kill(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	rec, ok := s.execs[r.PathValue("id")]
	s.mu.Unlock()
	if !ok {
		writeError(w, http.StatusNotFound, "exec_not_found", "no exec with id "+r.PathValue("id"))
		return
	}
	rec.kill(false)
	writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
}
