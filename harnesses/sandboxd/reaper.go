package main

import (
	"fmt"
	"os"
	"strconv"
	"syscall"
)

// Every exec runs under its own reaper: a copy of sandboxd that is a child subreaper
// (PR_SET_CHILD_SUBREAPER), so processes that daemonize or call setsid are re-parented to it instead of
// escaping. The exec's whole tree is therefore "the reaper's descendants", which sandboxd can kill on
// timeout without touching other execs. When bash exits, the reaper kills whatever it left behind and
// reports bash's status on fd 3 as "exit N" or "signal N".
const reaperArg = "__reaper"

const prSetChildSubreaper = 36

// runReaper args: cpuSeconds fileBytes command.
func runReaper(args []string) {
	status := os.NewFile(3, "status")
	syscall.CloseOnExec(3)
	fail := func(msg string) {
		fmt.Fprintln(status, "error", msg)
		os.Exit(127)
	}
	if len(args) != 3 {
		fail("usage: __reaper cpu_seconds file_bytes command")
	}
	if _, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 1, 0); errno != 0 {
		fail("prctl: " + errno.Error())
	}
	// Prefer the command over sandboxd as the OOM killer's victim (raising needs no privilege).
	_ = os.WriteFile("/proc/self/oom_score_adj", []byte("500"), 0)
	if err := setLimit(syscall.RLIMIT_CPU, args[0]); err != nil {
		fail("cpu limit: " + err.Error())
	}
	if err := setLimit(syscall.RLIMIT_FSIZE, args[1]); err != nil {
		fail("file size limit: " + err.Error())
	}
	cwd, _ := os.Getwd()
	child, err := syscall.ForkExec("/bin/bash", []string{"bash", "-c", args[2]}, &syscall.ProcAttr{
		Dir: cwd, Env: os.Environ(), Files: []uintptr{0, 1, 2},
		Sys: &syscall.SysProcAttr{Setpgid: true},
	})
	if err != nil {
		fail("start bash: " + err.Error())
	}
	var result string
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, 0, nil)
		if err == syscall.EINTR {
			continue
		}
		if err != nil { // ECHILD: nothing left
			break
		}
		if pid == child {
			if ws.Signaled() {
				result = "signal " + strconv.Itoa(int(ws.Signal()))
			} else {
				result = "exit " + strconv.Itoa(ws.ExitStatus())
			}
			// Leftovers can only exist while the reaper still has children; skip the /proc scan if not.
			var other syscall.WaitStatus
			if _, err := syscall.Wait4(-1, &other, syscall.WNOHANG, nil); err == syscall.ECHILD {
				break
			}
			killDescendants(os.Getpid())
		}
	}
	fmt.Fprintln(status, result)
	os.Exit(0)
}

func setLimit(resource int, value string) error {
	n, err := strconv.ParseUint(value, 10, 64)
	if err != nil || n == 0 {
		return err // 0 means no limit
	}
	// The hard limit sits one unit above the soft one so a CPU hog first gets SIGXCPU, then SIGKILL.
	return syscall.Setrlimit(resource, &syscall.Rlimit{Cur: n, Max: n + 1})
}
