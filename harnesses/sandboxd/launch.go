package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The host side of the local backend. A sandbox's run dir holds:
//   lock     flock'ed by launch and stop, so two workers never start (or stop) one sandbox twice
//   pid      "<pid> <start time>" of the outer bwrap process (start time guards against pid reuse)
//   cgroups  one cgroup directory per line, created for this sandbox
//   sandboxd.sock  the API socket, bound here by launch and handed to sandboxd as an open fd
// `launch` exits 3 when a live sandbox already owns the run dir; otherwise it joins fresh cgroups,
// binds the socket and replaces itself with bwrap, so the pid it recorded is the sandbox's.
//
// Binding on the host side keeps the socket file out of the sandbox (which could otherwise swap it
// for a symlink to some host socket the worker would then talk to), and lets a client connect as
// soon as launch has run: its request waits in the backlog until sandboxd accepts it.

const exitAlreadyRunning = 3

// cgroupRoot is where the cgroup v1 controllers are mounted (--cgroup-root changes it, e.g. to test
// the fallback without cgroups).
var cgroupRoot = "/sys/fs/cgroup"

// launchSpec says which sandbox to start: from flags, or as one JSON line on stdin for a spare.
type launchSpec struct {
	RunDir      string   `json:"run_dir"`
	CgroupName  string   `json:"cgroup_name"`
	MemoryBytes uint64   `json:"memory_bytes"`
	Pids        uint64   `json:"pids"`
	Argv        []string `json:"argv"`
}

func runLaunch(args []string) int {
	fs := flag.NewFlagSet("launch", flag.ContinueOnError)
	spare := fs.Bool("spare", false, "join fresh cgroups now, then read the launch spec as one JSON line on stdin")
	fs.StringVar(&cgroupRoot, "cgroup-root", cgroupRoot, "where the cgroup v1 controllers are mounted")
	var spec launchSpec
	fs.StringVar(&spec.RunDir, "run-dir", "", "the sandbox's run directory")
	fs.StringVar(&spec.CgroupName, "cgroup-name", "", "name of the sandbox's cgroups (under <controller>/berth/)")
	fs.Uint64Var(&spec.MemoryBytes, "memory-bytes", 0, "memory limit (cgroup; RLIMIT_DATA per process as a fallback)")
	fs.Uint64Var(&spec.Pids, "pids", 0, "process limit (cgroup pids.max; no fallback)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if !*spare {
		spec.Argv = fs.Args()
		if spec.RunDir == "" || spec.CgroupName == "" || len(spec.Argv) == 0 {
			fmt.Fprintln(os.Stderr, "usage: sandboxd launch --run-dir DIR --cgroup-name NAME [--memory-bytes N] [--pids N] -- bwrap ARGS...\n       sandboxd launch --spare  (spec on stdin)")
			return 2
		}
		cgroups, cgErr := enterCgroups(spec.CgroupName)
		return launch(spec, cgroups, cgErr)
	}
	// A spare pays for moving into cgroups (an RCU grace period in the kernel, often 10-20 ms) before
	// it is needed; the worker keeps one waiting so a cold start does not.
	sweepSpareCgroups()
	cgroups, cgErr := enterCgroups(fmt.Sprintf("spare-%d", os.Getpid()))
	line, err := bufio.NewReader(os.Stdin).ReadBytes('\n')
	if err != nil { // the worker went away without using this spare
		return 0
	}
	if err := json.Unmarshal(line, &spec); err != nil || spec.RunDir == "" || len(spec.Argv) == 0 {
		return 2
	}
	if err := redirectStdio(filepath.Join(spec.RunDir, "sandbox.log")); err != nil {
		return 1
	}
	return launch(spec, cgroups, cgErr)
}

func launch(spec launchSpec, cgroups map[string]string, cgErr error) int {
	fail := func(err error) int {
		fmt.Fprintln(os.Stderr, "sandboxd launch:", err)
		return 1
	}
	unlock, err := lockRunDir(spec.RunDir)
	if err != nil {
		return fail(err)
	}
	if pid, ok := runningPid(spec.RunDir); ok {
		unlock()
		fmt.Fprintln(os.Stderr, "sandboxd launch: already running as pid", pid)
		return exitAlreadyRunning
	}
	stopSandbox(spec.RunDir) // whatever is left of a previous sandbox
	listenFd, err := bindSocket(spec.RunDir)
	if err != nil {
		return fail(err)
	}
	if err := limitCgroups(spec, cgroups); err != nil && cgErr == nil {
		cgErr = err
	}
	if cgErr != nil {
		fmt.Fprintln(os.Stderr, "sandboxd launch: cgroups unavailable (memory falls back to RLIMIT_DATA per process, no process limit):", cgErr)
		if _, ok := cgroups["memory"]; !ok && spec.MemoryBytes > 0 {
			_ = syscall.Setrlimit(syscall.RLIMIT_DATA, &syscall.Rlimit{Cur: spec.MemoryBytes, Max: spec.MemoryBytes})
		}
	}
	if err := writePidfile(spec.RunDir); err != nil {
		return fail(err)
	}
	bwrap := spec.Argv[0]
	if !strings.ContainsRune(bwrap, '/') {
		for _, dir := range []string{"/usr/bin", "/usr/local/bin", "/bin"} {
			if _, err := os.Stat(filepath.Join(dir, bwrap)); err == nil {
				bwrap = filepath.Join(dir, bwrap)
				break
			}
		}
	}
	argv := make([]string, 0, len(spec.Argv))
	for _, a := range spec.Argv { // the sandboxd command line inside names the fd as {listen-fd}
		argv = append(argv, strings.ReplaceAll(a, "{listen-fd}", strconv.Itoa(listenFd)))
	}
	// The lock fd is close-on-exec: it is released the moment bwrap takes over.
	err = syscall.Exec(bwrap, argv, []string{"PATH=/usr/bin:/bin"})
	_ = os.Remove(filepath.Join(spec.RunDir, "pid"))
	return fail(fmt.Errorf("exec %s: %w", bwrap, err))
}

// redirectStdio points stdout and stderr at the sandbox's log and stdin at /dev/null.
func redirectStdio(logPath string) error {
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	null, err := os.Open(os.DevNull)
	if err != nil {
		return err
	}
	for _, d := range []struct{ from, to int }{{int(null.Fd()), 0}, {int(logFile.Fd()), 1}, {int(logFile.Fd()), 2}} {
		if err := syscall.Dup3(d.from, d.to, 0); err != nil {
			return err
		}
	}
	null.Close()
	logFile.Close()
	return nil
}

func runStop(args []string) int {
	fs := flag.NewFlagSet("stop", flag.ContinueOnError)
	runDir := fs.String("run-dir", "", "the sandbox's run directory")
	if err := fs.Parse(args); err != nil || *runDir == "" {
		fmt.Fprintln(os.Stderr, "usage: sandboxd stop --run-dir DIR")
		return 2
	}
	if _, err := os.Stat(*runDir); errors.Is(err, os.ErrNotExist) {
		return 0
	}
	unlock, err := lockRunDir(*runDir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "sandboxd stop:", err)
		return 1
	}
	defer unlock()
	stopSandbox(*runDir)
	sweepSpareCgroups()
	return 0
}

func lockRunDir(runDir string) (func(), error) {
	f, err := os.OpenFile(filepath.Join(runDir, "lock"), os.O_CREATE|os.O_RDWR, 0o600) // O_CLOEXEC by default
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, err
	}
	return func() { f.Close() }, nil
}

func writePidfile(runDir string) error {
	st, ok := readProcStat(os.Getpid())
	if !ok {
		return errors.New("cannot read own /proc stat")
	}
	tmp := filepath.Join(runDir, "pid.tmp")
	if err := os.WriteFile(tmp, []byte(fmt.Sprintf("%d %d\n", os.Getpid(), st.startTime)), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(runDir, "pid"))
}

// runningPid returns the sandbox's pid if the pidfile names a live process that is still the same one.
func runningPid(runDir string) (int, bool) {
	raw, err := os.ReadFile(filepath.Join(runDir, "pid"))
	if err != nil {
		return 0, false
	}
	var pid int
	var start uint64
	if _, err := fmt.Sscanf(string(raw), "%d %d", &pid, &start); err != nil || pid <= 0 {
		return 0, false
	}
	st, ok := readProcStat(pid)
	if !ok || st.startTime != start || st.state == 'Z' {
		return 0, false
	}
	return pid, true
}

// stopSandbox kills every process of the sandbox: its cgroups' members, and (for when cgroups are not
// available) the bwrap process and its descendants, which include the pid namespace's init — the
// kernel kills the rest of the namespace with it. Then it removes the cgroups, pidfile and socket.
func stopSandbox(runDir string) {
	if pid, ok := runningPid(runDir); ok {
		killDescendants(pid)
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	for _, dir := range recordedCgroups(runDir) {
		killUntilGone(func() []int { return cgroupProcs(dir) })
		for i := 0; i < 50; i++ { // rmdir fails while killed members are still exiting
			if err := os.Remove(dir); err == nil || os.IsNotExist(err) {
				break
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
	_ = os.Remove(filepath.Join(runDir, "cgroups"))
	_ = os.Remove(filepath.Join(runDir, "pid"))
	_ = os.Remove(filepath.Join(runDir, socketName))
}

const socketName = "sandboxd.sock"

// bindSocket listens on <runDir>/sandboxd.sock and returns the listening fd, inheritable across exec.
// It binds a relative path from inside runDir: a unix socket path must fit in 108 bytes, runDir may not.
func bindSocket(runDir string) (int, error) {
	if err := os.Chdir(runDir); err != nil {
		return 0, err
	}
	_ = os.Remove(socketName)
	ln, err := net.Listen("unix", socketName)
	if err != nil {
		return 0, err
	}
	_ = os.Chmod(socketName, 0o600)
	f, err := ln.(*net.UnixListener).File() // a dup; the listener's own fd closes on exec
	if err != nil {
		return 0, err
	}
	fd := int(f.Fd()) // Fd() also puts it back in blocking mode, which sandboxd's runtime undoes
	if _, _, errno := syscall.Syscall(syscall.SYS_FCNTL, uintptr(fd), syscall.F_SETFD, 0); errno != 0 {
		return 0, errno
	}
	return fd, nil
}

func cgroupProcs(dir string) []int {
	raw, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
	if err != nil {
		return nil
	}
	var out []int
	for _, field := range strings.Fields(string(raw)) {
		if pid, err := strconv.Atoi(field); err == nil {
			if st, ok := readProcStat(pid); ok && st.state != 'Z' {
				out = append(out, pid)
			}
		}
	}
	return out
}

func recordedCgroups(runDir string) []string {
	f, err := os.Open(filepath.Join(runDir, "cgroups"))
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	for sc := bufio.NewScanner(f); sc.Scan(); {
		if line := strings.TrimSpace(sc.Text()); strings.Contains(line, "/berth/") {
			out = append(out, line)
		}
	}
	return out
}

var cgroupControllers = []string{"pids", "memory"}

// enterCgroups creates <controller>/berth/<name> for the pids and memory controllers (cgroup v1) and
// moves this process in; bwrap and everything it starts inherit membership. It returns the
// directories it joined by controller.
func enterCgroups(name string) (map[string]string, error) {
	joined := map[string]string{}
	var firstErr error
	for _, controller := range cgroupControllers {
		dir := filepath.Join(cgroupRoot, controller, "berth", name)
		err := os.MkdirAll(dir, 0o755)
		if err == nil {
			err = os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(os.Getpid())), 0)
		}
		if err != nil {
			_ = os.Remove(dir)
			if firstErr == nil {
				firstErr = fmt.Errorf("%s: %w", controller, err)
			}
			continue
		}
		joined[controller] = dir
	}
	return joined, firstErr
}

// limitCgroups writes the limits into the joined cgroups and records them in <run dir>/cgroups.
func limitCgroups(spec launchSpec, joined map[string]string) error {
	settings := map[string][][2]string{
		"pids": {{"pids.max", strconv.FormatUint(spec.Pids, 10)}},
		"memory": {
			{"memory.limit_in_bytes", strconv.FormatUint(spec.MemoryBytes, 10)},
			{"memory.memsw.limit_in_bytes", strconv.FormatUint(spec.MemoryBytes, 10)}, // no escape into swap (optional)
		},
	}
	var dirs []string
	var firstErr error
	for controller, dir := range joined {
		dirs = append(dirs, dir)
		for _, s := range settings[controller] {
			if s[1] == "0" {
				continue
			}
			err := os.WriteFile(filepath.Join(dir, s[0]), []byte(s[1]), 0)
			if err != nil && s[0] != "memory.memsw.limit_in_bytes" && firstErr == nil {
				firstErr = fmt.Errorf("%s: %w", s[0], err)
			}
		}
	}
	if err := os.WriteFile(filepath.Join(spec.RunDir, "cgroups"), []byte(strings.Join(dirs, "\n")+"\n"), 0o600); err != nil {
		return err
	}
	return firstErr
}

// sweepSpareCgroups removes the cgroups of spares whose process is gone (rmdir fails on a busy one).
func sweepSpareCgroups() {
	for _, controller := range cgroupControllers {
		matches, _ := filepath.Glob(filepath.Join(cgroupRoot, controller, "berth", "spare-*"))
		for _, dir := range matches {
			pid, err := strconv.Atoi(strings.TrimPrefix(filepath.Base(dir), "spare-"))
			if _, alive := readProcStat(pid); err == nil && !alive {
				_ = os.Remove(dir)
			}
		}
	}
}
