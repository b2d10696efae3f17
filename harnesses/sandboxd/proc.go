package main

import (
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// procStat is the part of /proc/<pid>/stat we need: state, parent and start time (clock ticks since boot).
type procStat struct {
	state     byte
	ppid      int
	startTime uint64
}

func readProcStat(pid int) (procStat, bool) {
	raw, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procStat{}, false
	}
	// The command name (field 2) may contain spaces and parentheses: parse after the last ')'.
	s := string(raw)
	end := strings.LastIndexByte(s, ')')
	if end < 0 || end+2 >= len(s) {
		return procStat{}, false
	}
	fields := strings.Fields(s[end+2:])
	if len(fields) < 20 {
		return procStat{}, false
	}
	ppid, _ := strconv.Atoi(fields[1])
	start, _ := strconv.ParseUint(fields[19], 10, 64)
	return procStat{state: fields[0][0], ppid: ppid, startTime: start}, true
}

// liveDescendants lists the processes below root (not root itself), skipping zombies, which cannot be
// killed again and only wait to be reaped.
func liveDescendants(root int) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	parent := map[int]int{}
	zombie := map[int]bool{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, ok := readProcStat(pid); ok {
			parent[pid] = st.ppid
			zombie[pid] = st.state == 'Z'
		}
	}
	var out []int
	for pid := range parent {
		if zombie[pid] {
			continue
		}
		for p, hops := parent[pid], 0; p > 0 && hops < 4096; p, hops = parent[p], hops+1 {
			if p == root {
				out = append(out, pid)
				break
			}
		}
	}
	return out
}

// killDescendants SIGKILLs everything below root until nothing is left.
func killDescendants(root int) {
	killUntilGone(func() []int { return liveDescendants(root) })
}

// killUntilGone SIGKILLs what scan finds until it finds nothing. Processes forked between a scan and
// its kills are caught by the next scan; killed processes cannot fork, so this converges.
func killUntilGone(scan func() []int) {
	for i := 0; i < 200; i++ {
		pids := scan()
		if len(pids) == 0 {
			return
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(time.Duration(i) * time.Millisecond)
	}
}

var signalNames = map[syscall.Signal]string{
	syscall.SIGHUP: "SIGHUP", syscall.SIGINT: "SIGINT", syscall.SIGQUIT: "SIGQUIT", syscall.SIGILL: "SIGILL",
	syscall.SIGTRAP: "SIGTRAP", syscall.SIGABRT: "SIGABRT", syscall.SIGBUS: "SIGBUS", syscall.SIGFPE: "SIGFPE",
	syscall.SIGKILL: "SIGKILL", syscall.SIGUSR1: "SIGUSR1", syscall.SIGSEGV: "SIGSEGV", syscall.SIGUSR2: "SIGUSR2",
	syscall.SIGPIPE: "SIGPIPE", syscall.SIGALRM: "SIGALRM", syscall.SIGTERM: "SIGTERM", syscall.SIGXCPU: "SIGXCPU",
	syscall.SIGXFSZ: "SIGXFSZ", syscall.SIGSYS: "SIGSYS", syscall.SIGVTALRM: "SIGVTALRM", syscall.SIGPROF: "SIGPROF",
}

func signalName(sig syscall.Signal) string {
	if name, ok := signalNames[sig]; ok {
		return name
	}
	return "SIG" + strconv.Itoa(int(sig))
}
