package main

import (
	"bufio"
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

const cgroupRoot = "/sys/fs/cgroup"

func runLaunch(args []string) int {
	fs := flag.NewFlagSet("launch", flag.ContinueOnError)
	runDir := fs.String("run-dir", "", "the sandbox's run directory")
	name := fs.String("cgroup-name", "", "name of the sandbox's cgroups (under <controller>/berth/)")
	memory := fs.Uint64("memory-bytes", 0, "memory limit (cgroup; RLIMIT_DATA per process as a fallback)")
	pids := fs.Uint64("pids", 0, "process limit (cgroup pids.max; no fallback)")
	if err := fs.Parse(args); err != nil || *runDir == "" || *name == "" || fs.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: sandboxd launch --run-dir DIR --cgroup-name NAME [--memory-bytes N] [--pids N] -- bwrap ARGS...")
		return 2
	}
	unlock, err := lockRunDir(*runDir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "sandboxd launch:", err)
		return 1
	}
	if pid, ok := runningPid(*runDir); ok {
		unlock()
		fmt.Fprintln(os.Stderr, "sandboxd launch: already running as pid", pid)
		return exitAlreadyRunning
	}
	stopSandbox(*runDir) // whatever is left of a previous sandbox
	listenFd, err := bindSocket(*runDir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "sandboxd launch:", err)
		return 1
	}
	memoryLimited, err := joinCgroups(*runDir, *name, *memory, *pids)
	if err != nil {
		fmt.Fprintln(os.Stderr, "sandboxd launch: cgroups unavailable (memory falls back to RLIMIT_DATA per process, no process limit):", err)
		if *memory > 0 && !memoryLimited {
			_ = syscall.Setrlimit(syscall.RLIMIT_DATA, &syscall.Rlimit{Cur: *memory, Max: *memory})
		}
	}
	if err := writePidfile(*runDir); err != nil {
		fmt.Fprintln(os.Stderr, "sandboxd launch:", err)
		return 1
	}
	bwrap := fs.Arg(0)
	if !strings.ContainsRune(bwrap, '/') {
		for _, dir := range []string{"/usr/bin", "/usr/local/bin", "/bin"} {
			if _, err := os.Stat(filepath.Join(dir, bwrap)); err == nil {
				bwrap = filepath.Join(dir, bwrap)
				break
			}
		}
	}
	// The lock fd is close-on-exec: it is released the moment bwrap takes over.
	argv := make([]string, 0, fs.NArg())
	for _, a := range fs.Args() { // the sandboxd command line inside names the fd as {listen-fd}
		argv = append(argv, strings.ReplaceAll(a, "{listen-fd}", strconv.Itoa(listenFd)))
	}
	err = syscall.Exec(bwrap, argv, []string{"PATH=/usr/bin:/bin"})
	fmt.Fprintln(os.Stderr, "sandboxd launch: exec", bwrap+":", err)
	_ = os.Remove(filepath.Join(*runDir, "pid"))
	return 1
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
		for i := 0; i < 200; i++ {
			procs := cgroupProcs(dir)
			if len(procs) == 0 {
				break
			}
			for _, pid := range procs {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
			time.Sleep(time.Duration(i) * time.Millisecond)
		}
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
		if line := strings.TrimSpace(sc.Text()); strings.HasPrefix(line, cgroupRoot+"/") {
			out = append(out, line)
		}
	}
	return out
}

// joinCgroups creates <controller>/berth/<name> for the pids and memory controllers (cgroup v1),
// writes the limits and moves this process in; bwrap and everything it starts inherit membership.
func joinCgroups(runDir, name string, memory, pids uint64) (memoryLimited bool, err error) {
	type setting struct{ file, value string }
	plan := []struct {
		controller string
		settings   []setting
	}{
		{"pids", []setting{{"pids.max", strconv.FormatUint(pids, 10)}}},
		{"memory", []setting{
			{"memory.limit_in_bytes", strconv.FormatUint(memory, 10)},
			{"memory.memsw.limit_in_bytes", strconv.FormatUint(memory, 10)}, // no escape into swap
		}},
	}
	var created []string
	var firstErr error
	for _, p := range plan {
		dir := filepath.Join(cgroupRoot, p.controller, "berth", name)
		err := os.MkdirAll(dir, 0o755)
		for _, s := range p.settings {
			if err == nil && s.value != "0" {
				if werr := os.WriteFile(filepath.Join(dir, s.file), []byte(s.value), 0); werr != nil && s.file != "memory.memsw.limit_in_bytes" {
					err = werr
				}
			}
		}
		if err == nil {
			err = os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(os.Getpid())), 0)
		}
		if err != nil {
			_ = os.Remove(dir)
			if firstErr == nil {
				firstErr = fmt.Errorf("%s: %w", p.controller, err)
			}
			continue
		}
		created = append(created, dir)
		memoryLimited = memoryLimited || p.controller == "memory"
	}
	if err := os.WriteFile(filepath.Join(runDir, "cgroups"), []byte(strings.Join(created, "\n")+"\n"), 0o600); err != nil {
		return memoryLimited, err
	}
	return memoryLimited, firstErr
}
