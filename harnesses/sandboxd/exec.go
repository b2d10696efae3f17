package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"
)

// exitInfo is the final NDJSON record of an exec.
type exitInfo struct {
	Code         *int    `json:"code"`
	Signal       *string `json:"signal"`
	TimedOut     bool    `json:"timed_out"`
	Killed       bool    `json:"killed"`
	DroppedBytes int64   `json:"dropped_bytes"`
}

// execRecord keeps an exec's output (as encoded NDJSON lines, up to a byte budget) so that a second
// client can attach and replay it from the start, then follow it live.
type execRecord struct {
	id, command string

	mu       sync.Mutex
	lines    [][]byte
	size     int
	limit    int
	dropped  int64
	carry    map[string][]byte // an incomplete UTF-8 sequence at the end of the last read, per stream
	exit     *exitInfo
	notify   chan struct{} // closed (and replaced) whenever lines or exit change
	reaper   int
	timedOut bool
	killed   bool
	ended    time.Time
}

func newExecRecord(id, command string, limit int) *execRecord {
	return &execRecord{id: id, command: command, limit: limit, carry: map[string][]byte{}, notify: make(chan struct{})}
}

func (r *execRecord) wakeLocked() {
	close(r.notify)
	r.notify = make(chan struct{})
}

// streamWriter receives one stream's bytes from os/exec's copy goroutine.
type streamWriter struct {
	rec    *execRecord
	stream string
}

func (w streamWriter) Write(p []byte) (int, error) {
	w.rec.append(w.stream, p, false)
	return len(p), nil
}

func (r *execRecord) append(stream string, p []byte, flush bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	data := append(r.carry[stream], p...)
	cut := len(data)
	if !flush {
		cut = completeUTF8Prefix(data)
	}
	r.carry[stream] = append([]byte(nil), data[cut:]...)
	if cut == 0 {
		return
	}
	text := strings.ToValidUTF8(string(data[:cut]), "\uFFFD")
	line, _ := json.Marshal(map[string]string{"stream": stream, "data": text})
	line = append(line, '\n')
	if r.dropped > 0 || r.size+len(line) > r.limit { // keep a gap-free prefix
		r.dropped += int64(cut)
		return
	}
	r.lines = append(r.lines, line)
	r.size += len(line)
	r.wakeLocked()
}

// completeUTF8Prefix returns the length of b without a trailing, possibly incomplete, UTF-8 sequence.
func completeUTF8Prefix(b []byte) int {
	for back := 1; back <= 3 && back <= len(b); back++ {
		c := b[len(b)-back]
		if c < 0x80 {
			return len(b)
		}
		if utf8.RuneStart(c) {
			if utf8.FullRune(b[len(b)-back:]) {
				return len(b)
			}
			return len(b) - back
		}
	}
	return len(b)
}

// snapshot returns the lines from index `from`, the exit record if finished, and a channel that is
// closed on the next change.
func (r *execRecord) snapshot(from int) ([][]byte, *exitInfo, <-chan struct{}) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lines[from:], r.exit, r.notify
}

type execOptions struct {
	workspace    string
	cpuSeconds   uint64
	fileBytes    uint64
	outputLimit  int
	reaperBinary string
}

// start runs the command under a reaper; the record finishes when the reaper reports.
func (r *execRecord) start(opts execOptions, env []string, timeout time.Duration) error {
	statusR, statusW, err := os.Pipe()
	if err != nil {
		return err
	}
	cmd := exec.Command(opts.reaperBinary, reaperArg,
		strconv.FormatUint(opts.cpuSeconds, 10), strconv.FormatUint(opts.fileBytes, 10), r.command)
	cmd.Dir = opts.workspace
	cmd.Env = env
	cmd.Stdout = streamWriter{r, "stdout"}
	cmd.Stderr = streamWriter{r, "stderr"}
	cmd.ExtraFiles = []*os.File{statusW}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	// Every process of the exec is killed before the reaper exits, so the pipes close at once; the
	// delay only guards against a descendant that smuggled a pipe end out of the tree.
	cmd.WaitDelay = 2 * time.Second
	if err := cmd.Start(); err != nil {
		statusR.Close()
		statusW.Close()
		return err
	}
	statusW.Close()
	r.mu.Lock()
	r.reaper = cmd.Process.Pid
	r.mu.Unlock()
	timer := time.AfterFunc(timeout, func() { r.kill(true) })
	go func() {
		buf := make([]byte, 256)
		n, _ := statusR.Read(buf)
		statusR.Close()
		_ = cmd.Wait()
		timer.Stop()
		r.finish(strings.TrimSpace(string(buf[:n])))
	}()
	return nil
}

func (r *execRecord) finish(status string) {
	r.append("stdout", nil, true)
	r.append("stderr", nil, true)
	r.mu.Lock()
	defer r.mu.Unlock()
	info := &exitInfo{TimedOut: r.timedOut, Killed: r.killed, DroppedBytes: r.dropped}
	kind, value, _ := strings.Cut(status, " ")
	n, convErr := strconv.Atoi(value)
	switch {
	case kind == "exit" && convErr == nil:
		info.Code = &n
	case kind == "signal" && convErr == nil:
		name := signalName(syscall.Signal(n))
		info.Signal = &name
	default: // the reaper itself died or failed to start bash
		if kind == "error" {
			line, _ := json.Marshal(map[string]string{"stream": "stderr", "data": "sandboxd: " + value + "\n"})
			r.lines = append(r.lines, append(line, '\n'))
		}
		name := "SIGKILL"
		info.Signal = &name
	}
	r.exit = info
	r.ended = time.Now()
	r.wakeLocked()
}

// kill SIGKILLs the exec's whole tree; the reaper then sees bash die and reports.
func (r *execRecord) kill(timedOut bool) {
	r.mu.Lock()
	if r.exit != nil {
		r.mu.Unlock()
		return
	}
	if timedOut {
		r.timedOut = true
	} else {
		r.killed = true
	}
	reaper := r.reaper
	r.mu.Unlock()
	killDescendants(reaper)
	// A reaper that does not report within a second is killed too (finish() then reports SIGKILL).
	time.AfterFunc(time.Second, func() {
		r.mu.Lock()
		done := r.exit != nil
		r.mu.Unlock()
		if !done {
			_ = syscall.Kill(reaper, syscall.SIGKILL)
		}
	})
}
